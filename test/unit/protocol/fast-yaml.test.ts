/**
 * The loader's fast YAML path must read every text it accepts exactly as the
 * `yaml` package (the full path) does, so that a file's validity and hash never
 * depend on which path read it; and it must accept the configs people write,
 * or it saves nothing.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseAllDocuments, stringify } from "yaml";
import { fastYamlValue } from "../../../protocol/fast-yaml.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");

/** What the full path reads: the single document's value, or undefined when `yaml` reports an error. */
function fullPath(text: string): unknown {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, logLevel: "silent" });
  if (!Array.isArray(docs) || docs.length !== 1 || docs[0]!.errors.length > 0) return undefined;
  return docs[0]!.toJS();
}

/** Asserts the fast path declines `text` or reads it as the full path does; true when it read it. */
function assertSameOrDeclined(text: string): boolean {
  const fast = fastYamlValue(text);
  if (fast === undefined) return false; // declined: the full path decides
  assert.deepStrictEqual(fast, fullPath(text), `fast path disagrees on ${JSON.stringify(text)}`);
  return true;
}

/** Asserts the fast path reads `text`, exactly as the full path does. */
function assertReads(text: string): unknown {
  const fast = fastYamlValue(text);
  assert.notEqual(fast, undefined, `fast path declined ${JSON.stringify(text)}`);
  assert.deepStrictEqual(fast, fullPath(text), `fast path disagrees on ${JSON.stringify(text)}`);
  return fast;
}

/** A config that uses every construct the fast path reads. */
const EVERY_CONSTRUCT = `# comment line
schemaVersion: 1   # trailing comment

server:
  port: 8080
webrtc:
  icePortRange: [ 20000, 20100 ]
  codecs: [vp8, 'h264', "opus"]
  listenIp: 0.0.0.0
  announcedIps: []
  turnServers:
    - urls: ["turn:turn.example.com:3478?transport=udp", stun:stun.example.com:19302]
      username: sfu
      credentialFile: /etc/sfu/secrets/turn-credential
    -   urls:
          - turns:turn.example.com:5349
        username: 'it''s'
    -
      urls: [stun:a.example.net]
logging:
  level: info
limits:
empty_list:
- ~
- null
- -12
- 0x1F
- 0o17
- .5
- -.inf
- .NaN
- true
- False
- a b c
- http://x.example/path?q=1
- b[0],c
-
  nested: x{}
`;

describe("fast YAML path", () => {
  it("resolves core-schema scalars exactly like the yaml package", () => {
    const scalars = [
      "8_080",
      "0o17",
      "017",
      "0x1F",
      "+12",
      "-12",
      ".inf",
      "-.Inf",
      ".nan",
      "~",
      "null",
      "Null",
      "NULL",
      "",
      "Yes",
      "yes",
      "on",
      "true",
      "True",
      "TRUE",
      "false",
      "1e3",
      "1.0",
      "1.",
      "-0",
      "0.5e-3",
      "+.5",
      "2024-01-01",
      "0b101",
      "1:20",
      "'x'",
      '"\\u00e9"',
      "12e03",
      "-0x1",
      "+0o7",
      ".5",
      "5.",
      "1E3",
      "0xFF",
      "0o8",
      "9007199254740993",
    ];
    for (const s of scalars) assertSameOrDeclined(`v: ${s}\n`);
  });

  it("agrees with the yaml package on random one-line scalars and flow lists", () => {
    const scalar = fc.oneof(
      fc.stringMatching(/^[-+]?[0-9.eExXoOb_a-fA-F]{0,8}$/),
      fc.constantFrom("~", "null", "true", "False", ".inf", ".NaN", "yes", "no"),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(scalar, scalar, (a, b) => {
        assertSameOrDeclined(`v: ${a}\n`);
        assertSameOrDeclined(`v: [${a}, ${b}]\n`);
        assertSameOrDeclined(`${a}: ${b}\n`);
        assertSameOrDeclined(`k:\n  ${a}: ${b}\n`);
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees on whole documents written by the yaml package, in block and flow style", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const doc = { root: value };
        assertSameOrDeclined(stringify(doc));
        assertSameOrDeclined(stringify(doc, { collectionStyle: "flow" }));
        assertSameOrDeclined(JSON.stringify(doc));
      }),
      { numRuns: 500 },
    );
  });

  it("reads every construct of its subset", () => {
    const v = assertReads(EVERY_CONSTRUCT) as Record<string, unknown>;
    assert.deepEqual(v["webrtc"], {
      icePortRange: [20000, 20100],
      codecs: ["vp8", "h264", "opus"],
      listenIp: "0.0.0.0",
      announcedIps: [],
      turnServers: [
        {
          urls: ["turn:turn.example.com:3478?transport=udp", "stun:stun.example.com:19302"],
          username: "sfu",
          credentialFile: "/etc/sfu/secrets/turn-credential",
        },
        { urls: ["turns:turn.example.com:5349"], username: "it's" },
        { urls: ["stun:a.example.net"] },
      ],
    });
    assert.equal(v["limits"], null);
    assert.deepEqual(v["empty_list"], [
      null,
      null,
      -12,
      31,
      15,
      0.5,
      -Infinity,
      Number.NaN,
      true,
      false,
      "a b c",
      "http://x.example/path?q=1",
      "b[0],c",
      { nested: "x{}" },
    ]);
  });

  it("reads every valid config fixture and the shipped ConfigMap's config", () => {
    const dir = join(ROOT, "test", "fixtures", "valid");
    const texts = readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => readFileSync(join(dir, f), "utf8"));
    texts.push(readFileSync(join(ROOT, "k8s", "base", "config.yaml"), "utf8"));
    assert.ok(texts.length >= 4);
    for (const text of texts) assertReads(text);
  });

  it("reads block-style documents the yaml package writes from config-like values", () => {
    const key = fc.stringMatching(/^[a-z][a-zA-Z0-9_]{0,8}$/).filter((k) => !/^(?:null|true|false)$/i.test(k));
    const scalar = fc.oneof(
      fc.stringMatching(/^[a-z0-9][a-z0-9 .:/_-]{0,15}$/),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.constant(null),
    );
    // Lists hold scalars and mappings: a list right inside a list (`- - x`) is left to the full path.
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: "small" }, scalar, tie("list"), tie("map")),
      list: fc.array(fc.oneof({ depthSize: "small" }, scalar, tie("map")), { maxLength: 4 }),
      map: fc.dictionary(key, tie("value"), { minKeys: 1, maxKeys: 4 }),
    }));
    fc.assert(
      fc.property(fc.dictionary(key, value, { minKeys: 1, maxKeys: 5 }), (doc) => {
        assertReads(stringify(doc));
      }),
      { numRuns: 500 },
    );
  });

  it("never disagrees on configs with random edits, and still reads many of them", () => {
    const alphabet = fc.constantFrom(..." \n-:#[]{},'\"a1.~\\|>?&!%\t\r");
    const edit = fc.record({ at: fc.nat(), cut: fc.nat({ max: 3 }), insert: fc.array(alphabet, { maxLength: 3 }) });
    let read = 0;
    let runs = 0;
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        let text = EVERY_CONSTRUCT;
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = text.slice(0, at) + e.insert.join("") + text.slice(at + e.cut);
        }
        runs++;
        if (assertSameOrDeclined(text)) read++;
      }),
      { numRuns: 4000 },
    );
    assert.ok(read > runs / 10, `read only ${read} of ${runs} edited texts`);
  });

  it("declines what only the full path reads or reports", () => {
    for (const text of [
      "a: &x 1\nb: *x\n",
      "a: !!str 1\n",
      "%YAML 1.2\n---\na: 1\n",
      "---\na: 1\n",
      "a: 1\n...\n",
      "a: 1\n---\nb: 2\n",
      "a: [1, 2\n",
      "a: [1, [2]]\n",
      "a: {b: 1}\n",
      "a: 1\na: 2\n",
      "a:\n  b: 1\n  b: 2\n",
      "{}: ~\n",
      "[a, b]: 1\n",
      "~: 1\n",
      "True: 1\n",
      "null: 1\n",
      "__proto__: 1\n",
      '"a": 1\n',
      "a b: 1\n",
      "a: |\n  text\n",
      "a: >\n  text\n",
      "a: two\n  lines\n",
      'a: "esc\\n"\n',
      "a: b: c\n",
      "a: - b\n",
      "- - a\n",
      "a:\n\t- b\n",
      "a: 1\r\n",
      "\uFEFFa: 1\n",
      "a:\n    b: 1\n  c: 2\n",
      "a: 1\n- b\n",
      '{"a": 1}\n',
      "[1, 2]\n",
      "just a scalar\n",
      "# only a comment\n",
      "",
    ]) {
      assert.equal(fastYamlValue(text), undefined, JSON.stringify(text));
    }
  });
});
