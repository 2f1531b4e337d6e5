/**
 * The loader's fast YAML path must read every text it accepts exactly as the
 * `yaml` package (the full path) does, so that a file's validity and hash never
 * depend on which path read it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseAllDocuments, stringify } from "yaml";
import { fastYamlValue } from "../../../protocol/fast-yaml.ts";

/** What the full path reads: the single document's value, or undefined when `yaml` reports an error. */
function fullPath(text: string): unknown {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, logLevel: "silent" });
  if (!Array.isArray(docs) || docs.length !== 1 || docs[0]!.errors.length > 0) return undefined;
  return docs[0]!.toJS();
}

function assertSameOrDeclined(text: string): void {
  const fast = fastYamlValue(text);
  if (fast === undefined) return; // declined: the full path decides
  assert.deepStrictEqual(fast, fullPath(text), `fast path disagrees on ${JSON.stringify(text)}`);
}

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

  it("declines anchors, aliases, tags, directives, several documents, syntax errors and non-name keys", () => {
    for (const text of [
      "a: &x 1\nb: *x\n",
      "a: !!str 1\n",
      "%YAML 1.2\n---\na: 1\n",
      "a: 1\n---\nb: 2\n",
      "a: [1, 2\n",
      "a: 1\na: 2\n",
      "{}: ~\n",
      "[a, b]: 1\n",
      "~: 1\n",
      "",
    ]) {
      assert.equal(fastYamlValue(text), undefined, JSON.stringify(text));
    }
  });
});
