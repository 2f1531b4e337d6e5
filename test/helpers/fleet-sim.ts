/**
 * The simulated fleet of the rollout tests, and the pods' shared vocabulary.
 *
 * - {@link fleetSim}: for the rollout engine's unit tests, a discrete-event
 *   simulation on a fake clock. Each simulated pod behaves as the agent's
 *   rollout decision says (canary below the threshold, held above, reverted
 *   after a halt, applied when complete), reports its stage changes as
 *   status events and its call health every 10 s, and can be told to NACK
 *   the new hash or to make calls fail on it. Time passes only when the
 *   engine waits for events, so whole rollouts with minutes of bake run in
 *   milliseconds.
 * - Pod names and cohort order ({@link podNames}, {@link byRank},
 *   {@link simRank}), for the simulation and for the integration fleets of
 *   real agents alike.
 * - The reports a pod's agent publishes on the status topic, as tests that
 *   play pods by hand send them ({@link statusReport}, {@link healthReport}).
 */
import type { DriverDeps, DriverEvent, HaltReason, RolloutRef, RolloutStateDoc } from "../../agent/hook/driver.ts";
import { cohortRank } from "../../protocol/cohort.ts";
import type { HealthCounters, HealthEvent, StatusEvent } from "../../protocol/messages-schema.ts";

/** The pods' ranks (the protocol's). */
export const simRank = cohortRank;

/** `n` pod names, `${prefix}-0` to `${prefix}-${n - 1}`. */
export function podNames(n: number, prefix = "sfu-server"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
}

/** Pods (names, or objects with a `name`) in cohort order: the lowest rank, the first canary, first. */
export function byRank<T extends string | { name: string }>(pods: readonly T[]): T[] {
  const rank = (p: T) => cohortRank(typeof p === "string" ? p : p.name);
  return [...pods].sort((a, b) => rank(a) - rank(b));
}

/** The `sfu-config.status` event a pod's agent publishes for a settlement (default: applied, no revision). */
export function statusReport(o: {
  pod: string;
  hash: string;
  version: number | null;
  outcome?: StatusEvent["outcome"];
  revision?: string | null;
  error?: { code: string; message: string } | null;
  at?: Date;
  /** The optional timing fields of an applied report. */
  propagationSeconds?: number;
  eventToAppliedSeconds?: number;
}): StatusEvent & { propagationSeconds?: number; eventToAppliedSeconds?: number } {
  return {
    type: "sfu-config.status",
    pod: o.pod,
    revision: o.revision ?? null,
    hash: o.hash,
    version: o.version,
    outcome: o.outcome ?? "applied",
    error: o.error ?? null,
    at: (o.at ?? new Date()).toISOString(),
    ...(o.propagationSeconds === undefined ? {} : { propagationSeconds: o.propagationSeconds }),
    ...(o.eventToAppliedSeconds === undefined ? {} : { eventToAppliedSeconds: o.eventToAppliedSeconds }),
  };
}

/** The `sfu-config.health` event a pod's agent publishes while a rollout runs (rank: the pod's cohort rank). */
export function healthReport(o: {
  pod: string;
  hash: string;
  stage: string;
  counters: Omit<HealthCounters, "hash">;
  rank?: number;
  at?: Date;
}): HealthEvent {
  return {
    type: "sfu-config.health",
    pod: o.pod,
    rank: o.rank ?? cohortRank(o.pod),
    hash: o.hash,
    stage: o.stage,
    health: { hash: o.hash, ...o.counters },
    at: (o.at ?? new Date()).toISOString(),
  };
}

/** How one simulated pod behaves. */
export interface SimPodOptions {
  /** Delay until the pod's mount has the new file (kubelet propagation), ms. */
  mountLagMs?: number;
  /** NACK the new hash instead of applying it. */
  nack?: boolean;
  /** Joins per 10 s report. */
  joinsPerReport?: number;
  /** Fraction of joins whose ICE fails while running the new hash. */
  iceFailureOnNew?: number;
  /** Fraction of joins whose ICE fails while running the stable hash. */
  iceFailureOnStable?: number;
  /** Never reports anything (a dead pod). */
  silent?: boolean;
  /** Its SFU runs this hash throughout (an agent holding what it runs): reported as `held`. */
  stuckOn?: string;
}

/** Failures of the driver's own calls: return an Error to make that call fail (n counts calls of that kind from 1). */
export interface SimFaults {
  read?: (n: number, now: number) => Error | null;
  write?: (n: number, now: number) => Error | null;
  publish?: (n: number, now: number) => Error | null;
}

interface SimPod {
  name: string;
  rank: number;
  o: SimPodOptions;
  mounted: string;
  /** Hash the SFU runs. */
  running: string;
  stage: string | null;
  appliedNew: boolean;
  counters: { joins: number; joinFailures: number; iceConnected: number; iceFailures: number };
  /** Every hash this pod's SFU ever ran, in order. */
  history: string[];
  /** The last state this pod's agent read (a missing object keeps it, as the agent does). */
  memory: RolloutStateDoc | null;
}

/** The simulation plus the engine's dependencies wired to it. */
export interface FleetSim {
  deps: DriverDeps;
  pods: Map<string, SimPod>;
  state: { doc: RolloutStateDoc | null };
  published: Array<RolloutRef | null>;
  halted: Array<{ reason: HaltReason; rollout: RolloutRef }>;
  logs: string[];
  now(): number;
  /** Schedules `fn` at simulated time `at`. */
  at(at: number, fn: () => void): void;
  /** Counts of store calls. */
  calls: { read: number; write: number; publish: number };
}

/** Builds a fleet of `pods` running `stableHash` with `newHash` about to be mounted. */
export function fleetSim(o: {
  stableHash: string;
  newHash: string;
  pods: Record<string, SimPodOptions>;
  state: RolloutStateDoc | null;
  /** Delay between a publish and a pod's reaction, ms. */
  reactMs?: number;
  faults?: SimFaults;
}): FleetSim {
  let now = Date.UTC(2026, 0, 1);
  const start = now;
  let seq = 0;
  const queue: Array<{ at: number; seq: number; fn: () => void }> = [];
  const inbox: DriverEvent[] = [];
  const state = { doc: o.state };
  const calls = { read: 0, write: 0, publish: 0 };
  const published: Array<RolloutRef | null> = [];
  const halted: Array<{ reason: HaltReason; rollout: RolloutRef }> = [];
  const logs: string[] = [];
  const at = (t: number, fn: () => void) => {
    queue.push({ at: t, seq: seq++, fn });
    queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };
  const pods = new Map<string, SimPod>();
  for (const [name, po] of Object.entries(o.pods)) {
    pods.set(name, {
      name,
      rank: simRank(name),
      o: po,
      mounted: o.stableHash,
      running: po.stuckOn ?? o.stableHash,
      stage: null,
      appliedNew: false,
      counters: { joins: 0, joinFailures: 0, iceConnected: 0, iceFailures: 0 },
      history: [po.stuckOn ?? o.stableHash],
      memory: o.state,
    });
  }
  const report = (p: SimPod, e: DriverEvent) => {
    if (!p.o.silent) inbox.push(e);
  };
  /** A stage report of `p` (a status event as the driver reads it). */
  const reportStatus = (
    p: SimPod,
    hash: string,
    stage: string,
    rolloutId: string | null,
    error: { code: string; message: string } | null = null,
  ) =>
    report(p, {
      kind: "status",
      pod: p.name,
      hash,
      stage,
      rolloutId,
      outcome: error === null ? "applied" : "rejected",
      error,
      at: now,
    });
  const run = (p: SimPod, h: string) => {
    if (p.running === h) return;
    p.running = h;
    p.history.push(h);
    p.counters = { joins: 0, joinFailures: 0, iceConnected: 0, iceFailures: 0 };
  };
  /** The agent's decision, re-evaluated on every event and mount change. */
  const decide = (p: SimPod) => {
    if (state.doc !== null) p.memory = state.doc;
    const doc = p.memory;
    if (doc === null) {
      // Never knew a state: the mounted config applies (bootstrap) and is reported.
      if (p.mounted === o.newHash && p.stage !== "applied") {
        p.stage = "applied";
        run(p, o.newHash);
        reportStatus(p, o.newHash, "applied", null);
      }
      return;
    }
    const c = doc?.candidate;
    const stable = doc?.stable?.hash ?? o.stableHash;
    if (p.mounted !== o.newHash || !c || c.hash !== o.newHash) return;
    let stage: string;
    let target: string;
    if (c.state === "complete") [stage, target] = ["applied", o.newHash];
    else if (c.state === "halted") [stage, target] = [p.appliedNew ? "reverted" : "held", stable];
    else if (p.rank < c.threshold) [stage, target] = ["canary", o.newHash];
    else [stage, target] = [p.appliedNew ? "reverted" : "held", stable];
    if (p.o.stuckOn !== undefined) target = p.o.stuckOn;
    if (stage === p.stage) return;
    p.stage = stage;
    if (target === o.newHash && p.o.nack) {
      reportStatus(p, target, stage, c.id, { code: "UNSUPPORTED", message: "no" });
      return;
    }
    run(p, target);
    if (target === o.newHash) p.appliedNew = true;
    reportStatus(p, target, stage, c.id);
  };
  const react = o.reactMs ?? 200;
  for (const p of pods.values()) {
    at(now + (p.o.mountLagMs ?? 1_000), () => {
      p.mounted = o.newHash;
      decide(p);
    });
    // Health every 10 s (the agents publish only while a rollout runs; harmless here).
    const tick = () => {
      const n = p.o.joinsPerReport ?? 0;
      const f = p.running === o.newHash ? (p.o.iceFailureOnNew ?? 0) : (p.o.iceFailureOnStable ?? 0);
      const fails = Math.round(n * f);
      p.counters.joins += n;
      p.counters.iceFailures += fails;
      p.counters.iceConnected += n - fails;
      if (state.doc?.candidate?.state === "running")
        report(p, {
          kind: "health",
          pod: p.name,
          stage: p.stage,
          health: { hash: p.running, ...p.counters },
          at: now,
        });
      at(now + 10_000, tick);
    };
    at(now + 10_000 * (0.1 + p.rank), tick);
  }
  const deps: DriverDeps = {
    now: () => now,
    store: {
      read: async () => {
        calls.read++;
        const f = o.faults?.read?.(calls.read, now);
        if (f) throw f;
        return state.doc === null ? null : structuredClone(state.doc);
      },
      write: async (doc) => {
        calls.write++;
        const f = o.faults?.write?.(calls.write, now);
        if (f) throw f;
        state.doc = structuredClone(doc);
      },
    },
    publishReload: async (r) => {
      calls.publish++;
      const f = o.faults?.publish?.(calls.publish, now);
      if (f) throw f;
      published.push(r);
      for (const p of pods.values()) at(now + react, () => decide(p));
    },
    publishHalted: async (reason, rollout) => {
      halted.push({ reason, rollout });
    },
    nextEvents: async (until) => {
      for (let guard = 0; guard < 1_000_000; guard++) {
        if (inbox.length > 0) return inbox.splice(0);
        const next = queue[0];
        if (!next || next.at > until) {
          now = Math.max(now, until);
          return [];
        }
        queue.shift();
        now = Math.max(now, next.at);
        next.fn();
      }
      throw new Error(`simulation did not settle (started ${start})`);
    },
    rankOf: simRank,
    newId: () => `rollout-${++seq}`,
    log: (line) => logs.push(line),
  };
  return { deps, pods, state, published, halted, logs, now: () => now, at, calls };
}
