/**
 * The queue source of the settlement engine (../settlements.ts): propagation-aware settlement of
 * reload events. An event waits, its SQS
 * message kept invisible, until the mounted file and the SFU's answer settle
 * it `applied`, `rejected`, `invalid`, `superseded` or `timeout`; duplicates
 * never cause a second push and an event storm costs bounded memory. The
 * rules are the table of README.md ("Settlement") and PROTOCOL.md section 11.
 * A reload event with a `rollout` field is the rollout integration's when the
 * agent takes part in rollouts (`onRolloutEvent`). Pure logic over injected
 * {@link Timers} and an injected message sink.
 */
import type { Logger } from "pino";
import { parseReloadEvent } from "../../../protocol/messages.ts";
import type { ReloadEvent, SettlementOutcome } from "../../../protocol/messages-schema.ts";
import { parseRolloutField, type ReloadRolloutField } from "../../../protocol/rollout-schema.ts";
import type { TimerHandle, Timers } from "../../shared/timers.ts";
import type { Settlement } from "../snapshot-store.ts";
import { parseLegacyReload } from "./legacy-event.ts";
import type { MessageResult, QueueMetrics } from "./metrics.ts";

/** Error details as the store reports them. */
export interface StoreErrorInfo {
  code: string;
  message: string;
  at?: string;
}

/** The store events settlement reacts to (a structural subset of the agent's `StoreEvent`). */
export interface SettlementStoreEvent {
  type: string;
  hash?: string | null;
  version?: number;
  error?: StoreErrorInfo;
  /** On `settled` (the status tracker's event): the settlement recorded, whoever recorded it. */
  settlement?: Settlement;
}

/** What settlement needs from the agent's state: the settlement engine (its view of the status tracker). */
export interface SettlementStore {
  fileHash(): string | null;
  applied(): { version: number; hash: string } | null;
  desired(): { version: number; hash: string } | null;
  rejection(hash: string): StoreErrorInfo | null;
  /** The newest error not yet cleared (the invalid file's, after an invalid read). */
  lastError(): StoreErrorInfo | null;
  setRevision(hash: string, revision: string | null): void;
  recordSettlement(s: Settlement): void;
  subscribe(listener: (e: SettlementStoreEvent) => void): () => void;
}

/** A received SQS message. */
export interface ReceivedMessage {
  messageId: string;
  receiptHandle: string;
  body: string;
}

/** How settlement acts on SQS messages (implemented by the poller). Implementations log and count their own errors. */
export interface MessageActions {
  /** Deletes the messages (settled or malformed). */
  delete(receiptHandles: string[]): Promise<void>;
  /** Keeps the messages invisible for `seconds` more. */
  extend(receiptHandles: string[], seconds: number): Promise<void>;
}

/** Tunables of {@link Settler}. */
export interface SettlerOptions {
  /** How long an event may wait for the file and the SFU before settling `timeout`. */
  propagationTimeoutMs: number;
  /** Visibility timeout messages are received with; held messages are extended every half of it. */
  visibilityTimeoutSeconds: number;
  /** How many settled message ids / events are remembered for duplicate detection (default 1024). */
  dedupeCapacity?: number;
  /** Most hashes waiting at once (default {@link DEFAULT_MAX_PENDING}); see the module comment. */
  maxPending?: number;
  /** Most messages held by one wait (default {@link DEFAULT_MAX_MESSAGES_PER_WAIT}). */
  maxMessagesPerWait?: number;
  /**
   * Interval of a re-check of every wait against the store's state (default
   * 1000 ms), a safety net for state changes that emit no event (an SFU
   * reconnecting with `hello.applied` already at the awaited hash).
   */
  recheckMs?: number;
}

/** Default {@link SettlerOptions.maxPending}. */
export const DEFAULT_MAX_PENDING = 16;
/** Default {@link SettlerOptions.maxMessagesPerWait}. */
export const DEFAULT_MAX_MESSAGES_PER_WAIT = 10;

interface Waiter {
  hash: string;
  revision: string | null;
  receivedAt: number;
  /** The event's `issuedAt` in ms (-Infinity when unparsable): which wait a storm drops first. */
  issuedAt: number;
  initialFileHash: string | null;
  sawFile: boolean;
  /** When the wait first saw the hash in the file (ms), or null. */
  fileAt: number | null;
  /** `issuedAt` is a publication time (false for article-style messages): the propagation figures are measured. */
  measured: boolean;
  ackTimedOut: boolean;
  keys: Set<string>;
  /** messageId -> latest receipt handle. */
  messages: Map<string, string>;
  timeout: TimerHandle;
  extend: TimerHandle;
}

type Verdict = { outcome: SettlementOutcome; version: number | null; error: { code: string; message: string } | null };

/** Holds reload events until they settle; see the module documentation. */
export class Settler {
  readonly #store: SettlementStore;
  readonly #timers: Timers;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #actions: MessageActions;
  readonly #onSettled: (record: Settlement) => void;
  readonly #options: Required<SettlerOptions>;
  readonly #checkFile: () => Promise<void>;
  readonly #onRolloutEvent: ((rollout: ReloadRolloutField | "malformed", event: ReloadEvent) => void) | null;
  #stopped = false;
  readonly #waiters = new Map<string, Waiter>();
  /** Keys (`msg:<id>`, `evt:<hash>|<revision>|<issuedAt>`) of settled work, oldest first. */
  readonly #settled = new Set<string>();
  /** Newest `issuedAt` (ms) seen per hash. */
  readonly #issued = new Map<string, number>();
  #unsubscribe: (() => void) | null = null;
  #recheck: TimerHandle = null;
  /** The re-read of the file in flight for article-style messages, and the one queued after it. */
  #checking: Promise<void> | null = null;
  #checkQueued: Promise<void> | null = null;

  constructor(deps: {
    store: SettlementStore;
    timers: Timers;
    logger: Logger;
    metrics: QueueMetrics;
    actions: MessageActions;
    onSettled?: (record: Settlement) => void;
    /** Re-reads the mounted file now; resolves once read (article-style messages). Resolves at once when omitted. */
    checkFile?: () => Promise<void>;
    /** Takes reload events that carry a `rollout` field (they are then not settled here); see the module comment. */
    onRolloutEvent?: (rollout: ReloadRolloutField | "malformed", event: ReloadEvent) => void;
    options: SettlerOptions;
  }) {
    const o = deps.options;
    if (!(Number.isFinite(o.propagationTimeoutMs) && o.propagationTimeoutMs > 0)) {
      throw new RangeError(`propagationTimeoutMs must be > 0, got ${o.propagationTimeoutMs}`);
    }
    if (!(Number.isInteger(o.visibilityTimeoutSeconds) && o.visibilityTimeoutSeconds >= 2)) {
      throw new RangeError(`visibilityTimeoutSeconds must be an integer >= 2, got ${o.visibilityTimeoutSeconds}`);
    }
    for (const k of ["maxPending", "maxMessagesPerWait"] as const) {
      const v = o[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1))
        throw new RangeError(`${k} must be an integer >= 1, got ${v}`);
    }
    this.#store = deps.store;
    this.#timers = deps.timers;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#actions = deps.actions;
    this.#onSettled = deps.onSettled ?? (() => {});
    this.#checkFile = deps.checkFile ?? (() => Promise.resolve());
    this.#onRolloutEvent = deps.onRolloutEvent ?? null;
    this.#options = {
      dedupeCapacity: 1024,
      recheckMs: 1000,
      maxPending: DEFAULT_MAX_PENDING,
      maxMessagesPerWait: DEFAULT_MAX_MESSAGES_PER_WAIT,
      ...o,
    };
  }

  /** Subscribes to the store. Idempotent. */
  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.#store.subscribe((e) => this.#onStoreEvent(e));
  }

  /** Unsubscribes and drops every wait without settling it; held messages become visible again. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const w of this.#waiters.values()) this.#clearTimers(w);
    this.#waiters.clear();
    this.#timers.clearTimeout(this.#recheck);
    this.#recheck = null;
    this.#metrics.pending.set(0);
  }

  /** Hashes currently waiting to settle. */
  pendingHashes(): string[] {
    return [...this.#waiters.keys()];
  }

  /**
   * Takes one received message: deletes it when malformed or a duplicate of
   * settled work, joins it to a wait for the same hash, or starts a new wait
   * (which may settle at once). Returns what became of it. Never throws.
   */
  handle(message: ReceivedMessage): MessageResult {
    const result = this.#handle(message);
    this.#metrics.messages.inc({ result });
    return result;
  }

  #handle(message: ReceivedMessage): MessageResult {
    const msgKey = `msg:${message.messageId}`;
    if (this.#settled.has(msgKey)) {
      this.#delete([message.receiptHandle]);
      return "duplicate";
    }
    const legacy = parseLegacyReload(message.body);
    if (legacy !== null) {
      this.#remember(msgKey);
      this.#logger.info(
        { messageId: message.messageId, commit: legacy.commit },
        'article-style {"event":"configReload"} message: checking the mounted file now',
      );
      void this.#sharedCheck().then(() => this.#onLegacyChecked(message, legacy.commit));
      return "legacy";
    }
    const parsed = parseReloadEvent(message.body);
    if (!parsed.ok) {
      this.#logger.warn(
        { messageId: message.messageId, bytes: Buffer.byteLength(message.body, "utf8"), reason: parsed.reason },
        "malformed reload event deleted",
      );
      this.#delete([message.receiptHandle]);
      return "malformed";
    }
    const rollout = this.#onRolloutEvent === null ? null : parseRolloutField(parsed.event);
    if (rollout !== null && this.#onRolloutEvent !== null) {
      this.#remember(msgKey);
      this.#delete([message.receiptHandle]);
      this.#store.setRevision(parsed.event.hash, parsed.event.revision ?? null);
      try {
        this.#onRolloutEvent(rollout, parsed.event);
      } catch (err) {
        this.#logger.error({ err }, "rollout event handler failed");
      }
      return "accepted";
    }
    return this.#accept(message, parsed.event);
  }

  /**
   * A re-read of the file that starts after this call: joins the one queued
   * behind the re-read in flight, so a burst of messages costs two re-reads.
   * Never rejects.
   */
  #sharedCheck(): Promise<void> {
    const run = () =>
      this.#checkFile().catch((err: unknown) => this.#logger.warn({ err }, "re-read of the mounted file failed"));
    if (this.#checking === null) {
      const p: Promise<void> = run().finally(() => {
        if (this.#checking === p) this.#checking = null;
      });
      this.#checking = p;
      return p;
    }
    if (this.#checkQueued === null) {
      const q: Promise<void> = this.#checking.then(() => {
        this.#checkQueued = null;
        const p: Promise<void> = run().finally(() => {
          if (this.#checking === p) this.#checking = null;
        });
        this.#checking = p;
        return p;
      });
      this.#checkQueued = q;
    }
    return this.#checkQueued;
  }

  /** After the re-read asked by an article-style message: settle the file's hash with `commit` as its revision. */
  #onLegacyChecked(message: ReceivedMessage, commit: string): void {
    if (this.#stopped) return;
    const fh = this.#store.fileHash();
    if (fh !== null) {
      const ev = {
        type: "sfu-config.reload",
        hash: fh,
        revision: commit,
        configMap: null,
        issuedAt: new Date(this.#timers.now()).toISOString(),
      } as ReloadEvent;
      this.#accept(message, ev, false);
      return;
    }
    const hash = this.#store.desired()?.hash ?? null;
    if (hash === null) {
      this.#logger.warn({ commit }, "configReload: the mounted file is invalid and no valid config was ever loaded");
      this.#delete([message.receiptHandle]);
      return;
    }
    const w: Waiter = {
      hash,
      revision: commit,
      receivedAt: this.#timers.now(),
      issuedAt: this.#timers.now(),
      initialFileHash: null,
      sawFile: false,
      fileAt: null,
      measured: false,
      ackTimedOut: false,
      keys: new Set(),
      messages: new Map([[message.messageId, message.receiptHandle]]),
      timeout: null,
      extend: null,
    };
    const error = errorOf(this.#store.lastError(), "INVALID_CONFIG", "the mounted config file is invalid");
    this.#settle(w, { outcome: "invalid", version: null, error });
  }

  #accept(message: ReceivedMessage, ev: ReloadEvent, measured = true): MessageResult {
    const msgKey = `msg:${message.messageId}`;
    const revision = ev.revision ?? null;
    const evKey = `evt:${ev.hash}|${revision}|${ev.issuedAt}`;
    if (this.#settled.has(evKey)) {
      this.#remember(msgKey);
      this.#delete([message.receiptHandle]);
      return "duplicate";
    }
    const issuedAt = Date.parse(ev.issuedAt);
    if (Number.isFinite(issuedAt) && issuedAt > (this.#issued.get(ev.hash) ?? -Infinity)) {
      this.#issued.set(ev.hash, issuedAt);
      if (this.#issued.size > this.#options.dedupeCapacity) this.#issued.delete(this.#issued.keys().next().value!);
    }
    const existing = this.#waiters.get(ev.hash);
    if (existing) {
      const repeat = existing.messages.has(message.messageId) || existing.keys.has(evKey);
      if (!existing.messages.has(message.messageId) && existing.messages.size >= this.#options.maxMessagesPerWait) {
        // The held messages keep the wait durable; this one only repeats them.
        this.#remember(msgKey);
        this.#remember(evKey);
        this.#delete([message.receiptHandle]);
        return "duplicate";
      }
      existing.messages.set(message.messageId, message.receiptHandle);
      if (existing.keys.size < this.#options.maxMessagesPerWait) existing.keys.add(evKey);
      else this.#remember(evKey);
      return repeat ? "duplicate" : "joined";
    }
    this.#store.setRevision(ev.hash, revision);
    const now = this.#timers.now();
    const w: Waiter = {
      hash: ev.hash,
      revision,
      receivedAt: now,
      issuedAt: Number.isFinite(issuedAt) ? issuedAt : Number.NEGATIVE_INFINITY,
      initialFileHash: this.#store.fileHash(),
      sawFile: false,
      fileAt: null,
      measured: measured && Number.isFinite(issuedAt),
      ackTimedOut: false,
      keys: new Set([evKey]),
      messages: new Map([[message.messageId, message.receiptHandle]]),
      timeout: null,
      extend: null,
    };
    this.#logger.info({ hash: ev.hash, revision, configMap: ev.configMap ?? null }, "reload event received");
    const fh = w.initialFileHash;
    const fileIssued = fh === null ? undefined : this.#issued.get(fh);
    const verdict =
      fh !== null && fh !== ev.hash && fileIssued !== undefined && Number.isFinite(issuedAt) && fileIssued > issuedAt
        ? this.#verdict(w, "superseded", {
            code: "SUPERSEDED",
            message: `a newer event announced ${fh}, now in the file`,
          })
        : this.#evaluate(w, null);
    if (verdict) {
      this.#settle(w, verdict);
      return "accepted";
    }
    if (this.#waiters.size >= this.#options.maxPending) {
      // A storm: the oldest-issued wait the file has not shown (this one, when it is the oldest) gives way.
      let oldest: Waiter | null = null;
      for (const other of this.#waiters.values()) {
        if (!other.sawFile && (oldest === null || other.issuedAt < oldest.issuedAt)) oldest = other;
      }
      const drop = oldest === null || w.issuedAt <= oldest.issuedAt ? w : oldest;
      this.#settle(
        drop,
        this.#verdict(drop, "superseded", {
          code: "COALESCED",
          message: `${this.#options.maxPending} newer reload events are waiting; only the newest can still reach the file`,
        }),
        true,
      );
      if (drop === w) return "accepted";
    }
    this.#waiters.set(w.hash, w);
    this.#metrics.pending.set(this.#waiters.size);
    w.timeout = this.#timers.setTimeout(() => this.#onTimeout(w), this.#options.propagationTimeoutMs);
    this.#scheduleExtend(w);
    this.#scheduleRecheck();
    return "accepted";
  }

  #scheduleRecheck(): void {
    if (this.#recheck !== null || this.#waiters.size === 0) return;
    this.#recheck = this.#timers.setTimeout(() => {
      this.#recheck = null;
      this.#onStoreEvent({ type: "recheck" });
      this.#scheduleRecheck();
    }, this.#options.recheckMs);
  }

  #onStoreEvent(e: SettlementStoreEvent): void {
    for (const w of [...this.#waiters.values()]) {
      // Settling one wait can re-enter (a listener's store event): skip the waits that settled meanwhile,
      // or each would be settled, recorded and deleted again.
      if (this.#waiters.get(w.hash) !== w) continue;
      if (e.type === "ack-timeout" && e.hash === w.hash) w.ackTimedOut = true;
      const verdict = this.#evaluate(w, e);
      if (verdict) this.#settle(w, verdict);
    }
  }

  /** Decides whether `w` settles now, from the store's state and the event that triggered the check. */
  #evaluate(w: Waiter, trigger: SettlementStoreEvent | null): Verdict | null {
    if (trigger?.type === "applied" && trigger.hash === w.hash) {
      return { outcome: "applied", version: trigger.version ?? null, error: null };
    }
    if (trigger?.type === "rejected" && trigger.hash === w.hash) {
      return this.#verdict(
        w,
        "rejected",
        errorOf(trigger.error, "REJECTED", "the SFU rejected the config"),
        trigger.version,
      );
    }
    const fh = this.#store.fileHash();
    if (!w.sawFile && (fh === w.hash || (trigger?.type === "desired" && trigger.hash === w.hash))) {
      w.sawFile = true;
      w.fileAt = this.#timers.now();
    }
    if (w.sawFile) {
      const applied = this.#store.applied();
      if (applied?.hash === w.hash) return { outcome: "applied", version: applied.version, error: null };
      const rejection = this.#store.rejection(w.hash);
      if (rejection) return this.#verdict(w, "rejected", errorOf(rejection, "REJECTED", "the SFU rejected the config"));
      if (fh !== null && fh !== w.hash) {
        return this.#verdict(w, "superseded", {
          code: "SUPERSEDED",
          message: `the file changed to ${fh} before the SFU applied ${w.hash}`,
        });
      }
      return null;
    }
    if (trigger?.type === "invalid") {
      return this.#verdict(
        w,
        "invalid",
        errorOf(trigger.error, "INVALID_CONFIG", "the mounted config file is invalid"),
      );
    }
    if (fh !== null && fh !== w.initialFileHash) {
      return this.#verdict(w, "superseded", {
        code: "SUPERSEDED",
        message: `the file changed to ${fh}, not ${w.hash}`,
      });
    }
    return null;
  }

  #verdict(
    w: Waiter,
    outcome: SettlementOutcome,
    error: { code: string; message: string } | null,
    version?: number,
  ): Verdict {
    const desired = this.#store.desired();
    return { outcome, error, version: version ?? (desired?.hash === w.hash ? desired.version : null) };
  }

  #onTimeout(w: Waiter): void {
    if (this.#waiters.get(w.hash) !== w) return;
    const seconds = Math.round(this.#options.propagationTimeoutMs / 1000);
    const message = w.sawFile
      ? `the SFU did not acknowledge ${w.hash} within ${seconds}s${w.ackTimedOut ? " (ack timeout)" : ""}`
      : `the mounted file did not change to ${w.hash} within ${seconds}s`;
    this.#settle(w, this.#verdict(w, "timeout", { code: "PROPAGATION_TIMEOUT", message }));
  }

  #scheduleExtend(w: Waiter): void {
    const seconds = this.#options.visibilityTimeoutSeconds;
    w.extend = this.#timers.setTimeout(
      () => {
        if (this.#waiters.get(w.hash) !== w) return;
        void this.#actions.extend([...w.messages.values()], seconds);
        this.#scheduleExtend(w);
      },
      (seconds * 1000) / 2,
    );
  }

  #clearTimers(w: Waiter): void {
    this.#timers.clearTimeout(w.timeout);
    this.#timers.clearTimeout(w.extend);
  }

  /**
   * The propagation figures of a settling wait, observed in the histograms:
   * publication to the file having the hash (when it did), and to the SFU's
   * ack (`applied`). Clamped at 0 (the hook's clock may run ahead of ours).
   */
  #propagation(
    w: Waiter,
    outcome: SettlementOutcome,
    now: number,
  ): Pick<Settlement, "propagationSeconds" | "eventToAppliedSeconds"> {
    if (!w.measured) return {};
    const secs = (t: number) => Math.max(0, Math.round(t - w.issuedAt)) / 1000;
    const out: Pick<Settlement, "propagationSeconds" | "eventToAppliedSeconds"> = {};
    const fileAt = w.fileAt ?? (outcome === "applied" ? now : null);
    if (fileAt !== null) {
      out.propagationSeconds = secs(fileAt);
      this.#metrics.propagation.observe(out.propagationSeconds);
    }
    if (outcome === "applied") {
      out.eventToAppliedSeconds = secs(now);
      this.#metrics.eventToApplied.observe(out.eventToAppliedSeconds);
    }
    return out;
  }

  /** Settles `w`; `quiet`: logged at debug (a storm's coalesced waits, counted in the metrics). */
  #settle(w: Waiter, verdict: Verdict, quiet = false): void {
    this.#clearTimers(w);
    if (this.#waiters.get(w.hash) === w) this.#waiters.delete(w.hash);
    this.#metrics.pending.set(this.#waiters.size);
    for (const k of w.keys) this.#remember(k);
    for (const id of w.messages.keys()) this.#remember(`msg:${id}`);
    const now = this.#timers.now();
    const record: Settlement = {
      revision: w.revision,
      hash: w.hash,
      version: verdict.version,
      outcome: verdict.outcome,
      error: verdict.error,
      at: new Date(now).toISOString(),
      ...this.#propagation(w, verdict.outcome, now),
    };
    this.#store.recordSettlement(record);
    this.#metrics.settlements.inc({ outcome: record.outcome });
    this.#metrics.settlementDuration.observe({ outcome: record.outcome }, (now - w.receivedAt) / 1000);
    const log = quiet ? "debug" : record.outcome === "applied" || record.outcome === "superseded" ? "info" : "warn";
    this.#logger[log](
      {
        hash: record.hash,
        revision: record.revision,
        version: record.version,
        outcome: record.outcome,
        error: record.error,
      },
      "reload event settled",
    );
    try {
      this.#onSettled(record);
    } catch (err) {
      this.#logger.error({ err }, "settlement listener failed");
    }
    this.#delete([...w.messages.values()]);
  }

  #remember(key: string): void {
    this.#settled.delete(key);
    this.#settled.add(key);
    if (this.#settled.size > this.#options.dedupeCapacity * 2) {
      this.#settled.delete(this.#settled.values().next().value!);
    }
  }

  #delete(handles: string[]): void {
    if (handles.length > 0) void this.#actions.delete(handles);
  }
}

function errorOf(
  e: StoreErrorInfo | undefined | null,
  code: string,
  message: string,
): { code: string; message: string } {
  return e ? { code: e.code, message: e.message } : { code, message };
}
