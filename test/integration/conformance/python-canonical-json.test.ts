/**
 * The Python reference client's canonical JSON and hash equal the
 * protocol's (protocol/hash.ts) on the PROTOCOL.md test vector, on the kit's
 * own vector, and on generated JSON values (non-ASCII and astral strings,
 * control characters, doubles in every ECMAScript number layout).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hashVector, loadBaseConfig } from "../../../agent/conformance/test-configs.ts";
import { canonicalJson, configHash } from "../../../protocol/hash.ts";
import { PYTHON, PYTHON_DIR, ROOT, requirePythonWebsockets } from "./harness.ts";

const DRIVER = `
import json, sys
from sfu_config_client import canonical_json, config_hash
values = json.loads(sys.stdin.read())
print(json.dumps([[canonical_json(v), config_hash(v)] for v in values]))
`;

/** Canonical form and hash of each value, computed by the Python client. */
function python(values: unknown[]): [string, string][] {
  requirePythonWebsockets();
  const r = spawnSync(PYTHON, ["-c", DRIVER], {
    cwd: PYTHON_DIR,
    input: JSON.stringify(values),
    encoding: "utf8",
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as [string, string][];
}

function protocolVector(): unknown {
  const doc = readFileSync(join(ROOT, "protocol", "PROTOCOL.md"), "utf8");
  const m = /<!-- vector:input -->\n```json\n([\s\S]*?)\n```/.exec(doc);
  assert.ok(m, "PROTOCOL.md has a vector:input block");
  return JSON.parse(m[1]!);
}

describe("Python reference client: canonical JSON", () => {
  it("matches the protocol on the PROTOCOL.md vector and the kit's hash vector", { timeout: 30_000 }, async () => {
    const values = [protocolVector(), hashVector(await loadBaseConfig())];
    const got = python(values);
    values.forEach((v, i) => {
      assert.deepEqual(got[i], [canonicalJson(v), configHash(v)]);
    });
  });

  it("matches the protocol on generated JSON values", { timeout: 60_000 }, () => {
    const key = fc.string({ unit: "binary", maxLength: 8 });
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 20 }),
      fc.constantFrom("\u2028\u2029", "<&>/", "\u0000\u001f\u007f", "é😀𝄞"),
    );
    const number = fc.oneof(
      fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom(1e21, 1e-7, 123e-20, 5e-324, 1.7976931348623157e308, 0.1, 1e20),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, tie("leaf"), tie("array"), tie("object")),
      leaf: fc.oneof(fc.constant(null), fc.boolean(), number, text),
      array: fc.array(tie("tree"), { maxLength: 4 }),
      object: fc.dictionary(key, tie("tree"), { maxKeys: 5 }),
    }));
    const samples = fc.sample(tree, { numRuns: 400, seed: 8 });
    // JSON transport turns -0 into 0 and drops nothing else; compare on what Python received.
    const values = samples.map((v) => JSON.parse(JSON.stringify(v)) as unknown);
    const got = python(values);
    values.forEach((v, i) => {
      assert.deepEqual(got[i], [canonicalJson(v), configHash(v)], `value ${JSON.stringify(v)}`);
    });
  });
});
