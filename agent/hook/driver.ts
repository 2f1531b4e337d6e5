/**
 * The step engine of `sfu-agent rollout`: drives one config hash through the
 * policy's steps (cohort, bake, halt criteria, widen) by writing the durable
 * rollout state, publishing reload events and reading the agents' status and
 * health reports (PROTOCOL.md section 19; its halt criteria in
 * docs/rollouts.md; how it fails closed, retries its own failures and
 * resumes, section 19.5 and docs/rollout-faults.md).
 *
 * Everything outside the engine is injected (clock, state store, publishing,
 * the event source), so it runs against a simulated fleet on a fake clock in
 * unit tests and against S3/SNS/SQS in the CLI. Time only passes inside
 * {@link DriverDeps.nextEvents}: the engine never sleeps on its own.
 */

import { type BackoffOptions, backoffDelay } from "../../protocol/backoff.ts";
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

/** Back-off of the driver's S3 and SNS retries (PROTOCOL.md section 19): 500 ms doubling to 10 s, no jitter. */
export const DRIVER_RETRY_BACKOFF: Readonly<Required<BackoffOptions>> = { baseMs: 500, maxMs: 10_000, jitter: "none" };

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
  /** Back-off between retries of a failed S3 or SNS call (default {@link DRIVER_RETRY_BACKOFF}). */
  retryBackoff?: BackoffOptions;
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

/** The driver's own failure after its retries: it halts. */
class GiveUp extends Error {
  override name = "GiveUp";
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

  const backoff: BackoffOptions = { ...DRIVER_RETRY_BACKOFF, ...input.retryBackoff };
  /** Reports that arrived while waiting to retry, taken in by the next pump. */
  const early: DriverEvent[] = [];
  const describe = (err: unknown) => {
    const e = err as { code?: string; message?: string };
    return `${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}`;
  };
  /** Runs `fn`, retrying with back-off until epoch ms `until`; then throws GiveUp. Time passes in nextEvents. */
  const retrying = async <T>(what: string, until: number, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Superseded || err instanceof Halt || err instanceof GiveUp) throw err;
        const now = deps.now();
        if (now >= until) throw new GiveUp(`${what}: ${describe(err)} (gave up after ${attempt + 1} attempts)`);
        const wait = Math.min(until - now, backoffDelay(attempt, backoff));
        deps.log(`${what} failed (attempt ${attempt + 1}, retrying in ${Math.round(wait)} ms): ${describe(err)}`);
        early.push(...(await deps.nextEvents(now + wait)));
      }
    }
  };

  let initial: RolloutStateDoc | null;
  try {
    initial = await retrying("reading the rollout state", deadline, () => deps.store.read());
  } catch (err) {
    return { outcome: "failed", id: null, message: (err as Error).message, steps: [] };
  }
  const stableEntry = { hash, revision, config: input.config };
  if (initial === null || initial.stable === null) {
    return await bootstrap();
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
  /** A rerun after a driver that died mid-rollout of the same hash: resume at its step. */
  const resumeFrom =
    initial.candidate?.hash === hash && initial.candidate.state === "running" ? initial.candidate : null;
  const stable = initial.stable;
  return await drive(stable);

  /**
   * No state (404) or no stable config: the hash becomes stable only once
   * every expected pod vouches for it (reports it applied). An agent that
   * knew a state keeps it on a 404 and never reports a halted hash applied,
   * so a deleted state cannot turn a halted hash stable: the driver then
   * fails without writing (restore the state object).
   */
  async function bootstrap(): Promise<DriverResult> {
    try {
      await retrying("publishing the reload event", deadline, () => deps.publishReload(null));
    } catch (err) {
      return { outcome: "failed", id: null, message: (err as Error).message, steps: [] };
    }
    deps.log(`no rollout state: waiting for ${input.expect} pods to report ${hash} applied before recording it stable`);
    const vouched = new Set<string>();
    const other = new Map<string, string>();
    while (vouched.size < input.expect) {
      if (deps.now() >= deadline) {
        const others = [...other].map(([pod, what]) => `${pod}: ${what}`).join(", ");
        return {
          outcome: "failed",
          id: null,
          message: `STATE_MISSING: no rollout state, and only ${vouched.size}/${input.expect} pods report ${hash} applied within the timeout${
            others ? ` (${others})` : ""
          }; nothing written. If a state existed (a rollout ran), restore the object (S3 versioning) and rerun`,
          steps: [],
        };
      }
      for (const e of early.length > 0 ? early.splice(0) : await deps.nextEvents(deadline)) {
        if (e.kind !== "status") continue;
        if (e.hash === hash && e.outcome === "applied") {
          vouched.add(e.pod);
          other.delete(e.pod);
        } else if (!vouched.has(e.pod)) other.set(e.pod, `${e.stage ?? "-"} ${e.outcome} ${e.hash.slice(0, 19)}`);
      }
    }
    try {
      await retrying("writing the rollout state", deadline, async () => {
        // Written only where still nothing is: a state that appeared meanwhile decides.
        const now = await deps.store.read();
        if (now !== null && now.stable !== null) throw new Superseded(now.candidate?.id ?? null);
        await deps.store.write({
          type: "sfu-config.rollout-state",
          updatedAt: iso(),
          stable: stableEntry,
          candidate: null,
        });
      });
    } catch (err) {
      if (err instanceof Superseded) {
        return {
          outcome: "failed",
          id: null,
          message: "a rollout state appeared while bootstrapping: rerun",
          steps: [],
        };
      }
      return { outcome: "failed", id: null, message: (err as Error).message, steps: [] };
    }
    deps.log(
      `no rollout state yet: ${hash} is now the stable config (first rollout, no steps; ${vouched.size} pods run it)`,
    );
    return { outcome: "bootstrapped", id: null };
  }

  async function drive(stable: NonNullable<RolloutStateDoc["stable"]>): Promise<DriverResult> {
    const id = deps.newId();
    const steps: StepSummary[] = [];
    const pods = new Map<string, PodView>();
    /** Pods that reported a stage of this rollout (discovery counts these). */
    const known = new Set<string>();
    let candidate: RolloutCandidate = {
      id,
      hash,
      revision,
      state: "running",
      step: resumeFrom?.step ?? 0,
      threshold: resumeFrom?.threshold ?? 0,
      reason: null,
    };
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
      // A missing object is not "no rollout": this driver is the writer and writes it again.
      if (s === null) {
        deps.log("the rollout state object is missing (404): this driver writes it again");
        return;
      }
      if (s.candidate?.id !== id) throw new Superseded(s.candidate?.id ?? null);
    };
    const writeState = async (stableOut: RolloutStateDoc["stable"], until = deadline) => {
      await retrying("reading the rollout state", until, ensureCurrent);
      await retrying("writing the rollout state", until, () =>
        deps.store.write({ type: "sfu-config.rollout-state", updatedAt: iso(), stable: stableOut, candidate }),
      );
    };
    const publish = (until = deadline) =>
      retrying("publishing the reload event", until, () => deps.publishReload(ref()));
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
      const events =
        early.length > 0 ? early.splice(0) : await deps.nextEvents(Math.min(until, lastCheck + checkEvery));
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
          deps.log(
            `${e.pod}: ${e.stage ?? "-"} ${e.outcome} ${e.hash.slice(0, 19)}${e.error ? ` ${e.error.code}` : ""}`,
          );
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
        // Counters restart per applied hash: the cohort is judged on the candidate, the
        // baseline only on pods of this rollout running the stable config (a pod holding
        // something else, e.g. an agent that cannot read the state, is neither).
        if (v.health.health.hash !== (cohort ? hash : stable.hash)) continue;
        if (!cohort && !known.has(v.pod)) continue;
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
      await retrying("writing the rollout state", deadline, () =>
        deps.store.write({ type: "sfu-config.rollout-state", updatedAt: iso(), stable, candidate }),
      );
      await publish();
      if (resumeFrom !== null) {
        deps.log(
          `resuming rollout ${resumeFrom.id} of ${hash} (its driver stopped) as ${id} at step ${resumeFrom.step + 1}, threshold ${resumeFrom.threshold.toFixed(4)}`,
        );
      }
      deps.log(`rollout ${id}: ${hash} (stable ${stable.hash}); waiting for ${input.expect} pods to report`);

      // Discovery: every pod reports `held` once its mount has the hash (threshold 0).
      while (known.size < input.expect) {
        if (deps.now() >= deadline) throw timeoutHalt(`waiting for pods: ${known.size}/${input.expect} reported`);
        await pump(deadline);
      }
      deps.log(
        `${known.size} pods known: ${[...pods.values()].map((v) => `${v.pod}(${v.rank.toFixed(3)})`).join(" ")}`,
      );

      for (let k = resumeFrom?.step ?? 0; k < policy.steps.length; k++) {
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
        await publish();
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
      // The state is complete: a lost event only delays the pods until their next resync.
      try {
        await publish(deps.now() + revertTimeoutMs);
      } catch (err) {
        deps.log(`${(err as Error).message}; the agents take the completed state at their next resync`);
      }
      deps.log(`rollout ${id} complete: ${hash} is the stable config`);
      return { outcome: "complete", id, steps };
    } catch (err) {
      if (err instanceof Superseded) {
        deps.log(`rollout ${id} superseded by ${err.by ?? "a cleared state"}: stopping without writing`);
        return { outcome: "superseded", id, by: err.by, steps };
      }
      if (err instanceof GiveUp) {
        return await halt({
          step: candidate.step,
          criterion: "driver-error",
          pods: [],
          detail: `the driver gave up: ${err.message}`,
        });
      }
      if (!(err instanceof Halt)) {
        // A bug of the engine, not an outside failure: still never leave the rollout running.
        return await halt({
          step: candidate.step,
          criterion: "driver-error",
          pods: [],
          detail: `the driver failed: ${(err as Error).message}`,
        });
      }
      return await halt(err.reason);
    }

    async function halt(reason: HaltReason): Promise<DriverResult> {
      candidate = { ...candidate, state: "halted", reason };
      deps.log(`halting at step ${reason.step + 1}: ${reason.criterion}: ${reason.detail}`);
      const haltUntil = deps.now() + revertTimeoutMs;
      try {
        try {
          await retrying("reading the rollout state", haltUntil, ensureCurrent);
        } catch (err) {
          if (!(err instanceof GiveUp)) throw err;
          // Unreadable: a recorded halt is the safe side, whatever the object holds now.
          deps.log(`${err.message}; writing the halt anyway`);
        }
        await retrying("writing the halt", Math.max(haltUntil, deps.now() + backoff.baseMs), () =>
          deps.store.write({ type: "sfu-config.rollout-state", updatedAt: iso(), stable, candidate }),
        );
      } catch (err) {
        if (err instanceof Superseded) return { outcome: "superseded", id, by: err.by, steps };
        return {
          outcome: "failed",
          id,
          message: `halting: ${(err as Error).message}; the state still says running: rerun the hook (it resumes or halts)`,
          steps,
        };
      }
      try {
        await publish(haltUntil);
      } catch (err) {
        deps.log(`${(err as Error).message}; the agents take the halt at their next resync`);
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
}
