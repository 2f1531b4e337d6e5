/** The `secrets-reload` message: its schema through the SFU-side parser, and `hello.features`. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { parseAgentFrame, parseSfuFrame } from "../../../protocol/messages.ts";
import { helloFeatures, SECRETS_RELOAD_FEATURE, secretsReloadMessage } from "../../../protocol/secrets-reload.ts";

const HASH = `sha256:${"ab".repeat(32)}`;

describe("secrets-reload", () => {
  it("the SFU parses a well-formed secrets-reload; the agent's parser refuses it as an unknown type", () => {
    const msg = secretsReloadMessage(7, { version: 3, hash: HASH }, 2);
    assert.deepEqual(msg, { type: "secrets-reload", nonce: 7, version: 3, hash: HASH, generation: 2 });
    const parsed = parseAgentFrame(JSON.stringify(msg));
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.message, msg);
    const agentSide = parseSfuFrame(JSON.stringify(msg));
    assert.ok(!agentSide.ok && agentSide.closeCode === CloseCode.UNKNOWN_TYPE);
  });

  it("refuses a missing or non-integer generation, a bad hash, a zero nonce (4003)", () => {
    const good = { type: "secrets-reload", nonce: 1, version: 1, hash: HASH, generation: 1 };
    for (const bad of [
      { ...good, generation: undefined },
      { ...good, generation: 1.5 },
      { ...good, generation: 0 },
      { ...good, hash: "sha256:xyz" },
      { ...good, nonce: 0 },
    ]) {
      const r = parseAgentFrame(JSON.stringify(bad));
      assert.ok(!r.ok, JSON.stringify(bad));
      assert.equal(r.closeCode, CloseCode.INVALID_MESSAGE);
    }
  });

  it("hello.features: strings only, bounded, absent = none", () => {
    assert.deepEqual(helloFeatures({ type: "hello" }), []);
    assert.deepEqual(helloFeatures({ features: "secrets-reload" }), []);
    assert.deepEqual(helloFeatures({ features: [SECRETS_RELOAD_FEATURE, 7, null, "x".repeat(65), "other"] }), [
      "secrets-reload",
      "other",
    ]);
    assert.equal(helloFeatures({ features: Array.from({ length: 1000 }, () => "f") }).length, 64);
    assert.deepEqual(helloFeatures(null), []);
  });

  it("a hello with features still parses (hello allows extra properties)", () => {
    const hello = {
      type: "hello",
      protocol: 1,
      sfu: { name: "x", version: "1" },
      schemaVersions: [1, 2],
      applied: null,
      features: [SECRETS_RELOAD_FEATURE],
    };
    const r = parseSfuFrame(JSON.stringify(hello));
    assert.ok(r.ok);
    assert.deepEqual(helloFeatures(r.message), ["secrets-reload"]);
  });
});
