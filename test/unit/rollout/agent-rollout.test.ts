/**
 * The agent's rollout integration (agent/sidecar/rollout/agent-rollout.ts) on the
 * real store and status tracker, with an in-memory state reader: what becomes
 * desired, the stage reports (outcomes of NACKs and ack timeouts on a canary),
 * the policy file's presence and validity, an unreadable state, and the
 * Settler handing rollout events over instead of settling them.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { createQueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import { type MessageActions, Settler } from "../../../agent/sidecar/queue/settlement.ts";
import { statusEvent } from "../../../agent/sidecar/queue/status-publisher.ts";
import { AgentRollout, type RolloutStateReader } from "../../../agent/sidecar/rollout/agent-rollout.ts";
import { registerRolloutMetrics } from "../../../agent/sidecar/rollout/metrics.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import { type Settlement, SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { StatusTracker } from "../../../agent/sidecar/status-tracker.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import type { ReloadRolloutField, RolloutState } from "../../../protocol/rollout-schema.ts";
import { loadedConfig } from "../../helpers/config-text.ts";
import { ManualTimers } from "../queue/manual-timers.ts";

const C1 = await loadedConfig(1);
const C2 = await loadedConfig(2);
/** The `rollout` field of a reload event: what makes a running agent re-read the state. */
const EVENT: ReloadRolloutField = { id: "r", step: 1, threshold: 1 };
const POLICY = "schemaVersion: 1\nsteps: [{ percent: 50, bake: 1m }, { percent: 100 }]\n";

class MemoryReader implements RolloutStateReader {
  readonly url = "s3://test/state.json";
  state: RolloutState | null = null;
  fail: Error | null = null;
  reads = 0;
  /** The pod-local memory (the store's cache file), when set. */
  cached: RolloutState | null | undefined;
  async readCache(): Promise<{ state: RolloutState | null; error: string | null }> {
    return { state: this.cached === undefined ? null : structuredClone(this.cached), error: null };
  }
  async read(): Promise<RolloutState | null> {
    this.reads++;
    if (this.fail) throw this.fail;
    return this.state === null ? null : structuredClone(this.state);
  }
}

function stateWith(candidate: RolloutState["candidate"]): RolloutState {
  return {
    type: "sfu-config.rollout-state",
    updatedAt: "2026-12-02T05:00:00.000Z",
    stable: { hash: C1.hash, revision: "rev-1", config: C1.config },
    candidate,
  };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function setup(o: { policy?: string | null; reader?: MemoryReader | null; pod?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "agent-rollout-"));
  dirs.push(dir);
  if (o.policy !== null) writeFileSync(join(dir, "rollout.yaml"), o.policy ?? POLICY);
  const store = new SnapshotStore({ clock: () => new Date() });
  const tracker = new StatusTracker({ store, clock: () => new Date() });
  const reader = o.reader === undefined ? new MemoryReader() : o.reader;
  const settled: Settlement[] = [];
  tracker.subscribe((e) => {
    if (e.type === "settled") settled.push(e.settlement);
  });
  const health: unknown[] = [];
  const rollout = new AgentRollout(
    { store, tracker, logger: pino({ level: "silent" }), clock: () => new Date(), reader },
    {
      podName: o.pod ?? "sfu-0",
      policyPath: join(dir, "rollout.yaml"),
      policyKey: "rollout.yaml",
      resyncIntervalMs: 0,
    },
  );
  new SettlementEngine({ tracker, clock: () => new Date() }, { watchDesired: false }).start();
  rollout.attachHealth({ setRollout: (ctx) => health.push(ctx) });
  return { dir, store, tracker, reader, rollout, settled, health };
}

describe("AgentRollout", () => {
  it("without a policy file the mounted config is desired at once and no stage is reported", async () => {
    const t = await setup({ policy: null });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C2.hash);
    assert.equal(t.rollout.status(), null);
    t.store.markApplied(1, C2.hash);
    assert.deepEqual(t.settled, []);
    await t.rollout.stop();
  });

  it("before the state could be read, nothing is desired; once read, the stable config is", async () => {
    const reader = new MemoryReader();
    reader.fail = Object.assign(new Error("S3 down"), { code: "STATE_READ_FAILED" });
    const t = await setup({ reader });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired(), null);
    assert.equal(t.store.fileHash(), C2.hash);
    assert.equal(t.rollout.status()?.stage, "held");
    assert.equal(t.rollout.status()?.stateError?.message, "S3 down");
    reader.fail = null;
    reader.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "halted",
      step: 1,
      threshold: 1,
      reason: null,
    });
    await t.rollout.onRolloutEvent(EVENT);
    assert.equal(t.store.desired()?.hash, C1.hash, "the halted hash is never desired; stable is");
    assert.equal(t.rollout.status()?.stateError, null);
    await t.rollout.stop();
  });

  it("a canary's NACK and ack timeout are reported with stage canary and their outcome", async () => {
    const pod = "sfu-0";
    const t = await setup({ pod });
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: "rev-2",
      state: "running",
      step: 1,
      threshold: 1,
      reason: null,
    });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    const d = t.store.desired()!;
    assert.equal(d.hash, C2.hash);
    assert.equal(t.rollout.status()?.stage, "canary");
    t.store.markAckTimeout(d.version, d.hash);
    t.store.markRejected(d.version, d.hash, { code: "APPLY_FAILED", message: "boom" });
    assert.deepEqual(
      t.settled.map((s) => [s.stage, s.hash === C2.hash, s.outcome, s.error?.code]),
      [
        ["canary", true, "timeout", "ACK_TIMEOUT"],
        ["canary", true, "rejected", "APPLY_FAILED"],
      ],
    );
    const ev = statusEvent(pod, t.settled[1]!);
    assert.equal(ev.stage, "canary");
    assert.equal(ev.rank, cohortRank(pod));
    assert.deepEqual(ev.rollout, { id: "r", hash: C2.hash, step: 1 });
    assert.deepEqual(t.health.at(-1), { running: true, hash: C2.hash, rank: cohortRank(pod), stage: "canary" });
    const registry = new Registry();
    registerRolloutMetrics(registry, t.rollout);
    const text = await registry.metrics();
    assert.match(text, /sfu_agent_rollout_stage\{stage="canary"\} 1/);
    assert.match(text, /sfu_agent_rollout_stage\{stage="held"\} 0/);
    assert.match(text, new RegExp(`sfu_agent_rollout_rank ${cohortRank(pod)}`));
    await t.rollout.stop();
  });

  it("held pods report held once the stable config is applied; a halt turns an applied canary into reverted", async () => {
    const t = await setup();
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "running",
      step: 1,
      threshold: 1,
      reason: null,
    });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    t.store.markApplied(t.store.desired()!.version, C2.hash);
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "halted",
      step: 1,
      threshold: 1,
      reason: { step: 1, criterion: "nack", pods: ["x"], detail: "d" },
    });
    t.rollout.onRolloutEvent({ id: "r", step: 1, threshold: 1 });
    await t.rollout.onRolloutEvent(EVENT);
    const d = t.store.desired()!;
    assert.equal(d.hash, C1.hash);
    assert.equal(t.rollout.status()?.stage, "reverted");
    t.store.markApplied(d.version, C1.hash);
    assert.deepEqual(
      t.settled.map((s) => [s.stage, s.hash === C2.hash ? "M" : "stable", s.outcome]),
      [
        ["canary", "M", "applied"],
        ["reverted", "stable", "applied"],
      ],
    );
    assert.equal(t.health.at(-1) && (t.health.at(-1) as { running: boolean }).running, false);
    await t.rollout.stop();
  });

  it("an invalid policy still gates; removing the policy applies the mounted config", async () => {
    const t = await setup({ policy: "schemaVersion: 1\nsteps: [{ percent: 50 }]\n" });
    t.reader!.state = stateWith(null);
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash);
    assert.equal(t.rollout.status()?.policy, "invalid");
    unlinkSync(join(t.dir, "rollout.yaml"));
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C2.hash);
    assert.equal(t.rollout.status(), null);
    await t.rollout.stop();
  });

  it("a state that becomes unreadable or invalid after a good read: the last good state stays in force", async () => {
    const t = await setup();
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "halted",
      step: 1,
      threshold: 1,
      reason: null,
    });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash);
    t.reader!.fail = Object.assign(new Error("stable.config hashes to sha256:00, not the recorded sha256:11"), {
      code: "STATE_INVALID",
    });
    await t.rollout.onRolloutEvent(EVENT);
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash, "still the stable config: the halt holds");
    assert.equal(t.rollout.status()?.state, "halted");
    assert.equal(t.rollout.status()?.stateError?.code, "STATE_INVALID");
    await t.rollout.stop();
  });

  it("after a 'no state' read, a new mounted hash waits for the re-read: the state written meanwhile holds it", async () => {
    const t = await setup();
    await t.rollout.start();
    t.rollout.onValidReading(C1.config, C1.hash);
    assert.equal(t.store.desired()?.hash, C1.hash, "no state: the mounted config applies (bootstrap)");
    // The hook records C1 as stable and starts rolling C2 out; then the mount moves to C2.
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "running",
      step: 0,
      threshold: 0,
      reason: null,
    });
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash, "C2 is not desired before the state was re-read");
    await t.rollout.onRolloutEvent(EVENT);
    assert.equal(t.store.desired()?.hash, C1.hash, "outside the cohort (threshold 0): held on the stable config");
    assert.equal(t.rollout.status()?.stage, "held");
    // With really no state, the re-read lets the new hash apply (bootstrap).
    const u = await setup();
    await u.rollout.start();
    u.rollout.onValidReading(C1.config, C1.hash);
    u.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(u.store.desired()?.hash, C1.hash);
    await u.rollout.onRolloutEvent(EVENT);
    assert.equal(u.store.desired()?.hash, C2.hash);
    await t.rollout.stop();
    await u.rollout.stop();
  });

  it("a mounted hash the state does not know triggers a re-read (rate-limited)", async () => {
    const t = await setup();
    t.reader!.state = stateWith(null);
    await t.rollout.start();
    const before = t.reader!.reads;
    t.rollout.onValidReading(C2.config, C2.hash);
    t.rollout.onValidReading(C2.config, C2.hash);
    await t.rollout.onRolloutEvent(EVENT);
    assert.equal(t.reader!.reads, before + 2, "one re-read for the unknown hash, one for the rollout event");
    await t.rollout.stop();
  });
});

describe("Settler with a rollout handler", () => {
  it("a 404 after a halt was read is STATE_MISSING: the halted hash is never desired", async () => {
    // Fails on today's main: null read as "no rollout yet" and the mounted (halted) hash applied.
    const t = await setup();
    t.reader!.state = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "halted",
      step: 0,
      threshold: 0.5,
      reason: { step: 0, criterion: "nack", pods: ["x"], detail: "d" },
    });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash);
    t.reader!.state = null; // deleted by a lifecycle rule
    await t.rollout.onRolloutEvent(EVENT);
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash, "still the stable config");
    assert.equal(t.rollout.status()?.stateError?.code, "STATE_MISSING");
    assert.equal(t.rollout.status()?.state, "halted");
    await t.rollout.stop();
  });

  it("restarted with a 404 or an outage, the remembered state decides (never 'no rollout')", async () => {
    // Fails on today's main: the restarted agent bootstrapped the halted mounted hash on a 404.
    for (const fault of ["404", "outage"] as const) {
      const reader = new MemoryReader();
      reader.cached = stateWith({
        id: "r",
        hash: C2.hash,
        revision: null,
        state: "halted",
        step: 0,
        threshold: 0.5,
        reason: { step: 0, criterion: "nack", pods: ["x"], detail: "d" },
      });
      if (fault === "outage") reader.fail = Object.assign(new Error("S3 down"), { code: "STATE_READ_FAILED" });
      const t = await setup({ reader });
      await t.rollout.start();
      t.rollout.onValidReading(C2.config, C2.hash);
      assert.equal(t.store.desired()?.hash, C1.hash, fault);
      assert.equal(t.rollout.status()?.stage, "held", fault);
      assert.equal(t.rollout.status()?.stateError?.code, fault === "404" ? "STATE_MISSING" : "STATE_READ_FAILED");
      await t.rollout.stop();
    }
  });

  it("restarted during an outage, a remembered running candidate is never newly pushed (it may have halted since)", async () => {
    // Fails on today's main: the remembered state put an in-cohort pod's fresh SFU on the candidate.
    const reader = new MemoryReader();
    reader.cached = stateWith({
      id: "r",
      hash: C2.hash,
      revision: null,
      state: "running",
      step: 0,
      threshold: 1,
      reason: null,
    });
    reader.fail = Object.assign(new Error("S3 down"), { code: "STATE_READ_FAILED" });
    const t = await setup({ reader });
    await t.rollout.start();
    t.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(t.store.desired()?.hash, C1.hash, "the remembered stable config");
    assert.equal(t.rollout.status()?.stage, "held");
    assert.match(t.rollout.status()?.reason ?? "", /only remembered/);
    assert.equal(t.rollout.holdingWithoutState(), false);
    // An SFU that already runs the candidate keeps it (nothing newly applied) ...
    t.store.adoptSfuApplied({ version: 1, hash: C2.hash });
    assert.equal(t.store.desired()?.hash, C2.hash);
    assert.equal(t.rollout.status()?.stage, "canary");
    await t.rollout.stop();
    // ... and once S3 answers, the state read decides.
    const u = await setup({ reader: Object.assign(new MemoryReader(), { cached: reader.cached, fail: reader.fail }) });
    await u.rollout.start();
    u.rollout.onValidReading(C2.config, C2.hash);
    assert.equal(u.store.desired()?.hash, C1.hash);
    (u.reader as MemoryReader).fail = null;
    (u.reader as MemoryReader).state = reader.cached ?? null;
    await u.rollout.onRolloutEvent(EVENT);
    assert.equal(u.store.desired()?.hash, C2.hash, "the read state puts the cohort pod on the candidate");
    assert.equal(u.rollout.status()?.stage, "canary");
    await u.rollout.stop();
  });

  it("a new pod that cannot read the state holds with nothing to vouch for (holdingWithoutState)", async () => {
    const reader = new MemoryReader();
    reader.fail = Object.assign(new Error("S3 down"), { code: "STATE_READ_FAILED" });
    const t = await setup({ reader });
    await t.rollout.start();
    t.rollout.onValidReading(C1.config, C1.hash);
    assert.equal(t.store.desired(), null);
    assert.equal(t.rollout.holdingWithoutState(), true);
    assert.equal(t.rollout.stateUnreadable(), true);
    reader.fail = null;
    reader.state = stateWith(null);
    await t.rollout.onRolloutEvent(EVENT);
    assert.equal(t.store.desired()?.hash, C1.hash);
    assert.equal(t.rollout.holdingWithoutState(), false);
    assert.equal(t.rollout.stateUnreadable(), false);
    await t.rollout.stop();
  });

  it("hands rollout events over and deletes them without settling; plain events settle as before", async () => {
    const timers = new ManualTimers();
    const store = new SnapshotStore({ clock: () => new Date(timers.now()) });
    const tracker = new StatusTracker({ store, clock: () => new Date(timers.now()) });
    const settlements = new SettlementEngine({ tracker, clock: () => new Date(timers.now()) }, { watchDesired: false });
    settlements.start();
    const deleted: string[] = [];
    const actions: MessageActions = {
      delete: async (h) => {
        deleted.push(...h);
      },
      extend: async () => {},
    };
    const handed: Array<ReloadRolloutField | "malformed"> = [];
    const settler = new Settler({
      store: settlements,
      timers,
      logger: pino({ level: "silent" }),
      metrics: createQueueMetrics(new Registry()),
      actions,
      onRolloutEvent: (r) => handed.push(r),
      options: { propagationTimeoutMs: 60_000, visibilityTimeoutSeconds: 30 },
    });
    settler.start();
    const body = (extra: Record<string, unknown>) =>
      JSON.stringify({
        type: "sfu-config.reload",
        revision: "r",
        hash: C2.hash,
        configMap: null,
        issuedAt: new Date().toISOString(),
        ...extra,
      });
    assert.equal(
      settler.handle({
        messageId: "a",
        receiptHandle: "ha",
        body: body({ rollout: { id: "x", step: 1, threshold: 0.5 } }),
      }),
      "accepted",
    );
    assert.equal(
      settler.handle({ messageId: "b", receiptHandle: "hb", body: body({ rollout: { id: 7 } }) }),
      "accepted",
    );
    assert.equal(
      settler.handle({
        messageId: "a",
        receiptHandle: "ha2",
        body: body({ rollout: { id: "x", step: 1, threshold: 0.5 } }),
      }),
      "duplicate",
    );
    assert.deepEqual(handed, [{ id: "x", step: 1, threshold: 0.5 }, "malformed"]);
    assert.deepEqual(settler.pendingHashes(), []);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(deleted.sort(), ["ha", "ha2", "hb"]);
    assert.equal(settler.handle({ messageId: "c", receiptHandle: "hc", body: body({}) }), "accepted");
    assert.deepEqual(settler.pendingHashes(), [C2.hash], "a plain event waits as before");
    settler.stop();
  });
});
