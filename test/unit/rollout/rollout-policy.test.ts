/**
 * The rollout policy loader (protocol/rollout-policy.ts): defaults, the
 * checks the schema cannot make, and problems located at FILE:LINE:COL.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { formatProblem } from "../../../protocol/config-loader.ts";
import {
  loadRolloutPolicyFile,
  loadRolloutPolicyText,
  looksLikeRolloutPolicy,
  MAX_POLICY_BYTES,
  PolicyFileCache,
  parseBake,
} from "../../../protocol/rollout-policy.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";

const FULL = `schemaVersion: 1
steps:
  - { percent: 10, bake: 5m }
  - { percent: 50, bake: 10m }
  - { percent: 100 }
halt:
  health:
    minJoins: 20
    maxJoinFailureRate: 0.05
    maxIceFailureRate: 0.10
    maxRatioToBaseline: 2.0
  noTraffic: wait
`;

function lines(text: string): string[] {
  const r = loadRolloutPolicyText(text, { source: "rollout.yaml" });
  assert.equal(r.ok, false, "expected the policy to be refused");
  if (r.ok) return [];
  return r.problems.map((p) => formatProblem("rollout.yaml", p));
}

describe("rollout policy loader", () => {
  it("loads the documented example and normalises bake times", () => {
    const r = loadRolloutPolicyText(FULL);
    assert.ok(r.ok);
    assert.deepEqual(r.policy, {
      schemaVersion: 1,
      steps: [
        { percent: 10, bakeMs: 300_000 },
        { percent: 50, bakeMs: 600_000 },
        { percent: 100, bakeMs: 300_000 },
      ],
      halt: {
        health: { minJoins: 20, maxJoinFailureRate: 0.05, maxIceFailureRate: 0.1, maxRatioToBaseline: 2 },
        noTraffic: "wait",
      },
    });
  });

  it("fills every default of a minimal policy", () => {
    const r = loadRolloutPolicyText("schemaVersion: 1\nsteps: [{ percent: 100, bake: 30s }]\n");
    assert.ok(r.ok);
    assert.deepEqual(r.policy.steps, [{ percent: 100, bakeMs: 30_000 }]);
    assert.deepEqual(r.policy.halt, {
      health: { minJoins: 20, maxJoinFailureRate: 0.05, maxIceFailureRate: 0.1, maxRatioToBaseline: 2 },
      noTraffic: "wait",
    });
  });

  it("accepts JSON", () => {
    const r = loadRolloutPolicyText('{"schemaVersion":1,"steps":[{"percent":25},{"percent":100,"bake":"1.5h"}]}');
    assert.ok(r.ok);
    assert.equal(r.policy.steps[1]?.bakeMs, 5_400_000);
  });

  it("refuses steps that do not increase, at the offending line", () => {
    assert.deepEqual(lines("schemaVersion: 1\nsteps:\n  - percent: 50\n  - percent: 10\n  - percent: 100\n"), [
      "rollout.yaml:4:14: /steps/1/percent: steps must increase: 10 follows 50",
    ]);
  });

  it("refuses a last step below 100", () => {
    assert.deepEqual(lines("schemaVersion: 1\nsteps:\n  - percent: 10\n  - percent: 50\n"), [
      "rollout.yaml:4:14: /steps/1/percent: the last step must be 100 (percent), got 50",
    ]);
  });

  it("locates unknown keys, bad bake strings, out-of-range rates and bad enums", () => {
    const text = `schemaVersion: 1
steps:
  - { percent: 100, bake: 5 minutes, pause: true }
halt:
  health:
    maxJoinFailureRate: 1.5
  noTraffic: skip
`;
    const got = lines(text);
    assert.ok(
      got.some((l) => l.startsWith('rollout.yaml:3:38: /steps/0/pause: unknown key "pause"')),
      got.join("\n"),
    );
    assert.ok(
      got.some((l) => l.startsWith("rollout.yaml:3:27: /steps/0/bake: must match pattern")),
      got.join("\n"),
    );
    assert.ok(
      got.some((l) => l.startsWith("rollout.yaml:6:25: /halt/health/maxJoinFailureRate: must be <= 1")),
      got.join("\n"),
    );
    assert.ok(
      got.some((l) => l === 'rollout.yaml:7:14: /halt/noTraffic: must be one of "wait", "proceed"'),
      got.join("\n"),
    );
  });

  it("refuses percent 0, negative and above 100, and an empty steps list", () => {
    assert.ok(
      lines("schemaVersion: 1\nsteps: [{ percent: 0 }, { percent: 100 }]\n").some((l) =>
        l.includes("/steps/0/percent: must be > 0"),
      ),
    );
    assert.ok(
      lines("schemaVersion: 1\nsteps: [{ percent: 120 }]\n").some((l) =>
        l.includes("/steps/0/percent: must be <= 100"),
      ),
    );
    assert.ok(
      lines("schemaVersion: 1\nsteps: []\n").some((l) => l.includes("/steps: must NOT have fewer than 1 items")),
    );
  });

  it("reports a missing steps key and an unsupported schemaVersion", () => {
    assert.deepEqual(lines("schemaVersion: 1\n"), ['rollout.yaml:1:1: /: missing required key "steps"']);
    const r = loadRolloutPolicyText("schemaVersion: 2\nsteps: [{ percent: 100 }]\n", { source: "rollout.yaml" });
    assert.ok(!r.ok);
    assert.equal(r.code, "UNSUPPORTED_SCHEMA");
    assert.equal(
      formatProblem("rollout.yaml", r.problems[0]!),
      "rollout.yaml:1:16: /schemaVersion: schemaVersion 2 is not supported (supported: 1)",
    );
  });

  it("uses the config loader's YAML rules: duplicate keys, several documents, aliases, non-mappings", () => {
    assert.ok(
      lines("schemaVersion: 1\nsteps: [{ percent: 100 }]\nsteps: []\n")[0]?.includes(
        "rollout.yaml:3:1: /: YAML: Map keys must be unique",
      ),
    );
    assert.ok(
      lines("schemaVersion: 1\nsteps: [{ percent: 100 }]\n---\na: 1\n")[0]?.includes("multiple YAML documents"),
    );
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
    assert.ok(lines(bomb)[0]?.includes("YAML:"));
    assert.deepEqual(lines("- 1\n- 2\n"), [
      "rollout.yaml:1:1: /: a rollout policy must be a mapping with schemaVersion: 1, got a list",
    ]);
    assert.ok(lines("")[0]?.includes("empty"));
  });

  it("reads files: missing, too large, not UTF-8, valid", () => {
    const dir = mkdtempSync(join(tmpdir(), "rollout-policy-"));
    try {
      const missing = loadRolloutPolicyFile(join(dir, "nope.yaml"));
      assert.ok(!missing.ok && missing.code === "NOT_FOUND");
      writeFileSync(join(dir, "big.yaml"), `# ${"x".repeat(MAX_POLICY_BYTES)}\n`);
      const big = loadRolloutPolicyFile(join(dir, "big.yaml"));
      assert.ok(!big.ok && big.code === "INVALID_POLICY" && big.problems[0]?.message.includes("limit"));
      writeFileSync(join(dir, "bin.yaml"), Buffer.from([0xff, 0xfe, 0x00]));
      const bin = loadRolloutPolicyFile(join(dir, "bin.yaml"));
      assert.ok(!bin.ok && bin.problems[0]?.message.includes("UTF-8"));
      writeFileSync(join(dir, "rollout.yaml"), FULL);
      const ok = loadRolloutPolicyFile(join(dir, "rollout.yaml"));
      assert.ok(ok.ok);
      const isDir = loadRolloutPolicyFile(dir);
      assert.ok(!isDir.ok && isDir.code === "READ_FAILED");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("parses bake durations and tells a policy from a config", () => {
    assert.equal(parseBake("45s"), 45_000);
    assert.equal(parseBake("2m"), 120_000);
    assert.equal(parseBake("1h"), 3_600_000);
    assert.equal(parseBake("5"), null);
    assert.equal(parseBake("5ms"), null);
    assert.equal(looksLikeRolloutPolicy({ schemaVersion: 1, steps: [] }), true);
    assert.equal(looksLikeRolloutPolicy({ schemaVersion: 1, server: {}, webrtc: {} }), false);
    assert.equal(looksLikeRolloutPolicy(null), false);
  });
});

describe("PolicyFileCache: one parse per change", () => {
  it("re-reads of an unchanged file parse nothing; a kubelet swap with new content parses once; a touch does not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sfu-policy-cache-"));
    try {
      const writer = new AtomicWriter(dir);
      // A large policy (about 60 KB of comments), as in the issue.
      const padding = `# ${"x".repeat(98)}\n`.repeat(600);
      await writer.write({ "rollout.yaml": `${padding}${FULL}` });
      let parses = 0;
      const cache = new PolicyFileCache({
        parse: (text, o) => {
          parses++;
          return loadRolloutPolicyText(text, o);
        },
      });
      const path = join(dir, "rollout.yaml");
      for (let i = 0; i < 200; i++) {
        const r = cache.load(path, { source: "rollout.yaml" });
        assert.ok(r.ok && r.policy.steps.length === 3);
      }
      assert.equal(parses, 1, "200 reads of one file: one parse");
      // The same content written again (a new inode): identity changed, content did not.
      await writer.write({ "rollout.yaml": `${padding}${FULL}` });
      assert.ok(cache.load(path, { source: "rollout.yaml" }).ok);
      assert.equal(parses, 1, "same content, no parse");
      // New content through the kubelet's ..data swap: parsed once, then cached again.
      await writer.write({ "rollout.yaml": `${padding}schemaVersion: 1\nsteps:\n  - { percent: 100 }\n` });
      for (let i = 0; i < 50; i++) {
        const r = cache.load(path, { source: "rollout.yaml" });
        assert.ok(r.ok && r.policy.steps.length === 1);
      }
      assert.equal(parses, 2);
      // An invalid file is reported, and the next valid one parsed again.
      await writer.write({ "rollout.yaml": "schemaVersion: 1\nsteps: []\n" });
      assert.equal(cache.load(path, { source: "rollout.yaml" }).ok, false);
      assert.equal(cache.load(path, { source: "rollout.yaml" }).ok, false);
      assert.equal(parses, 3);
      // A file removed is NOT_FOUND, never the cached result.
      rmSync(join(dir, "rollout.yaml"));
      const gone = cache.load(path, { source: "rollout.yaml" });
      assert.ok(!gone.ok && gone.code === "NOT_FOUND");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
