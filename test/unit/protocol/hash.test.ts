/** Canonical JSON and the config hash (protocol/hash.ts); the PROTOCOL.md vector is in protocol-doc.test.ts. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { canonicalJson, canonicalJsonBytes, configHash, HASH_PATTERN } from "../../../protocol/hash.ts";

describe("canonicalJson", () => {
  it("sorts keys at every level, drops whitespace, keeps array order", () => {
    assert.equal(canonicalJson({ b: [3, 1, { d: 1, c: 2 }], a: null }), '{"a":null,"b":[3,1,{"c":2,"d":1}]}');
    assert.equal(canonicalJson({ a: 1, B: 2, _: 3, "1": 4 }), '{"1":4,"B":2,"_":3,"a":1}');
  });

  it("writes strings as JSON.stringify does (escapes only what JSON requires)", () => {
    assert.equal(canonicalJson("a/b<&>\u2028é"), '"a/b<&>\u2028é"');
    assert.equal(canonicalJson('\b\f\n\r\t\u0000\u001f"\\'), '"\\b\\f\\n\\r\\t\\u0000\\u001f\\"\\\\"');
  });

  it("omits undefined members, like JSON.stringify", () => {
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  });

  it("throws TypeError on values JSON cannot carry", () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY, () => 1, Symbol("s"), 1n, undefined]) {
      assert.throws(() => canonicalJson(v), TypeError);
    }
    assert.throws(() => canonicalJson([Number.NaN]), TypeError);
  });

  it("sorts integer-like keys as strings, not in the engine's own numeric order", () => {
    // Object.keys lists "2" before "10"; canonical order is by code unit.
    assert.equal(canonicalJson({ "2": "b", "10": "a" }), '{"10":"a","2":"b"}');
    assert.equal(canonicalJson({ x: { "2": 1, "10": 2 } }), '{"x":{"10":2,"2":1}}');
  });

  it("property: the same text whatever the key order (pre-sorted input takes the JSON.stringify path)", () => {
    const reorder = (v: unknown, order: (keys: string[]) => string[]): unknown => {
      if (Array.isArray(v)) return v.map((x) => reorder(x, order));
      if (v === null || typeof v !== "object") return v;
      const obj = v as Record<string, unknown>;
      return Object.fromEntries(order(Object.keys(obj)).map((k) => [k, reorder(obj[k], order)]));
    };
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const sorted = canonicalJson(reorder(v, (k) => [...k].sort()));
        assert.equal(canonicalJson(reorder(v, (k) => [...k].sort().reverse())), sorted);
        assert.equal(canonicalJson(v), sorted);
      }),
      { numRuns: 300 },
    );
  });

  it("property: the canonical form parses back to the same value and is a fixpoint", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const c = canonicalJson(v);
        assert.deepEqual(JSON.parse(c), JSON.parse(JSON.stringify(v)));
        assert.equal(canonicalJson(JSON.parse(c)), c);
      }),
      { numRuns: 300 },
    );
  });
});

describe("canonicalJsonBytes", () => {
  it("equals the UTF-8 length of canonicalJson for any JSON value (escapes, astral and lone surrogates)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: "binary" }), (value, text) => {
        for (const v of [value, text, { [text]: [value, text] }]) {
          assert.equal(canonicalJsonBytes(v), Buffer.byteLength(canonicalJson(v), "utf8"));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("stops soon after the count passes the limit: a shared 1 MB string used 10,000 times", () => {
    const big = "x".repeat(1_000_000);
    const value = { list: Array.from({ length: 10_000 }, () => big) };
    const n = canonicalJsonBytes(value, 2_000_000);
    assert.ok(n > 2_000_000 && n < 4_000_000, String(n));
  });
});

describe("configHash", () => {
  it("is sha256: + 64 lowercase hex digits of the canonical JSON", () => {
    const h = configHash({ schemaVersion: 1 });
    assert.match(h, new RegExp(HASH_PATTERN));
    // `printf '%s' '{"schemaVersion":1}' | sha256sum`
    assert.equal(h, "sha256:0e9561cfb83d50990a103b3896fe249a11fe27fa28985448187f93ec12116d72");
    assert.notEqual(configHash({ schemaVersion: 2 }), h);
  });

  it("does not depend on key order", () => {
    assert.equal(configHash({ a: 1, b: { c: 2, d: 3 } }), configHash({ b: { d: 3, c: 2 }, a: 1 }));
  });
});
