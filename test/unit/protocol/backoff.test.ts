/**
 * The one backoff (protocol/backoff.ts): its three jitters, its defaults (the
 * SFU's reconnect rule, PROTOCOL.md section 3) and the periodic jitter.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { BACKOFF_DEFAULTS, backoffDelay, jittered, reconnectDelay } from "../../../protocol/backoff.ts";

describe("backoff", () => {
  it("grows exponentially within [base/2, max] with full jitter", () => {
    const o = { baseMs: 1000, maxMs: 30_000, jitter: "full" as const };
    assert.equal(
      backoffDelay(0, o, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(0, o, () => 0.999999),
      1000,
    );
    assert.equal(
      backoffDelay(3, o, () => 0.999999),
      8000,
    );
    assert.equal(
      backoffDelay(50, o, () => 0.999999),
      30_000,
    );
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (n, r) => {
        const d = backoffDelay(n, o, () => r);
        return d >= 500 && d <= 30_000;
      }),
    );
  });

  it("jitters intervals by the given spread", () => {
    assert.equal(
      jittered(1000, 0.5, () => 0),
      500,
    );
    assert.equal(
      jittered(1000, 0.5, () => 0.5),
      1000,
    );
  });
});

describe("backoff jitters and defaults", () => {
  it("defaults to PROTOCOL.md's reconnect rule: min(30 s, 0.5 s x 2^n) x [0.5, 1]", () => {
    assert.deepEqual(BACKOFF_DEFAULTS, { baseMs: 500, maxMs: 30_000, jitter: "half" });
    assert.deepEqual(
      [0, 1, 2, 10].map((n) => [backoffDelay(n, {}, () => 0), backoffDelay(n, {}, () => 0.999999)]),
      [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [15_000, 30_000],
      ],
    );
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (n, r) => {
        const o = { baseMs: 700, maxMs: 20_000 };
        return backoffDelay(n, o, () => r) === reconnectDelay(n, o, () => r);
      }),
    );
  });

  it("none: the ceiling itself, 1 s doubling to 30 s without a random draw", () => {
    const o = { baseMs: 1_000, maxMs: 30_000, jitter: "none" as const };
    assert.deepEqual(
      [0, 1, 4, 5, 6, 1000].map((n) => backoffDelay(n, o, () => 0.3)),
      [1_000, 2_000, 16_000, 30_000, 30_000, 30_000],
    );
  });
});
