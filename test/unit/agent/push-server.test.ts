import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { PushServer, tokenMatches } from "../../../agent/push-server.ts";

test("tokenMatches: exact bearer token only", () => {
  assert.equal(tokenMatches("Bearer abc", "abc"), true);
  assert.equal(tokenMatches("Bearer abd", "abc"), false);
  assert.equal(tokenMatches("Bearer ab", "abc"), false);
  assert.equal(tokenMatches("Bearer abcd", "abc"), false);
  assert.equal(tokenMatches("abc", "abc"), false);
  assert.equal(tokenMatches("Basic abc", "abc"), false);
  assert.equal(tokenMatches(undefined, "abc"), false);
});

test("options are checked at construction", () => {
  const deps = { logger: pino({ level: "silent" }) };
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 70000 }), /port/);
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 0, helloTimeoutMs: 0 }), /helloTimeoutMs/);
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 0, token: "" }), /token/);
});
