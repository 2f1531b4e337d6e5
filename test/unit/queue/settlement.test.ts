import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { createQueueMetrics, type QueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import {
  DEFAULT_MAX_MESSAGES_PER_WAIT,
  DEFAULT_MAX_PENDING,
  type MessageActions,
  Settler,
} from "../../../agent/sidecar/queue/settlement.ts";
import { statusEvent } from "../../../agent/sidecar/queue/status-publisher.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import type { Settlement } from "../../../agent/sidecar/snapshot-store.ts";
import { SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { StatusTracker } from "../../../agent/sidecar/status-tracker.ts";
import { loadedConfig, offerConfig } from "../../helpers/config-text.ts";
import { ManualTimers } from "./manual-timers.ts";

const C1 = await loadedConfig(1);
const C2 = await loadedConfig(2);
const C3 = await loadedConfig(3);

let seq = 0;
function event(
  hash: string,
  extra: Record<string, unknown> = {},
): { messageId: string; receiptHandle: string; body: string } {
  seq++;
  return {
    messageId: `m-${seq}`,
    receiptHandle: `rh-${seq}`,
    body: JSON.stringify({
      type: "sfu-config.reload",
      revision: "rev-1",
      hash,
      configMap: "sfu/sfu-config",
      issuedAt: new Date(Date.parse("2026-11-26T20:59:00Z") + seq).toISOString(),
      ...extra,
    }),
  };
}

class RecordingActions implements MessageActions {
  deleted: string[] = [];
  extended: Array<{ handles: string[]; seconds: number }> = [];
  async delete(handles: string[]): Promise<void> {
    this.deleted.push(...handles);
  }
  async extend(handles: string[], seconds: number): Promise<void> {
    this.extended.push({ handles, seconds });
  }
}

describe("Settler", () => {
  let timers: ManualTimers;
  let store: SnapshotStore;
  let tracker: StatusTracker;
  let checks: number;
  let actions: RecordingActions;
  let metrics: QueueMetrics;
  let registry: Registry;
  let settled: Settlement[];
  let settler: Settler;

  beforeEach(() => {
    timers = new ManualTimers();
    store = new SnapshotStore({ clock: () => new Date(timers.now()) });
    tracker = new StatusTracker({ store, clock: () => new Date(timers.now()) });
    const settlements = new SettlementEngine({ tracker, clock: () => new Date(timers.now()) }, { watchDesired: false });
    settlements.start();
    checks = 0;
    actions = new RecordingActions();
    registry = new Registry();
    metrics = createQueueMetrics(registry);
    settled = [];
    settler = new Settler({
      store: settlements,
      checkFile: async () => {
        checks++;
      },
      timers,
      logger: pino({ level: "silent" }),
      metrics,
      actions,
      onSettled: (r) => settled.push(r),
      options: { propagationTimeoutMs: 300_000, visibilityTimeoutSeconds: 60 },
    });
    settler.start();
  });

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = (m?.values as Array<{ labels: Record<string, string>; value: number }> | undefined)?.find((x) =>
      Object.entries(labels).every(([k, val]) => x.labels[k] === val),
    );
    return v?.value ?? 0;
  }

  it("settles applied at once when the file has the hash and the SFU acked it", async () => {
    const v = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v, C1.hash);
    const m = event(C1.hash);
    assert.equal(settler.handle(m), "accepted");
    assert.equal(settled.length, 1);
    assert.equal(settled[0]?.outcome, "applied");
    assert.equal(settled[0]?.version, v);
    assert.equal(settled[0]?.revision, "rev-1");
    assert.deepEqual(actions.deleted, [m.receiptHandle]);
    assert.equal(tracker.settlements().length, 1);
    assert.equal(await metric("sfu_agent_settlements_total", { outcome: "applied" }), 1);
    assert.equal(timers.pending, 0);
  });

  it("measures publication to file swap and to the SFU's ack (settlement, status event, histograms)", async () => {
    const v1 = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v1, C1.hash);
    // Published 2 s before the agent's clock: the agent receives it now.
    settler.handle(event(C2.hash, { issuedAt: new Date(timers.now() - 2_000).toISOString() }));
    timers.advance(1_500);
    const { version } = offerConfig(store, C2.config, C2.hash);
    timers.advance(250);
    store.markApplied(version, C2.hash);
    assert.equal(settled[0]?.outcome, "applied");
    assert.equal(settled[0]?.propagationSeconds, 3.5);
    assert.equal(settled[0]?.eventToAppliedSeconds, 3.75);
    assert.equal(tracker.settlements()[0]?.propagationSeconds, 3.5, "/status shows the figures");
    const ev = statusEvent("pod-a", settled[0] as Settlement) as Record<string, unknown>;
    assert.equal(ev.propagationSeconds, 3.5);
    assert.equal(ev.eventToAppliedSeconds, 3.75);
    const hist = async (name: string) => {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
      const values = m?.values as Array<{ metricName?: string; labels: Record<string, unknown>; value: number }>;
      const sum = values.find((x) => x.metricName === `${name}_sum`)?.value;
      const le5 = values.find((x) => x.metricName === `${name}_bucket` && x.labels.le === 5)?.value;
      const le3 = values.find((x) => x.metricName === `${name}_bucket` && x.labels.le === 3)?.value;
      return { sum, le3, le5 };
    };
    assert.deepEqual(await hist("sfu_agent_propagation_seconds"), { sum: 3.5, le3: 0, le5: 1 });
    assert.deepEqual(await hist("sfu_agent_event_to_applied_seconds"), { sum: 3.75, le3: 0, le5: 1 });
  });

  it("a rejected hash has a propagation figure but no event-to-applied one; an issuedAt ahead of our clock counts 0", async () => {
    const v1 = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v1, C1.hash);
    settler.handle(event(C2.hash, { issuedAt: new Date(timers.now() + 60_000).toISOString() }));
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markRejected(version, C2.hash, { code: "UNSUPPORTED", message: "no" });
    assert.equal(settled[0]?.outcome, "rejected");
    assert.equal(settled[0]?.propagationSeconds, 0);
    assert.equal(settled[0]?.eventToAppliedSeconds, undefined);
  });

  it("an article-style message (no publication time) carries no propagation figures", async () => {
    const v1 = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v1, C1.hash);
    settler.handle({ messageId: "legacy-1", receiptHandle: "rh-l", body: '{"event":"configReload","commit":"abc"}' });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled[0]?.outcome, "applied");
    assert.equal(settled[0]?.propagationSeconds, undefined);
    assert.equal(settled[0]?.eventToAppliedSeconds, undefined);
  });

  it("holds an event that arrives before the swap, extends its visibility, and settles applied after the ack", async () => {
    const v1 = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v1, C1.hash);
    const m = event(C2.hash, { revision: "rev-2" });
    settler.handle(m);
    assert.deepEqual(settler.pendingHashes(), [C2.hash]);
    timers.advance(5_000);
    assert.equal(settled.length, 0);
    assert.deepEqual(actions.deleted, [], "not deleted before the swap");
    timers.advance(30_000);
    assert.deepEqual(actions.extended, [{ handles: [m.receiptHandle], seconds: 60 }]);
    const { version } = offerConfig(store, C2.config, C2.hash, tracker.revisionOf(C2.hash));
    assert.equal(store.desired()?.revision, "rev-2", "the revision reaches the desired snapshot (and the push)");
    assert.equal(settled.length, 0, "the file has the hash but the SFU has not acked yet");
    store.markApplied(version, C2.hash);
    assert.equal(settled[0]?.outcome, "applied");
    assert.equal(settled[0]?.version, version);
    assert.deepEqual(actions.deleted, [m.receiptHandle]);
    assert.equal(await metric("sfu_agent_queue_pending_settlements", {}), 0);
  });

  it("settles rejected when the SFU nacks the awaited hash", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markRejected(version, C2.hash, { code: "RESTART_REQUIRED", message: "server.port changed" });
    assert.equal(settled[0]?.outcome, "rejected");
    assert.deepEqual(settled[0]?.error, { code: "RESTART_REQUIRED", message: "server.port changed" });
    assert.equal(settled[0]?.version, version);
  });

  it("settles rejected at once when the hash in the file was already nacked", () => {
    const { version } = offerConfig(store, C1.config, C1.hash);
    store.markRejected(version, C1.hash, { code: "APPLY_FAILED", message: "boom" });
    settler.handle(event(C1.hash));
    assert.equal(settled[0]?.outcome, "rejected");
    assert.equal(settled[0]?.error?.code, "APPLY_FAILED");
  });

  it("settles timeout after the propagation timeout and deletes the message", () => {
    offerConfig(store, C1.config, C1.hash);
    const m = event(C2.hash);
    settler.handle(m);
    timers.advance(299_999);
    assert.equal(settled.length, 0);
    timers.advance(1);
    assert.equal(settled[0]?.outcome, "timeout");
    assert.equal(settled[0]?.error?.code, "PROPAGATION_TIMEOUT");
    assert.match(settled[0]?.error?.message ?? "", /did not change/);
    assert.deepEqual(actions.deleted, [m.receiptHandle]);
    assert.equal(timers.pending, 0, "no timers left behind");
  });

  it("reports a timeout waiting for the SFU differently from one waiting for the file", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markAckTimeout(version, C2.hash);
    timers.advance(300_000);
    assert.equal(settled[0]?.outcome, "timeout");
    assert.match(settled[0]?.error?.message ?? "", /SFU did not acknowledge.*ack timeout/);
  });

  it("settles superseded when the file changes to another valid hash while waiting", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    offerConfig(store, C3.config, C3.hash);
    assert.equal(settled[0]?.outcome, "superseded");
    assert.equal(settled[0]?.error?.code, "SUPERSEDED");
  });

  it("settles superseded when the file moves on after reaching the hash but before the ack", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    offerConfig(store, C2.config, C2.hash);
    offerConfig(store, C3.config, C3.hash);
    assert.equal(settled[0]?.outcome, "superseded");
  });

  it("settles superseded at once when the file holds a hash a newer event announced", () => {
    offerConfig(store, C1.config, C1.hash);
    const newer = event(C2.hash, { issuedAt: "2026-11-26T20:59:30Z" });
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markApplied(version, C2.hash);
    settler.handle(newer);
    assert.equal(settled[0]?.outcome, "applied");
    settler.handle(event(C3.hash, { issuedAt: "2026-11-26T20:59:10Z" }));
    assert.equal(settled[1]?.outcome, "superseded");
  });

  it("settles invalid when the file changes to invalid content while waiting", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    store.recordInvalid("sha256:" + "0".repeat(64), {
      code: "INVALID_CONFIG",
      message: "config.yaml:3:5: /webrtc: bad",
    });
    assert.equal(settled[0]?.outcome, "invalid");
    assert.deepEqual(settled[0]?.error, { code: "INVALID_CONFIG", message: "config.yaml:3:5: /webrtc: bad" });
  });

  it("treats redeliveries as no-ops: one wait, one settlement, every copy deleted", async () => {
    offerConfig(store, C1.config, C1.hash);
    const m = event(C2.hash);
    assert.equal(settler.handle(m), "accepted");
    // the same SQS message redelivered (new receipt handle) and the same event published twice
    assert.equal(settler.handle({ ...m, receiptHandle: "rh-again" }), "duplicate");
    assert.equal(settler.handle({ ...m, messageId: "other-id", receiptHandle: "rh-other" }), "duplicate");
    // a different event (another PostSync run) for the same hash joins the wait
    assert.equal(settler.handle(event(C2.hash)), "joined");
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markApplied(version, C2.hash);
    assert.equal(settled.length, 1);
    assert.equal(actions.deleted.length, 3);
    assert.ok(actions.deleted.includes("rh-again") && actions.deleted.includes("rh-other"));
    // after settling, a late redelivery is deleted without a new settlement
    assert.equal(settler.handle({ ...m, receiptHandle: "rh-late" }), "duplicate");
    assert.equal(settled.length, 1);
    assert.ok(actions.deleted.includes("rh-late"));
    assert.equal(await metric("sfu_agent_queue_messages_total", { result: "duplicate" }), 3);
  });

  it("settles a new event for the hash already applied at once (a PostSync with no change)", () => {
    const { version } = offerConfig(store, C1.config, C1.hash);
    store.markApplied(version, C1.hash);
    settler.handle(event(C1.hash));
    settler.handle(event(C1.hash));
    assert.deepEqual(
      settled.map((s) => s.outcome),
      ["applied", "applied"],
    );
  });

  it("deletes and counts malformed bodies and keeps going", async () => {
    for (const body of ["not json", "{}", JSON.stringify({ type: "sfu-config.reload", hash: "md5:x" }), ""]) {
      assert.equal(settler.handle({ messageId: body, receiptHandle: `rh-${body}`, body }), "malformed");
    }
    assert.equal(actions.deleted.length, 4);
    assert.equal(await metric("sfu_agent_queue_messages_total", { result: "malformed" }), 4);
    offerConfig(store, C1.config, C1.hash);
    store.markApplied(1, C1.hash);
    settler.handle(event(C1.hash));
    assert.equal(settled[0]?.outcome, "applied");
  });

  it("accepts the SNS envelope as well as raw delivery", () => {
    const { version } = offerConfig(store, C1.config, C1.hash);
    store.markApplied(version, C1.hash);
    const raw = event(C1.hash);
    const wrapped = { ...raw, body: JSON.stringify({ Type: "Notification", MessageId: "x", Message: raw.body }) };
    assert.equal(settler.handle(wrapped), "accepted");
    assert.equal(settled[0]?.outcome, "applied");
  });

  it("settles applied when an SFU reconnects with hello.applied at the awaited hash", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.adoptSfuApplied({ version, hash: C2.hash });
    assert.equal(settled[0]?.outcome, "applied");
    assert.equal(settled[0]?.version, version);
    assert.equal(tracker.settlements().length, 1, "the tracker adds no second applied settlement");
  });

  it("waits on several hashes independently", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    settler.handle(event(C3.hash));
    assert.equal(settler.pendingHashes().length, 2);
    const { version } = offerConfig(store, C3.config, C3.hash);
    assert.deepEqual(
      settled.map((s) => [s.hash, s.outcome]),
      [[C2.hash, "superseded"]],
    );
    store.markApplied(version, C3.hash);
    assert.deepEqual(settled[1] && [settled[1].hash, settled[1].outcome], [C3.hash, "applied"]);
  });

  it("stop() drops waits without settling or deleting and clears every timer", () => {
    offerConfig(store, C1.config, C1.hash);
    settler.handle(event(C2.hash));
    settler.stop();
    assert.equal(timers.pending, 0);
    timers.advance(600_000);
    assert.equal(settled.length, 0);
    assert.deepEqual(actions.deleted, []);
  });

  it('takes the article-style {"event":"configReload","commit"} as "check the file now" and settles with commit as revision', async () => {
    const v = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v, C1.hash);
    const body = JSON.stringify({ event: "configReload", commit: "0123abcd" });
    const m = { messageId: "legacy-1", receiptHandle: "rh-legacy-1", body };
    assert.equal(settler.handle(m), "legacy");
    await new Promise((r) => setImmediate(r));
    assert.equal(checks, 1, "the mounted file is re-read");
    assert.equal(settled.length, 1);
    assert.deepEqual(
      { hash: settled[0]?.hash, revision: settled[0]?.revision, outcome: settled[0]?.outcome },
      { hash: C1.hash, revision: "0123abcd", outcome: "applied" },
    );
    assert.equal(store.desired()?.revision, "0123abcd", "the commit becomes the revision of the file's hash");
    assert.deepEqual(actions.deleted, [m.receiptHandle]);
    assert.equal(await metric("sfu_agent_queue_messages_total", { result: "legacy" }), 1);
    // In an SNS envelope too; a hash not yet applied waits like a full event.
    const { version } = offerConfig(store, C2.config, C2.hash);
    const env = { Type: "Notification", Message: JSON.stringify({ event: "configReload", commit: "feed" }) };
    assert.equal(settler.handle({ messageId: "legacy-2", receiptHandle: "rh-2", body: JSON.stringify(env) }), "legacy");
    await new Promise((r) => setImmediate(r));
    assert.equal(settled.length, 1, "waits for the SFU");
    store.markApplied(version, C2.hash);
    assert.deepEqual([settled[1]?.hash, settled[1]?.revision, settled[1]?.outcome], [C2.hash, "feed", "applied"]);
  });

  it("settles an article-style message invalid at once while the file is invalid", async () => {
    offerConfig(store, C1.config, C1.hash);
    store.recordInvalid("sha256:" + "0".repeat(64), { code: "INVALID_CONFIG", message: "config.yaml:1:1: bad" });
    const body = JSON.stringify({ event: "configReload", commit: "abc" });
    assert.equal(settler.handle({ messageId: "l3", receiptHandle: "rh-3", body }), "legacy");
    await new Promise((r) => setImmediate(r));
    assert.equal(settled[0]?.outcome, "invalid");
    assert.equal(settled[0]?.revision, "abc");
    assert.equal(settled[0]?.error?.code, "INVALID_CONFIG");
    assert.deepEqual(actions.deleted, ["rh-3"]);
    for (const bad of [
      { event: "configReload" },
      { event: "configReload", commit: "a b" },
      { event: "other", commit: "x" },
    ]) {
      assert.equal(
        settler.handle({ messageId: JSON.stringify(bad), receiptHandle: "x", body: JSON.stringify(bad) }),
        "malformed",
      );
    }
  });

  it("a storm of 10,000 events for hashes that never arrive: bounded waits, each deleted once, the next real change settles", () => {
    const v1 = offerConfig(store, C1.config, C1.hash).version;
    store.markApplied(v1, C1.hash);
    const storm = Array.from({ length: 10_000 }, (_, i) => event(`sha256:${i.toString(16).padStart(64, "0")}`));
    for (const m of storm) {
      settler.handle(m);
      assert.ok(settler.pendingHashes().length <= DEFAULT_MAX_PENDING);
    }
    // Only the newest events still wait; every other message is deleted exactly once.
    const waiting = storm.slice(-DEFAULT_MAX_PENDING);
    assert.deepEqual(new Set(settler.pendingHashes()), new Set(waiting.map((m) => JSON.parse(m.body).hash)));
    assert.equal(actions.deleted.length, storm.length - DEFAULT_MAX_PENDING);
    assert.equal(new Set(actions.deleted).size, actions.deleted.length, "no message deleted twice");
    assert.equal(settled.length, storm.length - DEFAULT_MAX_PENDING);
    assert.ok(settled.every((r) => r.outcome === "superseded" && r.error?.code === "COALESCED"));
    // Redeliveries of coalesced messages are duplicates, never settled again.
    for (const m of storm.slice(-100, -DEFAULT_MAX_PENDING)) assert.equal(settler.handle(m), "duplicate");
    assert.equal(settled.length, storm.length - DEFAULT_MAX_PENDING);
    // Extensions cover only the waiting messages.
    timers.advance(30_000);
    assert.equal(actions.extended.flatMap((e) => e.handles).length, DEFAULT_MAX_PENDING);
    // A legitimate event published after the burst waits and settles applied once the file has it.
    const real = event(C2.hash, { revision: "rev-real" });
    settler.handle(real);
    assert.ok(settler.pendingHashes().includes(C2.hash));
    const { version } = offerConfig(store, C2.config, C2.hash, tracker.revisionOf(C2.hash));
    store.markApplied(version, C2.hash);
    const last = settled.find((r) => r.hash === C2.hash);
    assert.equal(last?.outcome, "applied");
    assert.equal(last?.revision, "rev-real");
    assert.ok(actions.deleted.includes(real.receiptHandle));
    // The change settles the 16 waits left (superseded) in one store event, each once: settling one
    // re-enters the settler (the tracker's "settled" event), which must not settle the others again.
    const waitingHashes = new Set(waiting.map((m) => JSON.parse(m.body).hash as string));
    assert.equal(settled.filter((r) => waitingHashes.has(r.hash)).length, DEFAULT_MAX_PENDING);
    for (const m of waiting) {
      assert.equal(actions.deleted.filter((h) => h === m.receiptHandle).length, 1, `${m.receiptHandle} deleted once`);
    }
  });

  it("an event older than every wait in a full storm settles at once; the file's hash is never dropped", () => {
    offerConfig(store, C1.config, C1.hash);
    const older = event(C3.hash, { issuedAt: "2020-01-01T00:00:00Z" });
    // The awaited hash reaches the file (waiting for the ack), then newer events pile up.
    settler.handle(event(C2.hash));
    offerConfig(store, C2.config, C2.hash);
    for (let i = 0; i < 3 * DEFAULT_MAX_PENDING; i++)
      settler.handle(event(`sha256:${i.toString(16).padStart(64, "a")}`));
    assert.ok(settler.pendingHashes().includes(C2.hash), "the wait the file has shown is kept");
    const old = older;
    assert.equal(settler.handle(old), "accepted");
    assert.equal(settled.at(-1)?.hash, C3.hash);
    assert.equal(settled.at(-1)?.outcome, "superseded");
    assert.ok(settler.pendingHashes().length <= DEFAULT_MAX_PENDING);
    assert.ok(actions.deleted.includes(old.receiptHandle));
  });

  it("in a full storm, an event issued before every wait is the one that gives way", () => {
    offerConfig(store, C1.config, C1.hash);
    for (let i = 0; i < DEFAULT_MAX_PENDING; i++) settler.handle(event(`sha256:${i.toString(16).padStart(64, "b")}`));
    const before = [...settler.pendingHashes()];
    const old = event(C3.hash, { issuedAt: "2020-01-01T00:00:00Z" });
    assert.equal(settler.handle(old), "accepted");
    assert.deepEqual(settler.pendingHashes(), before);
    assert.equal(settled.at(-1)?.hash, C3.hash);
    assert.equal(settled.at(-1)?.error?.code, "COALESCED");
    assert.deepEqual(actions.deleted, [old.receiptHandle]);
  });

  it("holds at most maxMessagesPerWait messages for one hash and deletes the rest at once", () => {
    offerConfig(store, C1.config, C1.hash);
    const ms = Array.from({ length: 100 }, () => event(C2.hash));
    for (const m of ms) settler.handle(m);
    assert.equal(actions.deleted.length, 100 - DEFAULT_MAX_MESSAGES_PER_WAIT);
    timers.advance(30_000);
    assert.equal(actions.extended.flatMap((e) => e.handles).length, DEFAULT_MAX_MESSAGES_PER_WAIT);
    const { version } = offerConfig(store, C2.config, C2.hash);
    store.markApplied(version, C2.hash);
    assert.equal(settled.length, 1);
    assert.equal(new Set(actions.deleted).size, 100);
  });

  it("a burst of article-style messages shares the re-reads of the file", async () => {
    const { version } = offerConfig(store, C1.config, C1.hash);
    store.markApplied(version, C1.hash);
    const body = JSON.stringify({ event: "configReload", commit: "abc" });
    for (let i = 0; i < 1_000; i++) settler.handle({ messageId: `burst-${i}`, receiptHandle: `rhb-${i}`, body });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.ok(checks <= 2, `${checks} re-reads`);
    assert.equal(new Set(actions.deleted).size, 1_000);
  });

  it("checks its options at construction", () => {
    const deps = { store: tracker, timers, logger: pino({ level: "silent" }), metrics, actions };
    assert.throws(
      () => new Settler({ ...deps, options: { propagationTimeoutMs: 0, visibilityTimeoutSeconds: 60 } }),
      RangeError,
    );
    assert.throws(
      () => new Settler({ ...deps, options: { propagationTimeoutMs: 1, visibilityTimeoutSeconds: 1 } }),
      RangeError,
    );
  });
});
