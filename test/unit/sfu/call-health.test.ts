/**
 * sfu/call-health.ts: counters per applied hash, restarted when another hash
 * is applied (not when the same hash is re-applied under a new version), and
 * outcomes of calls created under another hash ignored.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configHash } from "../../../protocol/hash.ts";
import { CallHealth } from "../../../sfu/call-health.ts";
import { type ConfigSnapshot, ConfigState } from "../../../sfu/config-state.ts";

const A = configHash({ a: 1 });
const B = configHash({ b: 1 });
function snap(version: number, hash: string, appliedAt: number): ConfigSnapshot {
  return {
    version,
    hash: hash as ConfigSnapshot["hash"],
    revision: null,
    config: {} as ConfigSnapshot["config"],
    turn: [],
    secretsReloads: 0,
    appliedAt,
  };
}

describe("CallHealth", () => {
  it("is null before the first config, then counts for the applied hash from its appliedAt", () => {
    const state = new ConfigState();
    const h = new CallHealth(state);
    assert.equal(h.snapshot(), null);
    h.record("join", A); // nothing applied: ignored
    state.swap(snap(1, A, Date.parse("2026-12-02T05:00:00Z")));
    h.record("join", A);
    h.record("join", A);
    h.record("joinFailure", A);
    h.record("iceConnected", A);
    h.record("iceFailure", A);
    assert.deepEqual(h.snapshot(), {
      hash: A,
      since: "2026-12-02T05:00:00.000Z",
      joins: 2,
      joinFailures: 1,
      iceConnected: 1,
      iceFailures: 1,
    });
  });

  it("restarts on another hash, not on the same hash under a new version; old calls do not count", () => {
    const state = new ConfigState();
    state.swap(snap(1, A, 1000));
    const h = new CallHealth(state);
    h.record("join", A);
    state.swap(snap(2, A, 2000)); // same hash, new version (acked without re-applying)
    assert.equal(h.snapshot()?.joins, 1);
    assert.equal(h.snapshot()?.since, new Date(1000).toISOString());
    state.swap(snap(3, B, 3000));
    assert.deepEqual(h.snapshot(), {
      hash: B,
      since: new Date(3000).toISOString(),
      joins: 0,
      joinFailures: 0,
      iceConnected: 0,
      iceFailures: 0,
    });
    h.record("iceFailure", A); // a call set up under A fails after B was applied
    assert.equal(h.snapshot()?.iceFailures, 0);
    h.record("iceFailure", B);
    assert.equal(h.snapshot()?.iceFailures, 1);
  });

  it("notifies listeners and bumps the generation on every change; snapshot is a copy", () => {
    const state = new ConfigState();
    state.swap(snap(1, A, 1000));
    const h = new CallHealth(state);
    let calls = 0;
    const off = h.onChange(() => calls++);
    const g0 = h.generation;
    h.record("join", A);
    h.record("join", B); // ignored: no change
    state.swap(snap(2, B, 2000));
    assert.equal(calls, 2);
    assert.equal(h.generation, g0 + 2);
    const s = h.snapshot()!;
    s.joins = 99;
    assert.equal(h.snapshot()?.joins, 0);
    off();
    h.close();
    state.swap(snap(3, A, 3000));
    assert.equal(h.snapshot()?.hash, B, "closed: no longer follows the state");
  });
});
