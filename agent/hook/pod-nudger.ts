/**
 * The kubelet nudge (docs/propagation.md): after the hook has published a
 * reload event, set annotation {@link NUDGE_ANNOTATION} on every pod of the
 * Deployment. A changed annotation is a pod update, on which the kubelet
 * syncs that pod at once and rewrites its ConfigMap volume, instead of on its
 * next periodic sync (60-90 s later).
 *
 * The value is the hash with a nudge counter (`sha256:...;n=2`); a pod whose
 * agent has not reported the hash {@link NudgeOptions.renudgeAfterMs} after a
 * nudge is nudged again with the next counter (the kubelet may have synced
 * before its ConfigMap cache had the new object), at most
 * {@link NudgeOptions.maxNudges} times. Each patch is a JSON merge patch of
 * that one key: never the pod template, never another field.
 *
 * Nothing here fails the hook: a pod that cannot be annotated (403, deleted,
 * an API error) is recorded with its error and left to the periodic sync; a
 * 403 on the first patch stops the nudge for every pod (the Role has no
 * `patch` on pods, as with `--no-nudge`).
 */
import type { Timers } from "../shared/timers.ts";
import type { KubeClient, KubeError, PodInfo } from "./kube-client.ts";

/** The annotation the hook sets on the SFU's pods (contract). */
export const NUDGE_ANNOTATION = "sfu-config.dev/config-hash";

/** Tunables of {@link PodNudger}. */
export interface NudgeOptions {
  /** After a nudge, how long a pod has to report before it is nudged again (default 4 s). */
  renudgeAfterMs?: number;
  /** Nudges per pod at most, the first included (default 3). */
  maxNudges?: number;
  /** Patches in flight at once (default 8): the API server's fair share. */
  concurrency?: number;
}

/** What became of one pod's nudges. */
export interface PodNudge {
  pod: string;
  /** Patches accepted by the API. */
  nudges: number;
  /** Epoch ms of the first accepted patch, or null. */
  firstAt: number | null;
  /** The pod's agent reported the hash. */
  reported: boolean;
  /** The last failure, or null. */
  error: KubeError | null;
}

/** Result of {@link PodNudger.start}. */
export type NudgeStart = { ok: true; pods: number } | { ok: false; error: KubeError };

const DEFAULTS: Required<NudgeOptions> = { renudgeAfterMs: 4000, maxNudges: 3, concurrency: 8 };

/** Nudges the kubelet of each pod of a Deployment; see the module documentation. */
export class PodNudger {
  readonly #client: Pick<KubeClient, "listPods" | "annotatePod">;
  readonly #namespace: string;
  readonly #selector: string;
  readonly #hash: string;
  readonly #timers: Timers;
  readonly #options: Required<NudgeOptions>;
  readonly #pods = new Map<string, PodNudge & { counter: number; attempts: number }>();
  #timer: unknown = null;
  #stopped = false;
  #denied = false;
  #inflight: Promise<void> = Promise.resolve();

  constructor(deps: {
    client: Pick<KubeClient, "listPods" | "annotatePod">;
    namespace: string;
    /** The Deployment's `spec.selector` as a label selector string. */
    selector: string;
    hash: string;
    timers: Timers;
    options?: NudgeOptions;
  }) {
    this.#client = deps.client;
    this.#namespace = deps.namespace;
    this.#selector = deps.selector;
    this.#hash = deps.hash;
    this.#timers = deps.timers;
    this.#options = { ...DEFAULTS, ...deps.options };
    const o = this.#options;
    if (!(Number.isInteger(o.maxNudges) && o.maxNudges >= 1)) throw new RangeError("maxNudges must be an integer >= 1");
    if (!(o.renudgeAfterMs > 0)) throw new RangeError("renudgeAfterMs must be > 0");
    if (!(Number.isInteger(o.concurrency) && o.concurrency >= 1)) throw new RangeError("concurrency must be >= 1");
  }

  /**
   * Lists the pods and nudges each once (resolves when those patches are
   * answered), then keeps re-nudging the pods that do not report until
   * {@link stop}. Never rejects.
   */
  async start(): Promise<NudgeStart> {
    const listed = await this.#client.listPods(this.#namespace, this.#selector);
    if (!listed.ok) return { ok: false, error: { code: listed.code, message: listed.message } };
    const live = listed.pods.filter((p) => !p.terminating);
    for (const p of live) {
      this.#pods.set(p.name, {
        pod: p.name,
        nudges: 0,
        firstAt: null,
        reported: false,
        error: null,
        counter: counterOf(p, this.#hash),
        attempts: 0,
      });
    }
    await this.#round();
    this.#schedule();
    return { ok: true, pods: live.length };
  }

  /** The pod's agent reported the hash (any outcome): no more nudges for it. */
  reported(pod: string): void {
    const p = this.#pods.get(pod);
    if (p) p.reported = true;
  }

  /** Stops re-nudging; resolves once patches in flight are answered. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#inflight;
  }

  /** Per-pod results, by pod name. */
  results(): PodNudge[] {
    return [...this.#pods.values()]
      .map(({ counter: _c, attempts: _a, ...p }) => ({ ...p }))
      .sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
  }

  /** True when a 403 stopped the nudge (the Role has no patch on pods). */
  denied(): boolean {
    return this.#denied;
  }

  #due(): Array<PodNudge & { counter: number; attempts: number }> {
    if (this.#denied || this.#stopped) return [];
    return [...this.#pods.values()].filter(
      (p) => !p.reported && p.attempts < this.#options.maxNudges && p.error?.code !== "POD_NOT_FOUND",
    );
  }

  #schedule(): void {
    if (this.#stopped || this.#due().length === 0) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = null;
      this.#inflight = this.#round().then(() => this.#schedule());
    }, this.#options.renudgeAfterMs);
  }

  async #round(): Promise<void> {
    const queue = this.#due();
    const worker = async () => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        if (this.#denied) return;
        p.counter += 1;
        p.attempts += 1;
        const r = await this.#client.annotatePod(
          this.#namespace,
          p.pod,
          NUDGE_ANNOTATION,
          `${this.#hash};n=${p.counter}`,
        );
        if (r.ok) {
          p.nudges += 1;
          p.firstAt ??= this.#timers.now();
          p.error = null;
        } else {
          p.error = { code: r.code, message: r.message };
          // A 403 before any patch was accepted: the Role has no patch on pods.
          if (r.code === "API_FORBIDDEN" && ![...this.#pods.values()].some((x) => x.nudges > 0)) this.#denied = true;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.concurrency, queue.length) }, worker));
  }
}

/** The counter a pod's next nudge continues from: its annotation's, when it is for this hash. */
function counterOf(p: PodInfo, hash: string): number {
  const v = p.annotations[NUDGE_ANNOTATION];
  if (typeof v !== "string" || !v.startsWith(`${hash};n=`)) return 0;
  const n = Number(v.slice(hash.length + 3));
  return Number.isSafeInteger(n) && n >= 0 && n < 1_000_000 ? n : 0;
}
