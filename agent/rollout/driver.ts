/**
 * The step engine of `sfu-agent rollout`: drives one config hash through the
 * policy's steps (cohort of the lowest-ranked pods, bake, halt criteria,
 * widen) by writing the durable rollout state, publishing reload events and
 * reading the agents' status and health reports.
 *
 * Everything outside the engine is injected (clock, state store, publishing,
 * the event source), so the engine runs against a simulated fleet on a fake
 * clock in unit tests and against S3/SNS/SQS in the CLI. Time only passes
 * inside {@link DriverDeps.nextEvents}: the engine never sleeps on its own.
 *
 * Safety rules the engine keeps:
 * - any NACK, invalid report or propagation timeout of a cohort pod halts;
 * - a health criterion that fails halts at once (evaluated on every report
 *   once the cohort has the minimum sample), not only at the end of a bake;
 * - its own timeout halts (a half-rolled-out config is never left running);
 * - the state is re-read before every write and periodically: when another
 *   rollout replaced this one (a different candidate id) it stops without
 *   writing anything more (single writer: the newest driver).
 *
 * Halt criteria (`reason.criterion`): `nack`, `invalid`,
 * `propagation-timeout` (a cohort pod's report for the hash);
 * `join-failure-rate`, `ice-failure-rate` (the cohort's absolute rates);
 * `join-failure-ratio`, `ice-failure-ratio` (against the baseline pods, when
 * they have the minimum sample); `no-traffic` (the timeout passed while the
 * cohort had too few joins) and `timeout` (the driver's timeout otherwise).
 */

import { cohortThreshold } from "../../protocol/cohort.ts";
import type { NormalisedConfig } from "../../protocol/config-schema-v2.ts";
import type {
  ReloadRolloutField,
  RolloutCandidate,
  RolloutHaltReason,
  RolloutPolicy,
  RolloutState,
} from "../../protocol/rollout-schema.ts";

/** The four call-health counters an SFU reports since its current config hash was applied. */
export interface HealthCounters {
  joins: number;
  joinFailures: number;
  iceConnected: number;
  iceFailures: number;
}

/** The policy as the engine needs it (the normalised policy: durations in milliseconds). */
export type DriverPolicy = Pick<RolloutPolicy, "steps" | "halt">;

/** Why a rollout halted (see the criteria in {@link runRollout}'s module documentation). */
export type HaltReason = RolloutHaltReason;

/** The durable rollout state. */
export type RolloutStateDoc = RolloutState;

/** The `rollout` field of a reload event. */
export type RolloutRef = ReloadRolloutField;

/** Reads and writes the durable state; errors are thrown (the store retries on its own). */
export interface DriverStateStore {
  read(): Promise<RolloutStateDoc | null>;
  write(state: RolloutStateDoc): Promise<void>;
}

/** A report from an agent, already parsed. `at` is epoch ms. */
export type DriverEvent =
  | {
      kind: "status";
      pod: string;
      hash: string;
      /** canary|held|applied|reverted, or null from agents without rollout support. */
      stage: string | null;
      /** The rollout the report belongs to (null: a plain settlement). */
      rolloutId: string | null;
      outcome: string;
      error: { code: string; message: string } | null;
      at: number;
    }
  | { kind: "health"; pod: string; stage: string | null; health: HealthCounters & { hash: string }; at: number };

/** Everything the engine does to the outside world. */
export interface DriverDeps {
  now(): number;
  store: DriverStateStore;
  /** Publishes the reload event of the hash, with `rollout` (null: a plain reload event). */
  publishReload(rollout: RolloutRef | null): Promise<void>;
  /** Publishes the `halted` status event (optional: without a status topic there is none). */
  publishHalted?(reason: HaltReason, rollout: RolloutRef): Promise<void>;
  /**
   * Returns the reports that arrived, waiting at most until epoch ms `until`
   * (returns an empty list at `until`). Reports older than the rollout's
   * start are the source's to drop.
   */
  nextEvents(until: number): Promise<DriverEvent[]>;
  /** The stable cohort rank of a pod, in [0, 1). */
  rankOf(pod: string): number;
  newId(): string;
  /** One progress line (no trailing newline). */
  log(line: string): void;
}

/** What to roll out and how. */
export interface DriverInput {
  hash: string;
  revision: string | null;
  /** The normalised config, kept in the state as the next stable config. */
  config: NormalisedConfig;
  policy: DriverPolicy;
  /** Pods expected to report before the first step (at least 1). */
  expect: number;
  /** Total time for the rollout; on expiry it halts. */
  timeoutMs: number;
  /** How long to wait for the cohort's `reverted` reports after a halt (default 120 s). */
  revertTimeoutMs?: number;
  /** How often the state is re-read to notice a newer rollout (default 15 s). */
  stateCheckIntervalMs?: number;
}

/** Health figures of one group of pods. */
export interface GroupHealth extends HealthCounters {
  pods: number;
}

/** What happened in one step. */
export interface StepSummary {
  step: number;
  percent: number;
  threshold: number;
  /** Cohort pods (rank below the threshold) at the end of the step. */
  pods: string[];
  /** From publishing the step to every cohort pod reporting the hash applied. */
  applyMs: number;
  /** Configured bake. */
  bakeMs: number;
  /** From publishing the step to widening (or halting). */
  durationMs: number;
  cohort: GroupHealth;
  baseline: GroupHealth;
  /** The step passed without the minimum sample (`noTraffic: proceed`). */
  noTraffic: boolean;
}

/** Result of {@link runRollout}. */
export type DriverResult =
  | { outcome: "bootstrapped"; id: null }
  | { outcome: "already-stable"; id: null }
  | { outcome: "refused"; id: null; message: string }
  | { outcome: "complete"; id: string; steps: StepSummary[] }
  | {
      outcome: "halted";
      id: string;
      reason: HaltReason;
      steps: StepSummary[];
      reverted: string[];
      /** Cohort pods that had applied the hash and did not report `reverted` in time. */
      notReverted: string[];
    }
  | { outcome: "superseded"; id: string; by: string | null; steps: StepSummary[] }
  | { outcome: "failed"; id: string | null; message: string; steps: StepSummary[] };

/** Outcomes of a cohort pod's report that halt, with their criterion. */
const FAILING: Record<string, string> = { rejected: "nack", invalid: "invalid", timeout: "propagation-timeout" };
const APPLIED_STAGES = new Set(["canary", "applied"]);

/** The verdict of the halt criteria on one sample. */
export type HealthVerdict =
  | { verdict: "pass" }
  | { verdict: "no-traffic" }
  | { verdict: "halt"; criterion: string; detail: string };

const rate = (n: number, d: number) => (d > 0 ? n / d : 0);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * The health halt criteria: absolute join-failure and ICE-failure rates of the
 * cohort, then (when the baseline has at least `minJoins` joins) each cohort
 * rate against `maxRatioToBaseline` times the baseline's. A cohort with fewer
 * than `minJoins` joins is "no traffic" (never a pass).
 */
export function evaluateHealth(
  cohort: HealthCounters,
  baseline: HealthCounters,
  health: DriverPolicy["halt"]["health"],
): HealthVerdict {
  if (cohort.joins < Math.max(1, health.minJoins)) return { verdict: "no-traffic" };
  const joinRate = rate(cohort.joinFailures, cohort.joins);
  const iceRate = rate(cohort.iceFailures, cohort.joins);
  const sample = `${cohort.joins} joins`;
  if (joinRate > health.maxJoinFailureRate)
    return {
      verdict: "halt",
      criterion: "join-failure-rate",
      detail: `join failures ${cohort.joinFailures}/${cohort.joins} = ${pct(joinRate)} > ${pct(health.maxJoinFailureRate)}`,
    };
  if (iceRate > health.maxIceFailureRate)
    return {
      verdict: "halt",
      criterion: "ice-failure-rate",
      detail: `ICE failures ${cohort.iceFailures} per ${sample} = ${pct(iceRate)} > ${pct(health.maxIceFailureRate)}`,
    };
  if (baseline.joins >= Math.max(1, health.minJoins)) {
    const baseJoin = rate(baseline.joinFailures, baseline.joins);
    const baseIce = rate(baseline.iceFailures, baseline.joins);
    if (joinRate > health.maxRatioToBaseline * baseJoin)
      return {
        verdict: "halt",
        criterion: "join-failure-ratio",
        detail: `join failure rate ${pct(joinRate)} > ${health.maxRatioToBaseline} x baseline ${pct(baseJoin)} (${baseline.joins} baseline joins)`,
      };
    if (iceRate > health.maxRatioToBaseline * baseIce)
      return {
        verdict: "halt",
        criterion: "ice-failure-ratio",
        detail: `ICE failure rate ${pct(iceRate)} > ${health.maxRatioToBaseline} x baseline ${pct(baseIce)} (${baseline.joins} baseline joins)`,
      };
  }
  return { verdict: "pass" };
}

interface PodView {
  pod: string;
  rank: number;
  /** Latest status report (any hash). */
  status: Extract<DriverEvent, { kind: "status" }> | null;
  /** Latest health report. */
  health: Extract<DriverEvent, { kind: "health" }> | null;
  /** The pod reported this rollout's hash applied at some point. */
  appliedCandidate: boolean;
}

class Superseded extends Error {
  readonly by: string | null;
  constructor(by: string | null) {
    super(`superseded by ${by ?? "a cleared state"}`);
    this.by = by;
  }
}

class Halt extends Error {
  readonly reason: HaltReason;
  constructor(reason: HaltReason) {
    super(`${reason.criterion}: ${reason.detail}`);
    this.reason = reason;
  }
}

/** Runs one rollout to its end; see the module documentation. Never throws for expected outcomes. */
export async function runRollout(input: DriverInput, deps: DriverDeps): Promise<DriverResult> {
  const { hash, revision, policy } = input;
  const start = deps.now();
  const deadline = start + input.timeoutMs;
  const revertTimeoutMs = input.revertTimeoutMs ?? 120_000;
  const checkEvery = input.stateCheckIntervalMs ?? 15_000;
  const iso = () => new Date(deps.now()).toISOString();

  let initial: RolloutStateDoc | null;
  try {
    initial = await deps.store.read();
  } catch (err) {
    return { outcome: "failed", id: null, message: `reading the rollout state: ${(err as Error).message}`, steps: [] };
  }
  const stableEntry = { hash, revision, config: input.config };
  if (initial === null || initial.stable === null) {
    // Nothing is known to be good yet: the first config becomes stable at once.
    try {
      await deps.store.write({
        type: "sfu-config.rollout-state",
        updatedAt: iso(),
        stable: stableEntry,
        candidate: null,
      });
      await deps.publishReload(null);
    } catch (err) {
      return { outcome: "failed", id: null, message: (err as Error).message, steps: [] };
    }
    deps.log(`no rollout state yet: ${hash} is now the stable config (first rollout, no steps)`);
    return { outcome: "bootstrapped", id: null };
  }
  if (initial.stable.hash === hash) {
    deps.log(`${hash} is already the stable config: nothing to roll out`);
    return { outcome: "already-stable", id: null };
  }
  if (initial.candidate?.hash === hash && initial.candidate.state === "halted") {
    const r = initial.candidate.reason;
    const message = `${hash} was halted by rollout ${initial.candidate.id}${
      r ? ` at step ${r.step + 1} (${r.criterion}: ${r.detail})` : ""
    }; commit a new change to roll out`;
    return { outcome: "refused", id: null, message };
  }
  const stable = initial.stable;

  const id = deps.newId();
  const steps: StepSummary[] = [];
  const pods = new Map<string, PodView>();
  /** Pods that reported a stage of this rollout (discovery counts these). */
  const known = new Set<string>();
  let candidate: RolloutCandidate = { id, hash, revision, state: "running", step: 0, threshold: 0, reason: null };
  let lastCheck = deps.now();

  const view = (pod: string): PodView => {
    let v = pods.get(pod);
    if (!v) {
      v = { pod, rank: deps.rankOf(pod), status: null, health: null, appliedCandidate: false };
      pods.set(pod, v);
    }
    return v;
  };
  const inCohort = (v: PodView) => v.rank < candidate.threshold;
  const cohortPods = () => [...pods.values()].filter((v) => known.has(v.pod) && inCohort(v));

  const ensureCurrent = async () => {
    const s = await deps.store.read();
    if (s?.candidate?.id !== id) throw new Superseded(s?.candidate?.id ?? null);
  };
  const writeState = async (stableOut: RolloutStateDoc["stable"]) => {
    await ensureCurrent();
    await deps.store.write({ type: "sfu-config.rollout-state", updatedAt: iso(), stable: stableOut, candidate });
  };
  const ref = (): RolloutRef => ({ id, step: candidate.step, threshold: candidate.threshold });

  /** Takes in reports until `until`; a cohort failure throws Halt. Returns when events arrived or at `until`. */
  const pump = async (until: number) => {
    const now = deps.now();
    if (now - lastCheck >= checkEvery) {
      lastCheck = now;
      try {
        await ensureCurrent();
      } catch (err) {
        if (err instanceof Superseded) throw err;
        deps.log(`reading the rollout state failed (retrying later): ${(err as Error).message}`);
      }
    }
    const events = await deps.nextEvents(Math.min(until, lastCheck + checkEvery));
    let failure: HaltReason | null = null;
    for (const e of events) {
      // Reports of another rollout (an older run) say nothing about this one.
      if (e.kind === "status" && e.rolloutId !== null && e.rolloutId !== id) continue;
      const v = view(e.pod);
      if (e.kind === "health") {
        if (!v.health || v.health.at <= e.at) v.health = e;
        continue;
      }
      if (e.rolloutId === id) known.add(e.pod);
      if (v.status && v.status.at > e.at) continue;
      if (v.status?.stage !== e.stage || v.status?.hash !== e.hash || v.status?.outcome !== e.outcome)
        deps.log(`${e.pod}: ${e.stage ?? "-"} ${e.outcome} ${e.hash.slice(0, 19)}${e.error ? ` ${e.error.code}` : ""}`);
      v.status = e;
      if (e.hash === hash && e.outcome === "applied" && e.stage !== null && APPLIED_STAGES.has(e.stage))
        v.appliedCandidate = true;
      const criterion = FAILING[e.outcome];
      if (criterion && e.hash === hash && inCohort(v) && failure === null) {
        failure = {
          step: candidate.step,
          criterion,
          pods: [e.pod],
          detail: `${e.pod} reported ${e.outcome} for ${hash}${e.error ? ` (${e.error.code}: ${e.error.message})` : ""}`,
        };
      }
    }
    // Every report of the batch is taken in before halting (the revert wait needs them).
    if (failure) throw new Halt(failure);
  };

  const groupHealth = (cohort: boolean): GroupHealth => {
    const g: GroupHealth = { pods: 0, joins: 0, joinFailures: 0, iceConnected: 0, iceFailures: 0 };
    for (const v of pods.values()) {
      if (inCohort(v) !== cohort || !v.health) continue;
      // Counters restart per applied hash: the cohort is judged on the candidate,
      // the baseline on anything else (the stable config).
      if ((v.health.health.hash === hash) !== cohort) continue;
      g.pods++;
      g.joins += v.health.health.joins;
      g.joinFailures += v.health.health.joinFailures;
      g.iceConnected += v.health.health.iceConnected;
      g.iceFailures += v.health.health.iceFailures;
    }
    return g;
  };

  const timeoutHalt = (what: string, criterion = "timeout"): Halt =>
    new Halt({
      step: candidate.step,
      criterion,
      pods: cohortPods()
        .filter((v) => !v.appliedCandidate)
        .map((v) => v.pod),
      detail: `timed out after ${Math.round(input.timeoutMs / 1000)}s ${what}`,
    });

  try {
    await deps.store.write({ type: "sfu-config.rollout-state", updatedAt: iso(), stable, candidate });
    await deps.publishReload(ref());
    deps.log(`rollout ${id}: ${hash} (stable ${stable.hash}); waiting for ${input.expect} pods to report`);

    // Discovery: every pod reports `held` once its mount has the hash (threshold 0).
    while (known.size < input.expect) {
      if (deps.now() >= deadline) throw timeoutHalt(`waiting for pods: ${known.size}/${input.expect} reported`);
      await pump(deadline);
    }
    deps.log(`${known.size} pods known: ${[...pods.values()].map((v) => `${v.pod}(${v.rank.toFixed(3)})`).join(" ")}`);

    for (let k = 0; k < policy.steps.length; k++) {
      const step = policy.steps[k] as { percent: number; bakeMs: number };
      const stepStart = deps.now();
      candidate = {
        ...candidate,
        step: k,
        threshold: cohortThreshold(
          [...known].map((pod) => view(pod).rank),
          step.percent,
        ),
      };
      await writeState(stable);
      await deps.publishReload(ref());
      deps.log(
        `step ${k + 1}/${policy.steps.length}: ${step.percent}% threshold ${candidate.threshold.toFixed(4)}: ${cohortPods()
          .map((v) => v.pod)
          .join(" ")}`,
      );
      while (!cohortPods().every((v) => v.appliedCandidate)) {
        if (deps.now() >= deadline) throw timeoutHalt(`waiting for the cohort of step ${k + 1} to apply ${hash}`);
        await pump(deadline);
      }
      const applyMs = deps.now() - stepStart;
      const bakeEnd = deps.now() + step.bakeMs;
      let noTraffic = false;
      for (;;) {
        const verdict = evaluateHealth(groupHealth(true), groupHealth(false), policy.halt.health);
        if (verdict.verdict === "halt")
          throw new Halt({
            step: k,
            criterion: verdict.criterion,
            pods: cohortPods().map((v) => v.pod),
            detail: verdict.detail,
          });
        if (deps.now() >= bakeEnd) {
          if (verdict.verdict === "pass") break;
          if (policy.halt.noTraffic === "proceed") {
            noTraffic = true;
            deps.log(`step ${k + 1}: no traffic (${groupHealth(true).joins} cohort joins); proceeding by policy`);
            break;
          }
        }
        if (deps.now() >= deadline) {
          throw verdict.verdict === "no-traffic"
            ? new Halt({
                step: k,
                criterion: "no-traffic",
                pods: cohortPods().map((v) => v.pod),
                detail: `timed out after ${Math.round(input.timeoutMs / 1000)}s with ${groupHealth(true).joins} cohort joins (minJoins ${policy.halt.health.minJoins})`,
              })
            : timeoutHalt(`baking step ${k + 1}`);
        }
        await pump(deps.now() >= bakeEnd ? deadline : Math.min(bakeEnd, deadline));
      }
      steps.push({
        step: k,
        percent: step.percent,
        threshold: candidate.threshold,
        pods: cohortPods().map((v) => v.pod),
        applyMs,
        bakeMs: step.bakeMs,
        durationMs: deps.now() - stepStart,
        cohort: groupHealth(true),
        baseline: groupHealth(false),
        noTraffic,
      });
    }
    candidate = { ...candidate, state: "complete", threshold: 1 };
    await writeState({ hash, revision, config: input.config });
    await deps.publishReload(ref());
    deps.log(`rollout ${id} complete: ${hash} is the stable config`);
    return { outcome: "complete", id, steps };
  } catch (err) {
    if (err instanceof Superseded) {
      deps.log(`rollout ${id} superseded by ${err.by ?? "a cleared state"}: stopping without writing`);
      return { outcome: "superseded", id, by: err.by, steps };
    }
    if (!(err instanceof Halt)) return { outcome: "failed", id, message: (err as Error).message, steps };
    return await halt(err.reason);
  }

  async function halt(reason: HaltReason): Promise<DriverResult> {
    candidate = { ...candidate, state: "halted", reason };
    deps.log(`halting at step ${reason.step + 1}: ${reason.criterion}: ${reason.detail}`);
    try {
      await writeState(stable);
      await deps.publishReload(ref());
    } catch (err) {
      if (err instanceof Superseded) return { outcome: "superseded", id, by: err.by, steps };
      return { outcome: "failed", id, message: `halting: ${(err as Error).message}`, steps };
    }
    // The pods that applied the halted hash must go back to the stable config.
    const toRevert = () => [...pods.values()].filter((v) => v.appliedCandidate);
    const reverted = (v: PodView) =>
      v.status?.stage === "reverted" || (v.status?.hash === stable.hash && v.status.outcome === "applied");
    const revertDeadline = deps.now() + revertTimeoutMs;
    while (!toRevert().every(reverted) && deps.now() < revertDeadline) {
      try {
        await pump(revertDeadline);
      } catch (err) {
        if (err instanceof Superseded) return { outcome: "superseded", id, by: err.by, steps };
        // More failures of the halted hash change nothing now; anything else is retried until the deadline.
        if (!(err instanceof Halt)) deps.log(`while waiting for reverts: ${(err as Error).message}`);
      }
    }
    try {
      await deps.publishHalted?.(reason, ref());
    } catch (err) {
      deps.log(`publishing the halted status event failed: ${(err as Error).message}`);
    }
    return {
      outcome: "halted",
      id,
      reason,
      steps,
      reverted: toRevert()
        .filter(reverted)
        .map((v) => v.pod),
      notReverted: toRevert()
        .filter((v) => !reverted(v))
        .map((v) => v.pod),
    };
  }
}
