/**
 * The verdict of one AdmissionReview (agent/admission/review.ts): what is
 * judged and with which rules (the config and rollout loaders, `--config-key`,
 * `--secrets-dir` by path only), what is allowed unseen, what is malformed,
 * and the caps on the denial message and the warnings.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_WARNING_BYTES, type ReviewOptions, reviewAdmission } from "../../../../agent/admission/review.ts";
import { admissionReview, configMap, type ReviewShape } from "../../../helpers/admission.ts";
import { configText } from "../../../helpers/config-text.ts";

const OPTIONS: ReviewOptions = { configKey: "config.yaml", rolloutKey: "rollout.yaml", secretsDir: "/etc/sfu/secrets" };

async function judge(shape: ReviewShape, options: ReviewOptions = OPTIONS) {
  const { uid, review } = admissionReview(shape);
  const r = await reviewAdmission(review, options);
  assert.ok(!("malformed" in r), JSON.stringify(r));
  assert.equal(r.reply.response.uid, uid);
  return r;
}

function turnServers(n: number, extra: (i: number) => string): string {
  const servers = Array.from(
    { length: n },
    (_, i) => `    - urls: ["turn:turn${i}.example.com:3478"]\n      username: u${i}\n${extra(i)}`,
  ).join("\n");
  return `schemaVersion: 1\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n  turnServers:\n${servers}\n`;
}

describe("reviewAdmission", () => {
  it("reports a request that is not an AdmissionReview v1 with a uid as malformed", async () => {
    const good = admissionReview({ operation: "CREATE", object: configMap({ "config.yaml": configText(1) }) }).review;
    const request = good["request"] as Record<string, unknown>;
    for (const bad of [
      null,
      "text",
      [],
      { ...good, apiVersion: "admission.k8s.io/v1beta1" },
      { ...good, kind: "AdmissionResponse" },
      { ...good, request: undefined },
      { ...good, request: { ...request, uid: "" } },
      { ...good, request: { ...request, uid: "u".repeat(129) } },
      { ...good, request: { ...request, uid: 7 } },
      { ...good, request: { ...request, object: null } },
    ]) {
      const r = await reviewAdmission(bad, OPTIONS);
      assert.ok("malformed" in r, JSON.stringify(bad)?.slice(0, 80));
    }
  });

  it("allows unseen what is not a config ConfigMap: other operations, kinds, groups, no config key", async () => {
    const invalid = configMap({ "config.yaml": "schemaVersion: 9\n" });
    for (const shape of [
      { operation: "DELETE", oldObject: invalid },
      { operation: "CONNECT", object: invalid },
      { operation: "CREATE", object: invalid, kind: { group: "", version: "v1", kind: "Secret" } },
      { operation: "CREATE", object: invalid, kind: { group: "example.com", version: "v1", kind: "ConfigMap" } },
      { operation: "UPDATE", object: configMap({ "rollout.yaml": "not: a policy" }) },
    ] as ReviewShape[]) {
      const r = await judge(shape);
      assert.equal(r.outcome, "skipped", JSON.stringify(shape.kind ?? shape.operation));
      assert.deepEqual(r.reply.response, { uid: r.reply.response.uid, allowed: true });
    }
  });

  it("reads the config from --config-key and the policy from --rollout-key", async () => {
    const options = { ...OPTIONS, configKey: "sfu.yaml", rolloutKey: "steps.yaml" };
    const skipped = await judge({ operation: "CREATE", object: configMap({ "config.yaml": "x: 1" }) }, options);
    assert.equal(skipped.outcome, "skipped");
    const denied = await judge(
      {
        operation: "CREATE",
        object: configMap({ "sfu.yaml": configText(1), "steps.yaml": "schemaVersion: 1\nsteps: []\n" }),
      },
      options,
    );
    assert.equal(denied.outcome, "denied");
    assert.match(String(denied.reply.response.status?.message), /^steps\.yaml:\d+:\d+: \/steps: /);
  });

  it("checks secret file paths against --secrets-dir without opening them (--no-check-files)", async () => {
    const inside = turnServers(1, () => "      credentialFile: /etc/sfu/secrets/turn-not-mounted-here");
    assert.equal(
      (await judge({ operation: "CREATE", object: configMap({ "config.yaml": inside }) })).outcome,
      "allowed",
    );
    const outside = turnServers(1, () => "      credentialFile: /etc/passwd");
    const r = await judge({ operation: "CREATE", object: configMap({ "config.yaml": outside }) });
    assert.equal(r.outcome, "denied");
    assert.match(String(r.reply.response.status?.message), /credentialFile: .*\/etc\/sfu\/secrets/);
  });

  it("caps the denial like validate (20 problems, then one line) and the warnings to what the API server keeps", async () => {
    const many = turnServers(30, (i) => `      credential: secret-${i}\n      bogus${i}: 1`);
    const r = await judge({ operation: "UPDATE", object: configMap({ "config.yaml": many }) });
    assert.equal(r.outcome, "denied");
    const lines = String(r.reply.response.status?.message).split("\n");
    assert.equal(lines.length, 21);
    assert.match(lines[20] as string, /^config\.yaml:1:1: \/: and 10 more problem\(s\) not shown$/);
    const warnings = r.reply.response.warnings ?? [];
    assert.ok(warnings.length > 0);
    assert.ok(warnings.reduce((n, w) => n + Buffer.byteLength(w), 0) <= MAX_WARNING_BYTES);
    for (const w of warnings) assert.ok(w.length <= 256, w);
    assert.ok(!JSON.stringify(r.reply).includes("secret-1"), "no credential in the reply");
  });

  it("denies what cannot be the file the kubelet would write: a non-string value, bad base64, bad UTF-8", async () => {
    const nonString = { ...configMap({}), data: { "config.yaml": 7 } };
    const badBase64 = { ...configMap({}), data: undefined, binaryData: { "config.yaml": "not base64!" } };
    const badUtf8 = {
      ...configMap({}),
      data: undefined,
      binaryData: { "config.yaml": Buffer.from([0xff, 0xfe]).toString("base64") },
    };
    const badPolicy = {
      ...configMap({ "config.yaml": configText(1) }),
      binaryData: { "rollout.yaml": Buffer.from([0xc3]).toString("base64") },
    };
    for (const object of [nonString, badBase64, badUtf8, badPolicy]) {
      const r = await judge({ operation: "CREATE", object });
      assert.equal(r.outcome, "denied", JSON.stringify(object).slice(0, 120));
      assert.equal(r.reply.response.status?.code, 422);
      assert.match(String(r.reply.response.status?.message), /^(config|rollout)\.yaml:1:1: \/: /);
    }
  });

  it("says what the review concerned, escaped, for the log line", async () => {
    const r = await judge({
      operation: "CREATE",
      object: configMap({ "config.yaml": configText(1) }),
      name: "sfu-config\u001b[2J",
      dryRun: true,
    });
    assert.equal(r.object, "sfu/sfu-config\\x1b[2J");
    assert.equal(r.dryRun, true);
    assert.equal(r.operation, "CREATE");
  });
});
