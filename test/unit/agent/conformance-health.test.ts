/**
 * The conformance kit's check of an SFU's `health` frames
 * (agent/conformance/cases.ts checkHealthFrames).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkHealthFrames } from "../../../agent/conformance/cases.ts";
import { configHash } from "../../../protocol/hash.ts";
import type { HealthMessage } from "../../../protocol/messages-schema.ts";

const A = configHash({ a: 1 });
const B = configHash({ b: 1 });
const frame = (hash: string, joins: number, extra: Partial<HealthMessage> = {}): HealthMessage => ({
  type: "health",
  hash,
  since: hash === A ? "2026-12-02T05:00:00.000Z" : "2026-12-02T05:01:00.000Z",
  joins,
  joinFailures: 0,
  iceConnected: 0,
  iceFailures: 0,
  ...extra,
});

describe("checkHealthFrames", () => {
  it("passes increasing counters that end on the applied hash, with a note", () => {
    const r = checkHealthFrames([frame(A, 0), frame(A, 2, { iceConnected: 1, iceFailures: 1 }), frame(B, 0)], B);
    assert.deepEqual(r, { ok: true, notes: ["3 health frame(s); latest: joins 0, iceFailures 0"] });
  });

  it("fails counters that go down, a changed since, more outcomes than joins, or a stale hash", () => {
    const cases: [HealthMessage[], RegExp][] = [
      [[frame(A, 3), frame(A, 2)], /joins went down from 3 to 2/],
      [[frame(A, 1), frame(A, 1, { since: "2026-12-02T06:00:00.000Z" })], /since changed/],
      [[frame(A, 1, { iceConnected: 1, iceFailures: 1 })], /more outcomes than joins/],
      [[frame(A, 1, { joinFailures: 2 })], /more outcomes than joins/],
      [[frame(A, 1)], /names sha256:.*not the last acked hash/],
    ];
    for (const [frames, reason] of cases) {
      const r = checkHealthFrames(frames, B);
      assert.ok(!r.ok);
      assert.match(r.reason, reason);
    }
  });

  it("does not check the hash when the applied hash is unknown", () => {
    assert.ok(checkHealthFrames([frame(A, 1)], null).ok);
  });
});
