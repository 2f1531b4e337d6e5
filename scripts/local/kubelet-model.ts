/**
 * A model of when the kubelet rewrites a pod's ConfigMap volume, for the
 * local stack and bench:propagation (docs/propagation.md):
 * - **periodic sync**: each pod is synced on its own period, `syncMs` plus a
 *   jitter of up to `jitter` x `syncMs` (the kubelet's `syncFrequency`, 1 min,
 *   jittered up to +50%: 60-90 s), starting at a random phase, as pods that
 *   started at different times;
 * - **pod update**: a change of the pod object (the hook's annotation) syncs
 *   that pod `updateDelayMs` later (the kubelet's pod worker handles the
 *   update at once), and its next periodic sync counts from then, as the
 *   kubelet requeues a pod after each sync.
 * What a sync writes is the caller's (`sync`: typically the AtomicWriter's
 * `..data` swap of the ConfigMap the API server holds now). Time comes from
 * injected {@link Timers} and randomness from `random`, so it is unit-tested
 * on a manual clock.
 */
import type { TimerHandle, Timers } from "../../agent/shared/timers.ts";

/** Tunables of {@link KubeletModel}. */
export interface KubeletModelOptions {
  /** The periodic sync's base period (the kubelet's syncFrequency; 60 s). */
  syncMs: number;
  /** Extra delay of each periodic sync, up to this fraction of `syncMs` (default 0.5). */
  jitter?: number;
  /** From a pod update to that pod's sync (default 50 ms). */
  updateDelayMs?: number;
}

/** Why a pod was synced. */
export type SyncCause = "periodic" | "pod-update";

/** The kubelet model; see the module documentation. */
export class KubeletModel {
  readonly #sync: (pod: string, cause: SyncCause) => Promise<void>;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #syncMs: number;
  readonly #jitter: number;
  readonly #updateDelayMs: number;
  readonly #next = new Map<string, TimerHandle>();
  #running = false;

  constructor(deps: {
    /** Syncs one pod (writes its volume); a rejection is the caller's to report, the model goes on. */
    sync: (pod: string, cause: SyncCause) => Promise<void>;
    timers: Timers;
    /** Uniform in [0, 1) (default Math.random). */
    random?: () => number;
    options: KubeletModelOptions;
  }) {
    const o = deps.options;
    if (!(o.syncMs > 0)) throw new RangeError(`syncMs must be > 0, got ${o.syncMs}`);
    const jitter = o.jitter ?? 0.5;
    if (!(jitter >= 0 && jitter <= 10)) throw new RangeError(`jitter must be in [0, 10], got ${jitter}`);
    const updateDelayMs = o.updateDelayMs ?? 50;
    if (!(updateDelayMs >= 0)) throw new RangeError(`updateDelayMs must be >= 0, got ${updateDelayMs}`);
    this.#sync = deps.sync;
    this.#timers = deps.timers;
    this.#random = deps.random ?? Math.random;
    this.#syncMs = o.syncMs;
    this.#jitter = jitter;
    this.#updateDelayMs = updateDelayMs;
  }

  /** Starts the periodic syncs of `pods`, each at a random phase of its period. */
  start(pods: readonly string[]): void {
    this.#running = true;
    for (const pod of pods) this.#schedule(pod, this.#random() * this.#period(), "periodic");
  }

  /** Adds a pod (started later): its first periodic sync is a full period away. */
  add(pod: string): void {
    if (this.#running && !this.#next.has(pod)) this.#schedule(pod, this.#period(), "periodic");
  }

  /** The pod object changed (an annotation): sync it now, as the kubelet does on a pod update. */
  podUpdated(pod: string): void {
    if (!this.#running || !this.#next.has(pod)) return;
    this.#schedule(pod, this.#updateDelayMs, "pod-update");
  }

  /** Stops every timer; syncs in flight finish. */
  stop(): void {
    this.#running = false;
    for (const t of this.#next.values()) this.#timers.clearTimeout(t);
    this.#next.clear();
  }

  /** One periodic interval: `syncMs` plus up to `jitter` x `syncMs`. */
  #period(): number {
    return this.#syncMs * (1 + this.#jitter * this.#random());
  }

  #schedule(pod: string, ms: number, cause: SyncCause): void {
    this.#timers.clearTimeout(this.#next.get(pod));
    this.#next.set(
      pod,
      this.#timers.setTimeout(() => {
        if (!this.#running) return;
        // The next periodic sync counts from this one.
        this.#schedule(pod, this.#period(), "periodic");
        void this.#sync(pod, cause).catch(() => {});
      }, ms),
    );
  }
}
