/**
 * Shared parts of the rollout fault suite: a fleet of real agents (per-pod
 * queues, fake SFUs) on fauxqs behind a fault proxy, a watch that observes
 * every config each SFU receives and fails the run when one receives a hash
 * after its rollout halted, and one run of `sfu-agent rollout` with a fault
 * injected at a given step.
 *
 * Durations are scaled down with the driver's and agents' timeouts: S3
 * reads time out after 800 ms, the agents resync every 500 ms, bakes are 1 s
 * and a long outage lasts until the driver has given up (it is over when the
 * state says halted, or after `maxOutageMs`).
 */
import assert from "node:assert/strict";
import type { ConfigMessage } from "../../../protocol/messages-schema.ts";
import type { RolloutState } from "../../../protocol/rollout-schema.ts";
import type { CliRun } from "../../helpers/cli-run.ts";
import type { FakeSfuReply } from "../../helpers/fake-sfu.ts";
import {
  type Fault,
  type FaultProxy,
  type FaultRequest,
  type FaultService,
  startFaultProxy,
} from "../../helpers/fault-proxy.ts";
import { until } from "../../helpers/until.ts";
import { type Fleet, hashOf, startFleet } from "../rollout/fleet.ts";

/**
 * Observes every apply: polls the state (straight from fauxqs, past the
 * proxy) and, from the moment a candidate is seen halted, counts what each
 * pod's SFU received of that hash. Any later increase is a violation.
 */
export class HaltWatch {
  readonly violations: string[] = [];
  /** Halted hash -> pod -> configs of that hash received when the halt was seen. */
  readonly #seen = new Map<string, Map<string, number>>();
  readonly #fleet: Fleet;
  #timer: NodeJS.Timeout | null = null;
  #busy = false;

  constructor(fleet: Fleet) {
    this.#fleet = fleet;
  }

  start(): void {
    this.#timer = setInterval(() => void this.check(), 50);
  }

  /** The halted hashes seen so far. */
  get halted(): string[] {
    return [...this.#seen.keys()];
  }

  /** One look (also called before each assertion). */
  async check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      let state: RolloutState | null = null;
      try {
        state = await this.#fleet.state.read();
      } catch {
        // fauxqs itself never fails; a read racing a write is retried next tick.
      }
      const c = state?.candidate;
      if (c?.state === "halted" && !this.#seen.has(c.hash)) {
        this.#seen.set(c.hash, new Map(this.#fleet.pods.map((p) => [p.name, count(p.received(), c.hash)])));
      }
      for (const [hash, base] of this.#seen) {
        for (const p of this.#fleet.pods) {
          const n = count(p.received(), hash);
          const was = base.get(p.name) ?? 0;
          if (n > was) {
            this.violations.push(`${p.name} received the halted hash ${hash.slice(0, 19)} (${n - was} times)`);
            base.set(p.name, n);
          }
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Fails when any pod received a halted hash after its halt. */
  async assertNone(): Promise<void> {
    await this.check();
    assert.deepEqual(this.violations, [], "no pod applies a halted hash");
  }

  /**
   * A pod object was replaced (restart): it starts with a fresh SFU record, so
   * its counts start again from what its new SFU received.
   */
  rebase(name: string): void {
    const pod = this.#fleet.pods.find((p) => p.name === name);
    for (const [hash, base] of this.#seen) base.set(name, pod ? count(pod.received(), hash) : 0);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}

const count = (list: string[], hash: string) => list.filter((h) => h === hash).length;

/** A fleet behind a fault proxy, with its halt watch running. */
export interface FaultFleet {
  fleet: Fleet;
  proxy: FaultProxy;
  watch: HaltWatch;
  /** Hash of config `n`. */
  hash(n: number): Promise<string>;
  dispose(): Promise<void>;
}

/** Starts `names` on config 1, bootstrapped (config 1 stable). */
export async function startFaultFleet(o: {
  names: string[];
  reply?: (name: string) => FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply);
}): Promise<FaultFleet> {
  let proxy: FaultProxy | undefined;
  const fleet = await startFleet({
    names: o.names,
    initial: 1,
    resyncIntervalMs: 500,
    endpoint: async (fauxqs) => {
      proxy = await startFaultProxy(fauxqs);
      return proxy.url;
    },
    stateReads: { readTimeoutMs: 800, backoff: { baseMs: 50, maxMs: 200 } },
    stateCache: true,
    ...(o.reply ? { reply: o.reply } : {}),
  });
  const h1 = await hashOf(1);
  for (const p of fleet.pods) await until(() => p.applied() === h1, 10_000, `${p.name} on config 1`);
  const first = await fleet.rollout(1);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  const watch = new HaltWatch(fleet);
  watch.start();
  return {
    fleet,
    proxy: proxy as FaultProxy,
    watch,
    hash: hashOf,
    async dispose() {
      watch.stop();
      await fleet.dispose();
      await proxy?.stop();
    },
  };
}

/** What a run ended in. */
export interface FaultRun {
  result: CliRun;
  state: RolloutState;
  outcome: "complete" | "halted";
  /** Milliseconds from the start of the run until every pod ran the final config. */
  convergeMs: number;
}

/**
 * Runs `sfu-agent rollout` for config `n`; from the driver's write of step
 * `step` (0-based) on, fails `service` with `fault` for `outageMs` (or, with
 * `outageMs: "past-timeout"`, until the state records the halt), then
 * waits until every pod runs the final config (see {@link runWithAction}).
 * Fails when the fault failed no request (it would have tested nothing).
 */
export async function runWithFault(
  ff: FaultFleet,
  o: {
    n: number;
    step: number;
    service: FaultService;
    fault?: Fault;
    outageMs: number | "past-timeout";
    timeout: string;
    maxOutageMs?: number;
  },
): Promise<FaultRun> {
  const { fleet, proxy } = ff;
  const outage = o.outageMs;
  const fault = o.fault ?? { kind: "down" };
  const failedBefore = proxy.counts.failed[fault.kind];
  const r = await runWithAction(ff, {
    n: o.n,
    step: o.step,
    timeout: o.timeout,
    arm: () => proxy.fail(o.service, fault),
    act: async () => {
      try {
        if (outage === "past-timeout") await untilHalted(fleet, o.maxOutageMs);
        else await new Promise((r) => setTimeout(r, outage));
      } finally {
        proxy.fail(o.service, null);
      }
    },
  });
  assert.ok(proxy.counts.failed[fault.kind] > failedBefore, `the ${o.service} fault failed no request`);
  return r;
}

/** Waits until the state records a halt (the driver gave up), then 500 ms more. */
export async function untilHalted(fleet: Fleet, maxMs = 30_000): Promise<void> {
  await until(
    async () => (await fleet.state.read())?.candidate?.state === "halted",
    maxMs,
    "the driver gave up and recorded the halt during the fault",
  );
  await new Promise((r) => setTimeout(r, 500));
}

/**
 * Runs `sfu-agent rollout` for config `n` (in-process, or `o.run` for
 * another driver). The moment the proxy forwards the driver's state write
 * with the candidate at step `step` (0-based) or ended, calls `arm` (so a
 * fault it sets meets the driver's very next request: no race with a fast
 * step), then runs `act`. Then waits until every pod runs the final config:
 * the candidate when complete, the stable config when halted (never left
 * running), and checks the halt watch.
 */
export async function runWithAction(
  ff: FaultFleet,
  o: {
    n: number;
    step: number;
    timeout: string;
    act: () => Promise<void>;
    arm?: () => void;
    run?: () => Promise<CliRun>;
  },
): Promise<FaultRun> {
  const { fleet } = ff;
  const hash = await ff.hash(o.n);
  const before = (await fleet.state.read())?.stable?.hash ?? null;
  let reached = false;
  const off = ff.proxy.onRequest((req) => {
    const c = writtenState(req)?.candidate;
    if (c?.hash !== hash || (c.state === "running" && c.step < o.step)) return;
    off();
    reached = true;
    o.arm?.();
  });
  const t0 = performance.now();
  const run = o.run ? o.run() : fleet.rollout(o.n, { timeout: o.timeout });
  try {
    await fleet.mount(o.n);
    await until(() => reached, 30_000, `rollout of config ${o.n} at step ${o.step + 1}`);
  } finally {
    off();
  }
  await o.act();
  const result = await run;
  const state = (await fleet.state.read()) as RolloutState;
  assert.ok(state?.candidate, "a candidate is recorded");
  assert.equal(state.candidate.hash, hash);
  assert.notEqual(state.candidate.state, "running", `never left running: ${result.stdout}${result.stderr}`);
  const outcome = state.candidate.state as "complete" | "halted";
  assert.equal(result.code, outcome === "complete" ? 0 : 1, result.stdout + result.stderr);
  const final = outcome === "complete" ? hash : before;
  for (const p of fleet.pods)
    await until(
      () => p.applied() === final,
      15_000,
      `${p.name} on the ${outcome === "complete" ? "candidate" : "stable config"}`,
    );
  const convergeMs = performance.now() - t0;
  await ff.watch.assertNone();
  return { result, state, outcome, convergeMs };
}

/** The rollout state `req` writes when it is an S3 PUT of one, else null. */
export function writtenState(req: FaultRequest): RolloutState | null {
  if (req.service !== "s3" || req.method !== "PUT") return null;
  try {
    const doc = JSON.parse(req.body.toString("utf8")) as RolloutState;
    return doc?.type === "sfu-config.rollout-state" ? doc : null;
  } catch {
    return null;
  }
}
