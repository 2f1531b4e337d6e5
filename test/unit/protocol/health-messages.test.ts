/**
 * The optional call-health messages (PROTOCOL.md section 15): the `health`
 * frame an SFU sends the agent and the `sfu-config.health` event an agent
 * publishes during a rollout; the documented examples parse; the feature
 * header token parser of the SFU.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { configHash } from "../../../protocol/hash.ts";
import { parseAgentFrame, parseHealthEvent, parseSfuFrame } from "../../../protocol/messages.ts";
import { FEATURES_HEADER, HEALTH_FEATURE } from "../../../protocol/messages-schema.ts";
import { advertises } from "../../../sfu/config-client.ts";

const H = configHash({ x: 1 });
const health = {
  type: "health",
  hash: H,
  since: "2026-12-02T05:00:00.000Z",
  joins: 3,
  joinFailures: 1,
  iceConnected: 2,
  iceFailures: 0,
};
const DOC = readFileSync(join(import.meta.dirname, "..", "..", "..", "protocol", "PROTOCOL.md"), "utf8");
function block(marker: string): string {
  const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
  assert.ok(m, `<!-- ${marker} --> block in PROTOCOL.md`);
  return m[1]!;
}

describe("health frame (SFU -> agent)", () => {
  it("a valid frame parses, extra fields are allowed", () => {
    const r = parseSfuFrame(JSON.stringify({ ...health, extra: true }));
    assert.ok(r.ok);
    assert.equal(r.message.type, "health");
  });

  it("missing, negative, fractional or wrongly typed counters close with 4003", () => {
    for (const bad of [
      { ...health, joins: undefined },
      { ...health, iceFailures: -1 },
      { ...health, iceConnected: 1.5 },
      { ...health, joinFailures: "1" },
      { ...health, hash: "sha256:XYZ" },
      { ...health, since: "yesterday" },
    ]) {
      const r = parseSfuFrame(JSON.stringify(bad));
      assert.ok(!r.ok, JSON.stringify(bad));
      assert.equal(r.closeCode, CloseCode.INVALID_MESSAGE);
      assert.match(r.reason, /^invalid health: /);
    }
  });

  it("the agent never sends it: the SFU's parser refuses it as an unknown type", () => {
    const r = parseAgentFrame(JSON.stringify(health));
    assert.ok(!r.ok);
    assert.equal(r.closeCode, CloseCode.UNKNOWN_TYPE);
  });

  it("the documented example parses", () => {
    const r = parseSfuFrame(block("example:health"));
    assert.ok(r.ok, !r.ok ? r.reason : "");
  });
});

describe("sfu-config.health event", () => {
  const event = {
    type: "sfu-config.health",
    pod: "p-1",
    rank: 0.25,
    hash: H,
    stage: "canary",
    health: { ...health, type: undefined },
    at: "2026-12-02T05:00:10.000Z",
  };

  it("parses raw and in an SNS envelope; rank must lie in [0, 1)", () => {
    const raw = parseHealthEvent(JSON.stringify(event));
    assert.ok(raw.ok && !raw.envelope);
    const wrapped = parseHealthEvent(JSON.stringify({ Type: "Notification", Message: JSON.stringify(event) }));
    assert.ok(wrapped.ok && wrapped.envelope);
    assert.deepEqual(wrapped.event, raw.event);
    for (const rank of [1, -0.1, "0.5"]) assert.ok(!parseHealthEvent(JSON.stringify({ ...event, rank })).ok);
    const noCounters = { ...event, health: { hash: H, since: health.since } };
    const r = parseHealthEvent(JSON.stringify(noCounters));
    assert.ok(!r.ok);
    assert.match(r.reason, /joins/);
  });

  it("the documented example parses", () => {
    assert.ok(parseHealthEvent(block("example:health-event")).ok);
  });
});

describe("feature header", () => {
  it("the header name and token are the documented ones", () => {
    assert.ok(DOC.includes(`${FEATURES_HEADER}: ${HEALTH_FEATURE}`));
  });

  it("advertises() reads a comma-separated, case-insensitive token list", () => {
    assert.equal(advertises("health", "health"), true);
    assert.equal(advertises("other, Health ", "health"), true);
    assert.equal(advertises(["a", "health"], "health"), true);
    assert.equal(advertises("healthy", "health"), false);
    assert.equal(advertises("", "health"), false);
    assert.equal(advertises(undefined, "health"), false);
  });
});
