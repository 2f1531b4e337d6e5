/**
 * The one bounded reader for outside JSON (protocol/bounded-json.ts): every
 * shape past a limit is refused with its reason before JSON.parse runs, good
 * input parses as JSON.parse would, bodies are cut at their byte and time
 * limits.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseBoundedJson, readBoundedStream } from "../../../protocol/bounded-json.ts";
import { MAX_YAML_DEPTH, MAX_YAML_KEYS, MAX_YAML_NODES } from "../../../protocol/yaml-limits.ts";

const BIG = 64 * 1024 * 1024;

describe("parseBoundedJson", () => {
  it("parses what JSON.parse parses, within the limits", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const text = JSON.stringify(v);
        const r = parseBoundedJson(text, { maxBytes: BIG });
        assert.ok(r.ok, !r.ok ? r.message : "");
        assert.deepEqual(r.value, JSON.parse(text));
        const bytes = parseBoundedJson(Buffer.from(text), { maxBytes: BIG });
        assert.ok(bytes.ok);
        assert.deepEqual(bytes.value, JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a million nested arrays in 2 MB by depth, naming the input", () => {
    const text = `{"extra":${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}}`;
    const r = parseBoundedJson(text, { maxBytes: 4 * 1024 * 1024 }, "s3://b/k");
    assert.deepEqual(r, {
      ok: false,
      code: "TOO_DEEP",
      message: `s3://b/k: nested more than ${MAX_YAML_DEPTH} levels deep`,
    });
  });

  it("accepts exactly the depth limit and refuses one more", () => {
    const at = `${"[".repeat(MAX_YAML_DEPTH)}${"]".repeat(MAX_YAML_DEPTH)}`;
    assert.ok(parseBoundedJson(at, { maxBytes: BIG }).ok);
    const past = `[${at}]`;
    assert.equal((parseBoundedJson(past, { maxBytes: BIG }) as { code: string }).code, "TOO_DEEP");
  });

  it("refuses too many values and too many keys", () => {
    const values = `[${"0,".repeat(MAX_YAML_NODES)}0]`;
    assert.equal((parseBoundedJson(values, { maxBytes: BIG }) as { code: string }).code, "TOO_MANY_VALUES");
    const keys = `{${Array.from({ length: MAX_YAML_KEYS + 1 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const r = parseBoundedJson(keys, { maxBytes: BIG, maxValues: 10 * MAX_YAML_KEYS });
    assert.equal((r as { code: string }).code, "TOO_MANY_KEYS");
  });

  it("does not count brackets, commas or colons inside strings, escaped quotes included", () => {
    const s = `${"[,:{".repeat(10_000)}\\"${"]".repeat(100)}`;
    const r = parseBoundedJson(JSON.stringify({ s }), { maxBytes: BIG, maxDepth: 2, maxValues: 3, maxKeys: 1 });
    assert.ok(r.ok, !r.ok ? r.message : "");
    assert.deepEqual(r.value, { s });
  });

  it("counts bytes, not UTF-16 units, and refuses invalid UTF-8 and bad JSON", () => {
    const text = JSON.stringify("é".repeat(600)); // 1,202 bytes, 602 code units
    assert.equal((parseBoundedJson(text, { maxBytes: 1_000 }) as { code: string }).code, "TOO_LARGE");
    assert.ok(parseBoundedJson(text, { maxBytes: 1_202 }).ok);
    assert.equal(
      (parseBoundedJson(Buffer.from([0x22, 0xff, 0x22]), { maxBytes: 10 }) as { code: string }).code,
      "NOT_UTF8",
    );
    const bad = parseBoundedJson("{nope", { maxBytes: 10 }, "frame");
    assert.ok(!bad.ok && bad.code === "BAD_JSON" && bad.message.startsWith("frame: not JSON"));
  });

  it("refuses a non-positive byte limit as misuse", () => {
    assert.throws(() => parseBoundedJson("1", { maxBytes: 0 }), RangeError);
  });
});

describe("readBoundedStream", () => {
  it("reads a body within its limits", async () => {
    const r = await readBoundedStream(Readable.from([Buffer.from("ab"), "cd"]), { maxBytes: 4, timeoutMs: 1_000 });
    assert.ok(r.ok);
    assert.equal(r.bytes.toString(), "abcd");
  });

  it("stops a 50 MB body at its byte limit without reading it all", async () => {
    let produced = 0;
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 800; i++) {
          produced += 65_536;
          yield Buffer.alloc(65_536, 0x41);
        }
      })(),
    );
    const r = await readBoundedStream(body, { maxBytes: 1024 * 1024, timeoutMs: 5_000 }, "error body");
    assert.deepEqual(r, { ok: false, code: "TOO_LARGE", message: "error body: exceeds 1048576 bytes" });
    assert.ok(produced < 4 * 1024 * 1024, `read ${produced} bytes`);
    assert.ok(body.destroyed);
  });

  it("gives up on a hanging body at its deadline and destroys it", async () => {
    const body = new Readable({ read() {} });
    body.push("x");
    const r = await readBoundedStream(body, { maxBytes: 100, timeoutMs: 50 }, "s3://b/k");
    assert.deepEqual(r, { ok: false, code: "TIMEOUT", message: "s3://b/k: not read within 50 ms" });
    assert.ok(body.destroyed);
  });

  it("reports an aborted read and a failing body as values", async () => {
    const ac = new AbortController();
    const hanging = new Readable({ read() {} });
    setTimeout(() => ac.abort(), 10);
    const aborted = await readBoundedStream(hanging, { maxBytes: 100, timeoutMs: 5_000, signal: ac.signal });
    assert.equal((aborted as { code: string }).code, "ABORTED");
    const failing = new Readable({
      read() {
        this.destroy(new Error("socket hang up"));
      },
    });
    const failed = await readBoundedStream(failing, { maxBytes: 100, timeoutMs: 5_000 }, "b");
    assert.deepEqual(failed, { ok: false, code: "READ_FAILED", message: "b: socket hang up" });
  });
});
