import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type DriverInput,
  type DriverPolicy,
  evaluateHealth,
  type RolloutStateDoc,
  runRollout,
} from "../../../agent/hook/driver.ts";
import type { NormalisedConfigV1 } from "../../../protocol/config-schema.ts";
import { byRank, fleetSim, podNames, type SimPodOptions, simRank } from "../../helpers/fleet-sim.ts";

const OLD = `sha256:${"a".repeat(64)}`;
const NEW = `sha256:${"b".repeat(64)}`;
const MIN = 60_000;
// The engine stores the config without looking into it.
const CONFIG_OLD = { old: true } as unknown as NormalisedConfigV1;
const CONFIG_NEW = { new: true } as unknown as NormalisedConfigV1;

const POLICY: DriverPolicy = {
  steps: [
    { percent: 10, bakeMs: 5 * MIN },
    { percent: 50, bakeMs: 10 * MIN },
    { percent: 100, bakeMs: 5 * MIN },
  ],
  halt: {
    health: { minJoins: 20, maxJoinFailureRate: 0.05, maxIceFailureRate: 0.1, maxRatioToBaseline: 2 },
    noTraffic: "wait",
  },
};

const stableState = (): RolloutStateDoc => ({
  type: "sfu-config.rollout-state",
  updatedAt: "2026-01-01T00:00:00.000Z",
  stable: { hash: OLD, revision: "r1", config: CONFIG_OLD },
  candidate: null,
});

function fleet(n: number, each: (name: string, i: number) => SimPodOptions = () => ({ joinsPerReport: 10 })) {
  const pods: Record<string, SimPodOptions> = {};
  byRank(podNames(n)).forEach((name, i) => {
    pods[name] = each(name, i);
  });
  return pods;
}

const input = (over: Partial<DriverInput> = {}): DriverInput => ({
  hash: NEW,
  revision: "r2",
  config: CONFIG_NEW,
  policy: POLICY,
  expect: 10,
  timeoutMs: 60 * MIN,
  ...over,
});

describe("evaluateHealth", () => {
  const h = POLICY.halt.health;
  const c = (joins: number, joinFailures = 0, iceFailures = 0) => ({
    joins,
    joinFailures,
    iceConnected: joins - iceFailures,
    iceFailures,
  });
  it("no traffic below minJoins, even with failures", () => {
    assert.deepEqual(evaluateHealth(c(19, 19, 19), c(1000), h), { verdict: "no-traffic" });
    assert.deepEqual(evaluateHealth(c(0), c(0), { ...h, minJoins: 0 }), { verdict: "no-traffic" });
  });
  it("absolute rates, then ratios against a baseline with the minimum sample", () => {
    assert.equal(evaluateHealth(c(20), c(0), h).verdict, "pass");
    assert.equal((evaluateHealth(c(100, 6), c(0), h) as { criterion: string }).criterion, "join-failure-rate");
    assert.equal(evaluateHealth(c(100, 5), c(0), h).verdict, "pass", "the maximum itself passes");
    assert.equal((evaluateHealth(c(100, 0, 11), c(0), h) as { criterion: string }).criterion, "ice-failure-rate");
    assert.equal((evaluateHealth(c(100, 3), c(100, 1), h) as { criterion: string }).criterion, "join-failure-ratio");
    assert.equal(
      (evaluateHealth(c(100, 0, 8), c(100, 0, 3), h) as { criterion: string }).criterion,
      "ice-failure-ratio",
    );
    assert.equal(evaluateHealth(c(100, 0, 8), c(100, 0, 4), h).verdict, "pass", "exactly 2x passes");
    assert.equal(evaluateHealth(c(100, 3), c(19, 0), h).verdict, "pass", "baseline under minJoins is ignored");
  });
});

describe("runRollout on a simulated fleet", () => {
  it("a good change walks 10% -> 50% -> 100% with nested cohorts and becomes stable", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(10), state: stableState() });
    const r = await runRollout(input(), sim.deps);
    assert.equal(r.outcome, "complete", sim.logs.join("\n"));
    assert.ok(r.outcome === "complete");
    assert.deepEqual(
      r.steps.map((s) => s.pods.length),
      [1, 5, 10],
    );
    const order = byRank(podNames(10));
    assert.deepEqual(r.steps[0]?.pods, order.slice(0, 1));
    assert.deepEqual([...(r.steps[1]?.pods ?? [])].sort(), order.slice(0, 5).sort());
    for (const s of r.steps) {
      assert.ok(s.durationMs >= s.bakeMs, "each step bakes");
      assert.ok(s.cohort.joins >= 20, "judged on a sample");
      assert.ok(s.applyMs < 5_000, `cohort applied promptly (${s.applyMs} ms)`);
    }
    assert.equal(sim.state.doc?.stable?.hash, NEW);
    assert.deepEqual(sim.state.doc?.stable?.config, CONFIG_NEW);
    assert.equal(sim.state.doc?.candidate?.state, "complete");
    assert.equal(sim.state.doc?.candidate?.threshold, 1);
    for (const p of sim.pods.values()) assert.equal(p.running, NEW, p.name);
    // step 0 announce, 3 steps, completion
    assert.deepEqual(
      sim.published.map((p) => p?.threshold),
      [0, r.steps[0]?.threshold, r.steps[1]?.threshold, 1, 1],
    );
    assert.equal(sim.halted.length, 0);
  });

  it("a NACKing canary halts at the first step; no pod ever runs the hash", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(10, (_, i) => ({ joinsPerReport: 10, nack: i === 0 })),
      state: stableState(),
    });
    const r = await runRollout(input(), sim.deps);
    assert.equal(r.outcome, "halted", sim.logs.join("\n"));
    assert.ok(r.outcome === "halted");
    assert.equal(r.reason.step, 0);
    assert.equal(r.reason.criterion, "nack");
    assert.deepEqual(r.reason.pods, [byRank(podNames(10))[0]]);
    assert.match(r.reason.detail, /rejected.*UNSUPPORTED/);
    for (const p of sim.pods.values()) assert.deepEqual(p.history, [OLD], p.name);
    assert.equal(sim.state.doc?.candidate?.state, "halted");
    assert.equal(sim.state.doc?.stable?.hash, OLD);
    assert.equal(sim.halted.length, 1);
  });

  it("ICE failures on the canary halt on the absolute rate and revert only the cohort", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(10, () => ({ joinsPerReport: 10, iceFailureOnNew: 0.5 })),
      state: stableState(),
    });
    const r = await runRollout(input(), sim.deps);
    assert.ok(r.outcome === "halted", sim.logs.join("\n"));
    assert.equal(r.reason.criterion, "ice-failure-rate");
    assert.equal(r.reason.step, 0);
    const canary = byRank(podNames(10))[0] as string;
    assert.deepEqual(r.reason.pods, [canary]);
    assert.deepEqual(r.reverted, [canary]);
    assert.deepEqual(r.notReverted, []);
    for (const p of sim.pods.values()) {
      assert.deepEqual(p.history, p.name === canary ? [OLD, NEW, OLD] : [OLD], p.name);
      assert.equal(p.running, OLD);
    }
    assert.equal(sim.halted[0]?.reason.criterion, "ice-failure-rate");
    assert.ok(sim.now() - Date.UTC(2026, 0, 1) < 5 * MIN, "halted during the bake, not after it");
  });

  it("a cohort rate within the absolute limit but over the ratio to the baseline halts", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(10, () => ({ joinsPerReport: 50, iceFailureOnNew: 0.08, iceFailureOnStable: 0.02 })),
      state: stableState(),
    });
    const r = await runRollout(input(), sim.deps);
    assert.ok(r.outcome === "halted", sim.logs.join("\n"));
    assert.equal(r.reason.criterion, "ice-failure-ratio");
  });

  it("an idle canary bakes on and halts as no-traffic at the timeout (noTraffic: wait)", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(4, () => ({})), state: stableState() });
    const r = await runRollout(input({ expect: 4, timeoutMs: 30 * MIN }), sim.deps);
    assert.ok(r.outcome === "halted", sim.logs.join("\n"));
    assert.equal(r.reason.criterion, "no-traffic");
    assert.equal(r.steps.length, 0);
    assert.ok(sim.now() >= Date.UTC(2026, 0, 1) + 30 * MIN);
    assert.equal(r.reverted.length, 1);
  });

  it("noTraffic: proceed widens without evidence and says so per step", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(4, () => ({})), state: stableState() });
    const r = await runRollout(
      input({ expect: 4, policy: { ...POLICY, halt: { ...POLICY.halt, noTraffic: "proceed" } } }),
      sim.deps,
    );
    assert.ok(r.outcome === "complete", sim.logs.join("\n"));
    assert.deepEqual(
      r.steps.map((s) => s.noTraffic),
      [true, true, true],
    );
  });

  it("no state yet: the hash becomes stable at once (bootstrap)", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(2), state: null });
    const r = await runRollout(input({ expect: 2 }), sim.deps);
    assert.equal(r.outcome, "bootstrapped");
    assert.equal(sim.state.doc?.stable?.hash, NEW);
    assert.equal(sim.state.doc?.candidate, null);
    assert.deepEqual(sim.published, [null]);
  });

  it("the stable hash again is a no-op; a halted hash is refused", async () => {
    const same = fleetSim({ stableHash: OLD, newHash: OLD, pods: fleet(2), state: stableState() });
    assert.equal((await runRollout(input({ hash: OLD }), same.deps)).outcome, "already-stable");
    assert.equal(same.calls.write, 0);
    const halted: RolloutStateDoc = {
      ...stableState(),
      candidate: {
        id: "x",
        hash: NEW,
        revision: "r2",
        state: "halted",
        step: 0,
        threshold: 0.1,
        reason: { step: 0, criterion: "nack", pods: ["p"], detail: "p reported rejected" },
      },
    };
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(2), state: halted });
    const r = await runRollout(input(), sim.deps);
    assert.ok(r.outcome === "refused");
    assert.match(r.message, /halted by rollout x at step 1 \(nack: p reported rejected\); commit a new change/);
    assert.equal(sim.calls.write, 0);
    assert.deepEqual(sim.published, []);
  });

  it("a newer rollout replacing the state stops this one without another write", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(10), state: stableState() });
    let writesAtTakeover = -1;
    sim.at(Date.UTC(2026, 0, 1) + 3 * MIN, () => {
      const doc = sim.state.doc as RolloutStateDoc;
      sim.state.doc = {
        ...doc,
        candidate: { ...(doc.candidate as NonNullable<RolloutStateDoc["candidate"]>), id: "newer" },
      };
      writesAtTakeover = sim.calls.write;
    });
    const r = await runRollout(input({ stateCheckIntervalMs: 10_000 }), sim.deps);
    assert.ok(r.outcome === "superseded", sim.logs.join("\n"));
    assert.equal(r.by, "newer");
    assert.equal(sim.calls.write, writesAtTakeover);
    assert.equal(sim.state.doc?.candidate?.id, "newer");
    assert.ok(sim.now() - Date.UTC(2026, 0, 1) < 4 * MIN, "noticed within a state-check interval");
  });

  it("pods that never report: halts at discovery (timeout) with nobody changed", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(3, (_, i) => ({ joinsPerReport: 10, silent: i === 2 })),
      state: stableState(),
    });
    const r = await runRollout(input({ expect: 3, timeoutMs: 5 * MIN }), sim.deps);
    assert.ok(r.outcome === "halted");
    assert.equal(r.reason.criterion, "timeout");
    assert.match(r.reason.detail, /2\/3 reported/);
    for (const p of sim.pods.values()) assert.deepEqual(p.history, [OLD]);
  });

  it("a slow mount only delays its step; the cohort is waited for", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(4, (_, i) => ({ joinsPerReport: 10, mountLagMs: i === 3 ? 90_000 : 1_000 })),
      state: stableState(),
    });
    const r = await runRollout(input({ expect: 4 }), sim.deps);
    assert.ok(r.outcome === "complete", sim.logs.join("\n"));
    assert.equal(r.steps.length, 3);
  });
});

describe("runRollout owns its failures: retries, halts when it gives up, resumes a rerun", () => {
  const down = (from: number, to: number) => (_n: number, now: number) =>
    now >= from && now < to ? Object.assign(new Error("connect ECONNREFUSED"), { code: "STATE_READ_FAILED" }) : null;
  const T0 = Date.UTC(2026, 0, 1);
  const FAST: DriverPolicy = { ...POLICY, halt: { ...POLICY.halt, noTraffic: "proceed" } };

  it("S3 and SNS down briefly mid-rollout: retried with back-off, the rollout completes", async () => {
    // Fails on today's main: the first failed write ended the run as "failed", the fleet half done.
    const outage = down(T0 + 4.5 * MIN, T0 + 6 * MIN); // over step 2's write
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(4),
      state: stableState(),
      faults: { read: outage, write: outage, publish: outage },
    });
    const r = await runRollout(input({ expect: 4, policy: FAST }), sim.deps);
    assert.equal(r.outcome, "complete", sim.logs.join("\n"));
    assert.ok(sim.logs.some((l) => /failed \(attempt 1, retrying/.test(l)));
    assert.equal(sim.state.doc?.stable?.hash, NEW);
  });

  it("S3 down for longer than the timeout: the halt is written once S3 is back, the cohort reverts", async () => {
    const outage = down(T0 + 4.5 * MIN, T0 + 31 * MIN); // past the 30 min timeout, within the halt's retries
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(4),
      state: stableState(),
      faults: { read: outage, write: outage },
    });
    const r = await runRollout(input({ expect: 4, policy: FAST, timeoutMs: 30 * MIN }), sim.deps);
    assert.ok(r.outcome === "halted", sim.logs.join("\n"));
    assert.equal(r.reason.criterion, "driver-error");
    assert.equal(sim.state.doc?.candidate?.state, "halted");
    assert.equal(sim.state.doc?.stable?.hash, OLD);
    for (const p of sim.pods.values()) assert.equal(p.running, OLD, p.name);
  });

  it("S3 never back: the run fails naming the rerun, the state left as 'running' (a rerun resumes)", async () => {
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(4),
      state: stableState(),
      faults: { write: down(T0 + 6 * MIN, Number.POSITIVE_INFINITY) },
    });
    const r = await runRollout(input({ expect: 4, policy: FAST, timeoutMs: 20 * MIN }), sim.deps);
    assert.ok(r.outcome === "failed", sim.logs.join("\n"));
    assert.match(r.message, /halting: .*rerun the hook/);
  });

  it("a rerun after a driver died mid-step resumes at that step: no canary flips back", async () => {
    // Fails on today's main: the rerun started again at step 1 and the step-2 cohort went back to the old config.
    const order = byRank(podNames(10));
    const threshold = (simRank(order[4] as string) + simRank(order[5] as string)) / 2;
    const running: RolloutStateDoc = {
      ...stableState(),
      candidate: { id: "dead", hash: NEW, revision: "r2", state: "running", step: 1, threshold, reason: null },
    };
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(10), state: running });
    const r = await runRollout(input(), sim.deps);
    assert.ok(r.outcome === "complete", sim.logs.join("\n"));
    assert.deepEqual(
      r.steps.map((s) => s.step),
      [1, 2],
    );
    assert.ok(sim.logs.some((l) => /resuming rollout dead/.test(l)));
    for (const p of sim.pods.values()) assert.deepEqual(p.history, [OLD, NEW], p.name);
  });

  it("a deleted state (404) after a halt: the rerun never records the halted hash stable", async () => {
    // Fails on today's main: null read as "no rollout", the halted hash became stable at once.
    const halted: RolloutStateDoc = {
      ...stableState(),
      candidate: {
        id: "x",
        hash: NEW,
        revision: "r2",
        state: "halted",
        step: 0,
        threshold: 0.1,
        reason: { step: 0, criterion: "nack", pods: ["p"], detail: "p reported rejected" },
      },
    };
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(3), state: halted });
    sim.state.doc = null; // deleted by a lifecycle rule; the agents still know the halt
    const r = await runRollout(input({ expect: 3, timeoutMs: 5 * MIN }), sim.deps);
    assert.ok(r.outcome === "failed", sim.logs.join("\n"));
    assert.match(r.message, /STATE_MISSING.*0\/3 pods report/);
    assert.equal(sim.state.doc, null, "nothing written");
    for (const p of sim.pods.values()) assert.deepEqual(p.history, [OLD], p.name);
  });

  it("the state deleted mid-rollout is written again, not read as 'superseded'", async () => {
    const sim = fleetSim({ stableHash: OLD, newHash: NEW, pods: fleet(4), state: stableState() });
    sim.at(T0 + 3 * MIN, () => {
      sim.state.doc = null;
    });
    const r = await runRollout(input({ expect: 4, policy: FAST, stateCheckIntervalMs: 60_000 }), sim.deps);
    assert.equal(r.outcome, "complete", sim.logs.join("\n"));
    assert.equal(sim.state.doc?.stable?.hash, NEW);
  });

  it("a held pod running another config is not baseline", async () => {
    // Fails on today's main: the stuck pod's clean calls lowered the baseline and the ratio halted.
    const order = byRank(podNames(6));
    const last = order[5] as string;
    const other = `sha256:${"c".repeat(64)}`;
    const sim = fleetSim({
      stableHash: OLD,
      newHash: NEW,
      pods: fleet(6, (name) =>
        name === last
          ? { joinsPerReport: 1000, stuckOn: other }
          : { joinsPerReport: 50, iceFailureOnNew: 0.08, iceFailureOnStable: 0.05 },
      ),
      state: stableState(),
    });
    const policy: DriverPolicy = {
      ...POLICY,
      steps: [
        { percent: 20, bakeMs: 5 * MIN },
        { percent: 50, bakeMs: 5 * MIN },
      ],
    };
    const r = await runRollout(input({ expect: 6, policy }), sim.deps);
    assert.equal(r.outcome, "complete", sim.logs.join("\n"));
    assert.ok(r.outcome === "complete");
    assert.equal(
      r.steps[0]?.baseline.pods,
      6 - 1 - (r.steps[0]?.pods.length ?? 0),
      "every pod on the stable config but the stuck one",
    );
  });
});
