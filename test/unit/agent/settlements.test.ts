import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { createQueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import { Settler } from "../../../agent/sidecar/queue/settlement.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import { SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { StatusTracker } from "../../../agent/sidecar/status-tracker.ts";
import { loadedConfig, offerConfig } from "../../helpers/config-text.ts";
import { ManualTimers } from "../queue/manual-timers.ts";

const C1 = await loadedConfig(1);
const C2 = await loadedConfig(2);
const TIMEOUT_MS = 60_000;

function setup(watchDesired: boolean) {
  const timers = new ManualTimers();
  const clock = () => new Date(timers.now());
  const store = new SnapshotStore({ clock });
  const tracker = new StatusTracker({ store, clock });
  const engine = new SettlementEngine({ tracker, clock }, { watchDesired });
  engine.start();
  const settler = new Settler({
    store: engine,
    timers,
    logger: pino({ level: "silent" }),
    metrics: createQueueMetrics(new Registry()),
    actions: { delete: async () => {}, extend: async () => {} },
    options: { propagationTimeoutMs: TIMEOUT_MS, visibilityTimeoutSeconds: 30 },
  });
  settler.start();
  let seq = 0;
  const message = (hash: string) => {
    seq++;
    return {
      messageId: `m-${seq}`,
      receiptHandle: `rh-${seq}`,
      body: JSON.stringify({
        type: "sfu-config.reload",
        revision: "rev",
        hash,
        configMap: null,
        issuedAt: new Date(timers.now() + seq).toISOString(),
      }),
    };
  };
  const outcomes = () => tracker.settlements().map((s) => `${s.hash === C1.hash ? "c1" : "c2"}:${s.outcome}`);
  return { timers, store, tracker, engine, settler, message, outcomes };
}

test("a queue wait settles before the late-applied rule: a timed-out hash applied while a new event waits settles applied once", () => {
  const { timers, store, settler, message, outcomes } = setup(false);
  const v1 = offerConfig(store, C1.config, C1.hash).version;
  store.markApplied(v1, C1.hash);
  settler.handle(message(C2.hash));
  const v2 = offerConfig(store, C2.config, C2.hash).version;
  timers.advance(TIMEOUT_MS);
  assert.deepEqual(outcomes(), ["c2:timeout"]);
  // A second event for the same hash waits (the file has it, the SFU has not answered).
  assert.equal(settler.handle(message(C2.hash)), "accepted");
  assert.equal(settler.pendingHashes().length, 1);
  store.markApplied(v2, C2.hash);
  assert.deepEqual(outcomes(), ["c2:timeout", "c2:applied"], "the wait's applied is the late-applied one");
  assert.equal(settler.pendingHashes().length, 0);
  settler.stop();
});

test("a stopped engine settles nothing more: neither queue waits nor desired versions", () => {
  const { store, engine, settler, message, outcomes } = setup(true);
  offerConfig(store, C1.config, C1.hash);
  engine.stop();
  settler.handle(message(C2.hash));
  const v2 = offerConfig(store, C2.config, C2.hash).version;
  store.markApplied(v2, C2.hash);
  assert.deepEqual(outcomes(), [], "no watch-only superseded for C1, no applied for C2");
  assert.equal(settler.pendingHashes().length, 1, "no store event reaches the queue wait");
  settler.stop();
});
