/**
 * The agent's part in a progressive rollout: decides which config becomes
 * desired (the mounted one, or the rollout state's stable one) and reports the
 * pod's stage. PROTOCOL.md
 * [section 19](../../protocol/PROTOCOL.md#19-progressive-rollout-optional).
 */
import { existsSync } from "node:fs";
import type { Logger } from "pino";
import { type BackoffOptions, backoffDelay } from "../../../protocol/backoff.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import { formatProblem } from "../../../protocol/config-loader.ts";
import type { NormalisedConfig } from "../../../protocol/config-schema-v2.ts";
import { PolicyFileCache } from "../../../protocol/rollout-policy.ts";
import type { ReloadRolloutField, RolloutStage, RolloutState } from "../../../protocol/rollout-schema.ts";
import type { RolloutHealthContext } from "../queue/health-publisher.ts";
import type { Settlement, SnapshotStore } from "../snapshot-store.ts";
import type { StatusTracker } from "../status-tracker.ts";
import { ackTimeoutError } from "../transport.ts";
import { type Decision, decideRollout } from "./decision.ts";

/** What the controller needs of the state store: reads only (the driver is the one writer). */
export interface RolloutStateReader {
  read(signal?: AbortSignal): Promise<RolloutState | null>;
  /** The last state read before this process started (the pod-local memory), when the reader keeps one. */
  readCache?(): Promise<{ state: RolloutState | null; error: string | null }>;
  /** `s3://bucket/key`, for messages. */
  readonly url: string;
  destroy?(): void;
}

/** Where the call-health publisher is told about the rollout. */
export interface HealthContextSink {
  setRollout(ctx: RolloutHealthContext | null): void;
}

/** /status `rollout` (null when no policy is mounted). Fields may be added, never renamed. */
export interface RolloutStatus {
  /** This pod's stage. */
  stage: RolloutStage;
  /** The rollout's id, null when none is recorded. */
  id: string | null;
  /** Its current step (as the driver numbers them), null when none. */
  step: number | null;
  /** The candidate hash, null when none. */
  hash: string | null;
  /** The candidate's state (`running`, `halted`, `complete`), null when none. */
  state: "running" | "halted" | "complete" | null;
  /** This pod's cohort rank, in [0, 1). */
  rank: number;
  /** The cohort cutoff of the current step, null when none. */
  threshold: number | null;
  /** The stable config's hash, null when none is recorded. */
  stable: string | null;
  /** Whether the policy file is valid (an invalid one still gates). */
  policy: "ok" | "invalid";
  /** Why this pod runs what it runs, in words. */
  reason: string;
  /** The last failure to read the state, null when the last read worked. */
  stateError: { code: string; message: string; at: string } | null;
  /** When the state was last read successfully, null before. */
  stateReadAt: string | null;
  /** Why the rollout halted, null unless halted. */
  haltReason: { step: number; criterion: string; pods: string[]; detail: string } | null;
}

/** Options of {@link AgentRollout}. */
export interface AgentRolloutOptions {
  podName: string;
  /** Path of the rollout policy file next to the config. */
  policyPath: string;
  /** File name of the policy, for messages. */
  policyKey: string;
  /** Interval of the safety-net state re-read (the agent's resync interval). */
  resyncIntervalMs: number;
  /** Longest wait for the first state read at start (default 10 s); after it the agent starts holding. */
  startReadTimeoutMs?: number;
  /** Shortest time between two re-reads caused by an unknown mounted hash (default 2 s). */
  unknownHashRereadMs?: number;
}

/** Retries of the state read until one works (PROTOCOL.md section 19): 1 s doubling to 30 s, no jitter. */
const FIRST_READ_BACKOFF: Readonly<BackoffOptions> = { baseMs: 1_000, maxMs: 30_000, jitter: "none" };

/** Most hashes remembered as "ran on this pod's SFU". */
const MAX_APPLIED_HASHES = 100;

/**
 * The rollout integration of one agent: what becomes desired in the
 * {@link SnapshotStore} is decided by the pure {@link decideRollout}.
 *
 * Inputs, each re-evaluated whenever it changes:
 * - the mounted config (every valid read of the file) and whether a rollout
 *   policy file (`--rollout-key`) sits next to it: no
 *   policy file = every config applies at once, as without rollouts; an
 *   invalid policy still counts as present (it gates; the error is logged
 *   and shown in /status);
 * - the rollout state (`--rollout-state s3://bucket/key`), read at start
 *   (before the first decision, so a restarted agent never pushes a halted
 *   hash), on every reload event carrying `rollout` (at-least-once and
 *   possibly duplicated: a re-read is idempotent), on every resync, and when
 *   the mount holds a hash the state does not know yet. A state that cannot
 *   be read keeps the last one read (or, at start, the one remembered in the
 *   reader's cache file); before the first successful read nothing new is
 *   pushed. A missing object (404) means "no rollout yet" only to an agent
 *   that has never known a state: once one was read or remembered, a 404 is
 *   STATE_MISSING and handled as unreadable (docs/rollout-faults.md);
 * - whether this pod's SFU ever ran the mounted hash (a halt then reports
 *   `reverted`, else `held`).
 *
 * Reports: /status `rollout`, a stage report whenever the pod's stage, its
 * desired hash, that hash's outcome or the rollout (id, step) changes,
 * recorded as a settlement with `stage`, `rank` and `rollout` (so it goes
 * out as a `sfu-config.status` event with the status topic), and the
 * call-health publisher's context while a rollout runs.
 */
export class AgentRollout {
  readonly rank: number;
  readonly #store: SnapshotStore;
  readonly #tracker: StatusTracker;
  readonly #logger: Logger;
  readonly #clock: () => Date;
  /** A new mounted hash waiting for a state re-read because the last read found no state. */
  #confirming: string | null = null;
  readonly #reader: RolloutStateReader | null;
  readonly #opts: Required<AgentRolloutOptions>;
  #health: HealthContextSink | null = null;
  #mounted: { config: NormalisedConfig; hash: string } | null = null;
  #policy: "absent" | "ok" | "invalid" = "absent";
  /** The policy file, parsed once per change (it is looked at on every config reading). */
  readonly #policyFile = new PolicyFileCache();
  #policyMessage: string | null = null;
  #state: RolloutState | null | "unknown";
  /** A non-null state was read or remembered: a 404 is then never "no rollout". */
  #known = false;
  /** The state in force is only the remembered one (no read has worked in this process yet). */
  #remembered = false;
  #stateError: RolloutStatus["stateError"] = null;
  #stateReadAt: string | null = null;
  #decision: Decision | null = null;
  readonly #appliedHashes = new Set<string>();
  #lastReport: string | null = null;
  /** The hash of the last push the SFU did not answer in time (a stage report then says `timeout`). */
  #lastAckTimeout: string | null = null;
  #applying = false;
  #again = false;
  #reading: Promise<void> | null = null;
  #readAgain = false;
  #lastUnknownReread = -Infinity;
  #resync: NodeJS.Timeout | null = null;
  #retry: NodeJS.Timeout | null = null;
  #retryAttempt = 0;
  #abort = new AbortController();
  #stopped = false;
  #unsubscribe: (() => void) | null = null;

  constructor(
    deps: {
      store: SnapshotStore;
      tracker: StatusTracker;
      logger: Logger;
      clock: () => Date;
      /** The state store; null = no `--rollout-state` (no state: every config applies at once). */
      reader: RolloutStateReader | null;
    },
    options: AgentRolloutOptions,
  ) {
    this.#store = deps.store;
    this.#tracker = deps.tracker;
    this.#logger = deps.logger.child({ component: "rollout" });
    this.#clock = deps.clock;
    this.#reader = deps.reader;
    this.#opts = { startReadTimeoutMs: 10_000, unknownHashRereadMs: 2_000, ...options };
    this.rank = cohortRank(options.podName);
    this.#state = deps.reader === null ? null : "unknown";
    this.#unsubscribe = this.#tracker.subscribe((e) => {
      switch (e.type) {
        case "applied":
        case "adopted":
          this.#noteApplied(e.hash);
          this.#report();
          break;
        case "rejected":
          this.#report();
          break;
        case "ack-timeout":
          this.#lastAckTimeout = e.hash;
          this.#report();
          break;
      }
    });
  }

  /** Reads the state once (bounded by `startReadTimeoutMs`), then keeps it fresh every resync interval. */
  async start(): Promise<void> {
    if (this.#reader === null) return;
    const cached = (await this.#reader.readCache?.()) ?? { state: null, error: null };
    if (cached.error !== null) this.#logger.warn(`remembered rollout state not used: ${cached.error}`);
    if (cached.state !== null && this.#state === "unknown") {
      this.#state = cached.state;
      this.#known = true;
      this.#remembered = true;
      const c = cached.state.candidate;
      this.#logger.info(
        {
          id: c?.id ?? null,
          hash: c?.hash ?? null,
          state: c?.state ?? null,
          stable: cached.state.stable?.hash ?? null,
        },
        "rollout state remembered from before the restart (until S3 answers)",
      );
      this.#apply();
    }
    const first = this.#read("start");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      first,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#opts.startReadTimeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    this.#scheduleResync();
  }

  /** Stops timers and reads in flight. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#resync) clearTimeout(this.#resync);
    if (this.#retry) clearTimeout(this.#retry);
    this.#abort.abort();
    await this.#reading?.catch(() => {});
    this.#unsubscribe?.();
    this.#reader?.destroy?.();
    this.#health?.setRollout(null);
  }

  /** Whether a state store is configured (`--rollout-state`): only then are rollout events taken here. */
  get enabled(): boolean {
    return this.#reader !== null;
  }

  /** The call-health publisher to keep informed (set once the queue trigger exists). */
  attachHealth(sink: HealthContextSink | null): void {
    this.#health = sink;
    this.#updateHealth();
  }

  /**
   * A valid read of the mounted config: decides what becomes desired and
   * offers it to the store. Returns the store's answer.
   */
  onValidReading(config: NormalisedConfig, hash: string): { changed: boolean; version: number | null } {
    this.#mounted = { config, hash };
    this.#checkPolicy();
    if (this.#policy !== "absent" && this.#reader !== null && this.#state !== "unknown" && !this.#knows(hash)) {
      // The mount moved to a hash the state does not know: the driver may have
      // written the state after our last read (and its event may be late or lost).
      // With no state read yet ("bootstrap": the mounted config applies), a NEW
      // hash waits for that read: the hook may have just written the first
      // state (the previous config stable) and started rolling this hash out.
      const desiredHash = this.#store.desired()?.hash ?? null;
      const confirm = this.#state === null && desiredHash !== null && hash !== desiredHash;
      if (confirm) this.#confirming = hash;
      const now = performance.now();
      if (confirm || now - this.#lastUnknownReread >= this.#opts.unknownHashRereadMs) {
        this.#lastUnknownReread = now;
        void this.#read("unknown-hash");
      }
    }
    const before = this.#store.desired()?.hash ?? null;
    const version = this.#apply();
    return { changed: (this.#store.desired()?.hash ?? null) !== before, version };
  }

  /**
   * A reload event with a `rollout` field: re-reads the state now (coalesced
   * with a read in flight). Resolves once that read is done; the queue's
   * settler does not wait for it.
   */
  onRolloutEvent(rollout: ReloadRolloutField | "malformed"): Promise<void> {
    if (rollout === "malformed")
      this.#logger.warn("reload event with a malformed rollout field: re-reading the state anyway");
    if (this.#reader === null) {
      this.#logger.warn("a rollout event arrived but this agent has no --rollout-state: every config applies at once");
      return Promise.resolve();
    }
    return this.#read("event");
  }

  /** /status `rollout`; null when no policy is mounted. */
  status(): RolloutStatus | null {
    if (this.#policy === "absent" || this.#decision === null || this.#decision.stage === null) return null;
    const state = this.#state === "unknown" ? null : this.#state;
    const c = state?.candidate ?? null;
    return {
      stage: this.#decision.stage,
      id: c?.id ?? null,
      step: c?.step ?? null,
      hash: c?.hash ?? null,
      state: c?.state ?? null,
      rank: this.rank,
      threshold: c?.threshold ?? null,
      stable: state?.stable?.hash ?? null,
      policy: this.#policy === "invalid" ? "invalid" : "ok",
      reason: this.#decision.reason,
      stateError: this.#stateError,
      stateReadAt: this.#stateReadAt,
      haltReason: c?.state === "halted" ? (c.reason ?? null) : null,
    };
  }

  /**
   * Whether the agent holds with nothing it can vouch for: a rollout policy
   * is mounted, the state was never read nor remembered, and nothing is
   * desired (a new pod during an S3 outage). The agent stays alive and ready;
   * the SFU, with no config applied, stays unready.
   */
  holdingWithoutState(): boolean {
    return (
      this.#reader !== null && this.#policy !== "absent" && this.#state === "unknown" && this.#store.desired() === null
    );
  }

  /** Whether the last state read failed (the rollout state is unreadable now). */
  stateUnreadable(): boolean {
    return this.#stateError !== null;
  }

  /** The stage this pod reports, null without a policy. */
  stage(): RolloutStage | null {
    return this.#decision?.stage ?? null;
  }

  // --- internals ---

  #knows(hash: string): boolean {
    const s = this.#state;
    if (s === null || s === "unknown") return false;
    return s.candidate?.hash === hash || s.stable?.hash === hash;
  }

  #checkPolicy(): void {
    const path = this.#opts.policyPath;
    if (!existsSync(path)) {
      if (this.#policy !== "absent")
        this.#logger.info({ path }, "rollout policy removed: every config applies at once");
      this.#policy = "absent";
      this.#policyMessage = null;
      return;
    }
    const r = this.#policyFile.load(path, { source: this.#opts.policyKey });
    if (this.#policy === "absent" && this.#reader === null && (r.ok || r.code !== "NOT_FOUND")) {
      this.#logger.warn(
        { path },
        "a rollout policy is mounted but there is no --rollout-state: every config applies at once",
      );
    }
    if (r.ok) {
      if (this.#policy !== "ok") this.#logger.info({ path, steps: r.policy.steps.length }, "rollout policy loaded");
      this.#policy = "ok";
      this.#policyMessage = null;
      return;
    }
    if (r.code === "NOT_FOUND") {
      this.#policy = "absent";
      return;
    }
    const message = r.problems.map((p) => formatProblem(this.#opts.policyKey, p)).join("; ");
    if (message !== this.#policyMessage) {
      this.#logger.error({ path, code: r.code }, `rollout policy invalid (rollouts stay gated): ${message}`);
    }
    this.#policy = "invalid";
    this.#policyMessage = message;
  }

  /** Decides and offers to the store; re-entrant calls (from store events) run once more afterwards. */
  #apply(): number | null {
    if (this.#applying) {
      this.#again = true;
      return this.#store.desired()?.version ?? null;
    }
    this.#applying = true;
    try {
      do {
        this.#again = false;
        this.#applyOnce();
      } while (this.#again);
    } finally {
      this.#applying = false;
    }
    this.#report();
    this.#updateHealth();
    return this.#store.desired()?.version ?? null;
  }

  #applyOnce(): void {
    const m = this.#mounted;
    if (m === null) return;
    const d = decideRollout({
      policy: this.#policy !== "absent",
      // A new hash under a "no state" read waits for the re-read (see onValidReading).
      state: this.#state === null && this.#confirming === m.hash ? "unknown" : this.#state,
      rank: this.rank,
      mounted: m.hash,
      appliedMounted: this.#appliedHashes.has(m.hash),
    });
    const previous = this.#decision;
    this.#decision = d;
    if (this.#remembered && d.stage === "canary" && !this.#appliedHashes.has(m.hash)) {
      // A remembered state vouches for its stable config only: the rollout may
      // have halted since it was written, so a running candidate is kept where
      // the SFU already runs it, never newly pushed, until S3 answers.
      const s = this.#state === "unknown" || this.#state === null ? null : this.#state;
      d.stage = "held";
      d.push = s?.stable ? "stable" : "none";
      d.reason = `the rollout state is only remembered (S3 not read since the restart): a running candidate is not applied; ${
        s?.stable
          ? `running the stable config ${s.stable.hash}`
          : "no stable config is recorded: holding the running config"
      }`;
    }
    if (previous?.stage !== d.stage || previous.push !== d.push) {
      if (d.stage !== null) this.#logger.info({ stage: d.stage, push: d.push, hash: m.hash }, d.reason);
    }
    const state = this.#state === "unknown" ? null : this.#state;
    let desired: { config: NormalisedConfig; hash: string; revision: string | null } | null = null;
    if (d.push === "mounted") desired = { config: m.config, hash: m.hash, revision: this.#tracker.revisionOf(m.hash) };
    else if (d.push === "stable" && state?.stable) {
      desired = { config: state.stable.config, hash: state.stable.hash, revision: state.stable.revision };
    }
    this.#store.offerFile(m.hash, desired);
  }

  #noteApplied(hash: string): void {
    if (this.#appliedHashes.has(hash)) return;
    this.#appliedHashes.add(hash);
    if (this.#appliedHashes.size > MAX_APPLIED_HASHES) {
      this.#appliedHashes.delete(this.#appliedHashes.values().next().value as string);
    }
    // The stage of a halted rollout depends on it (reverted vs held).
    if (this.#mounted?.hash === hash && this.#decision?.stage !== null) this.#apply();
  }

  /**
   * Records a stage report when the stage, the desired hash, its outcome or
   * the rollout (id, step) changed, once the SFU answered for the desired
   * hash (or already runs it).
   */
  #report(): void {
    const d = this.#decision;
    if (d === null || d.stage === null) return;
    const desired = this.#store.desired();
    if (desired === null) return;
    let outcome: Settlement["outcome"];
    let error: Settlement["error"] = null;
    const applied = this.#store.applied();
    const rejection = this.#store.rejection(desired.hash);
    if (applied?.hash === desired.hash) outcome = "applied";
    else if (rejection !== null) {
      outcome = "rejected";
      error = { code: rejection.code, message: rejection.message };
    } else if (this.#lastAckTimeout === desired.hash) {
      outcome = "timeout";
      error = ackTimeoutError(desired.version);
    } else return;
    const state = this.#state === "unknown" ? null : this.#state;
    const c = state?.candidate ?? null;
    const rollout = c === null ? null : { id: c.id, hash: c.hash, step: c.step };
    const key = [d.stage, desired.hash, outcome, rollout?.id, rollout?.step].join("|");
    if (key === this.#lastReport) return;
    this.#lastReport = key;
    this.#tracker.recordSettlement({
      revision: desired.revision,
      hash: desired.hash,
      version: applied?.hash === desired.hash ? applied.version : desired.version,
      outcome,
      error,
      at: this.#clock().toISOString(),
      stage: d.stage,
      rank: this.rank,
      rollout,
    });
  }

  #updateHealth(): void {
    if (this.#health === null) return;
    const state = this.#state === "unknown" ? null : this.#state;
    const c = state?.candidate ?? null;
    const stage = this.#decision?.stage ?? null;
    if (c === null || stage === null) {
      this.#health.setRollout(null);
      return;
    }
    this.#health.setRollout({ running: c.state === "running", hash: c.hash, rank: this.rank, stage });
  }

  /** One read at a time; a request during a read queues exactly one more. */
  #read(why: string): Promise<void> {
    if (this.#reader === null || this.#stopped) return Promise.resolve();
    if (this.#reading) {
      this.#readAgain = true;
      return this.#reading;
    }
    const run = this.#readOnce(why).finally(() => {
      this.#reading = null;
      if (this.#readAgain && !this.#stopped) {
        this.#readAgain = false;
        void this.#read("again");
      }
    });
    this.#reading = run;
    return run;
  }

  async #readOnce(why: string): Promise<void> {
    const reader = this.#reader as RolloutStateReader;
    try {
      const state = await reader.read(this.#abort.signal);
      if (this.#stopped) return;
      if (state === null && this.#known) {
        throw Object.assign(
          new Error(
            `${reader.url} does not exist (404) but a rollout state was known: keeping the last one (never read as "no rollout"); restore the object or let the driver rewrite it`,
          ),
          { code: "STATE_MISSING" },
        );
      }
      if (state !== null) this.#known = true;
      this.#retryAttempt = 0;
      if (this.#retry) clearTimeout(this.#retry);
      this.#retry = null;
      this.#stateReadAt = this.#clock().toISOString();
      if (this.#stateError !== null) this.#logger.info({ url: reader.url }, "rollout state readable again");
      this.#stateError = null;
      const before = this.#state;
      this.#state = state;
      this.#remembered = false;
      this.#confirming = null;
      if (JSON.stringify(stateKey(before)) !== JSON.stringify(stateKey(state))) {
        const c = state?.candidate ?? null;
        this.#logger.info(
          {
            why,
            id: c?.id ?? null,
            hash: c?.hash ?? null,
            state: c?.state ?? null,
            step: c?.step ?? null,
            threshold: c?.threshold ?? null,
            stable: state?.stable?.hash ?? null,
          },
          "rollout state read",
        );
      }
      this.#apply();
    } catch (err) {
      if (this.#stopped) return;
      const e = err as { code?: string; message?: string };
      const info = {
        code: e.code ?? "STATE_READ_FAILED",
        message: e.message ?? String(err),
        at: this.#clock().toISOString(),
      };
      if (this.#stateError?.message !== info.message) {
        this.#logger.warn(
          {
            url: reader.url,
            code: info.code,
            keeping: this.#state === "unknown" ? "nothing (holding)" : "the last state read",
          },
          `rollout state unreadable: ${info.message}`,
        );
      }
      this.#stateError = info;
      // Until the first read works, retry with back-off; afterwards the resync re-reads.
      if (this.#state === "unknown" && this.#retry === null) {
        const delay = backoffDelay(this.#retryAttempt++, FIRST_READ_BACKOFF);
        this.#retry = setTimeout(() => {
          this.#retry = null;
          void this.#read("retry");
        }, delay);
        this.#retry.unref();
      }
      this.#apply();
    }
  }

  #scheduleResync(): void {
    if (this.#stopped || this.#opts.resyncIntervalMs <= 0) return;
    this.#resync = setTimeout(() => {
      void this.#read("resync").finally(() => this.#scheduleResync());
    }, this.#opts.resyncIntervalMs);
    this.#resync.unref();
  }
}

function stateKey(s: RolloutState | null | "unknown") {
  if (s === null || s === "unknown") return s;
  const c = s.candidate;
  return [s.stable?.hash ?? null, c?.id, c?.hash, c?.state, c?.step, c?.threshold];
}
