import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
import { createLogger, uniqueKeys } from "../../../agent/shared/logger.ts";
import { parseStrictJson } from "../../helpers/strict-json.ts";

function captured(base?: Record<string, unknown>) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(l);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: "debug", destination, ...(base ? { base } : {}) }) };
}

test("the strict reader refuses a repeated key (so the checks below can fail)", () => {
  assert.throws(() => parseStrictJson('{"a":1,"b":{"c":1,"c":2}}'), /duplicate key "c"/);
  assert.deepEqual(parseStrictJson('{"a":[1,"x\\"",{"b":null}],"c":-1.5e3}'), { a: [1, 'x"', { b: null }], c: -1500 });
  // Plain pino repeats a re-bound key: the case the agent's logger fixes.
  const raw: string[] = [];
  const plain = pino({ base: { pod: "p" } }, { write: (l: string) => raw.push(l) });
  plain.child({ component: "queue" }).child({ component: "queue" }).info({ pod: "p" }, "x");
  assert.throws(() => parseStrictJson(raw[0] as string), /duplicate key/);
});

test("every line has unique keys: re-bound children, fields repeating a binding", () => {
  const { lines, logger } = captured({ pod: "pod-1" });
  const queue = logger.child({ component: "queue" });
  queue.child({ component: "queue" }).info("queue line");
  queue.child({ component: "poller" }).warn({ component: "poller", n: 1 }, "inner wins");
  logger.info({ pod: "pod-1", push: "ws://x" }, "agent started");
  logger.error({ err: new Error("boom"), token: "secret" }, "with an error");
  assert.equal(lines.length, 4);
  const parsed = lines.map((l) => parseStrictJson(l) as Record<string, unknown>);
  assert.equal(parsed[0]?.["component"], "queue");
  assert.equal(parsed[1]?.["component"], "poller");
  assert.equal(parsed[2]?.["pod"], "pod-1");
  assert.equal(parsed[3]?.["token"], "[redacted]");
  assert.ok(!lines[3]?.includes("secret"));
});

test("uniqueKeys keeps lines without repeats (same value), and non-JSON as is", () => {
  const line = '{"level":"info","msg":"caf\\u00e9 \\n"}\n';
  assert.deepEqual(JSON.parse(uniqueKeys(line)), JSON.parse(line));
  assert.ok(uniqueKeys(line).endsWith("}\n"));
  const plain = '{"level":"info","msg":"x"}\n';
  assert.equal(uniqueKeys(plain), plain);
  assert.equal(uniqueKeys("not json\n"), "not json\n");
  assert.equal(uniqueKeys('{"a":1,"b":2,"a":3}\n'), '{"a":3,"b":2}\n');
});
