/**
 * The per-pod status tracker: the one owner of what an operator reads about this pod (`/status`,
 * `sfu-agent status`, the status gauges, the settlements the settlement engine (settlements.ts) records),
 * following the {@link SnapshotStore}'s events and the delivery core's ({@link DeliveryEvent});
 * PROTOCOL.md [section 5.1](../../protocol/PROTOCOL.md#51-settling-what-the-agent-reports-as-applied).
 */
import type { HealthCounters } from "../../protocol/messages-schema.ts";
import type { ErrorInfo, Settlement, SnapshotStore, StoreEvent } from "./snapshot-store.ts";
import { ackTimeoutError, type DeliveryEvent } from "./transport.ts";

/** How many settlements /status keeps. */
export const MAX_SETTLEMENTS = 20;
/** How many hash -> revision entries are kept. */
const MAX_REVISIONS = 100;

/** `/status` `sfu`: the SFU link (WebSocket: from its hello; HTTP: the last request answered, no name). */
export interface SfuLinkStatus {
  connected: boolean;
  name: string | null;
  version: string | null;
}

/**
 * `/status` `secrets`: the rotation counter of the secret files the desired
 * config names, the generation the SFU confirmed it reads (null: not
 * confirmed on this connection), when, and the last reload error (cleared by
 * the next confirmation). Never a secret or a digest of one.
 */
export interface SecretsStatus {
  generation: number;
  applied: number | null;
  at: string | null;
  lastError: ErrorInfo | null;
}

/** An error that was cleared by a later success. */
export interface PreviousError extends ErrorInfo {
  /** ISO 8601 time it was cleared (the desired config applied with the file valid). */
  clearedAt: string;
}

/** The SFU's latest call-health report, as `/status health` shows it. */
export interface HealthReport extends HealthCounters {
  /** ISO time the agent received it. */
  receivedAt: string;
}

/** What the tracker reports to its listeners: every store event, plus its own. */
export type TrackerEvent =
  | StoreEvent
  | { type: "link"; connected: boolean }
  | { type: "settled"; settlement: Settlement }
  | { type: "error"; error: ErrorInfo }
  | { type: "error-cleared"; previous: PreviousError };

/** The last load of the config file. */
export interface LastLoad {
  /** Whether the last read of the file was valid; null before the first read. */
  success: boolean | null;
  /** ISO time the current valid content was loaded (the last successful load), or null. */
  successAt: string | null;
}

/** Per-pod status; see the module comment. */
export class StatusTracker {
  readonly #store: SnapshotStore;
  readonly #clock: () => Date;
  readonly #listeners = new Set<(e: TrackerEvent) => void>();
  readonly #revisions = new Map<string, string | null>();
  #settlements: Settlement[] = [];
  #lastError: ErrorInfo | null = null;
  #previousError: PreviousError | null = null;
  #link: SfuLinkStatus = { connected: false, name: null, version: null };
  #lastLoad: LastLoad = { success: null, successAt: null };
  #lastAppliedAt: string | null = null;
  #secrets: SecretsStatus = { generation: 1, applied: null, at: null, lastError: null };
  #health: HealthReport | null = null;
  #unsubscribe: (() => void) | null = null;

  constructor(deps: { store: SnapshotStore; clock: () => Date }) {
    if (typeof deps?.clock !== "function") throw new TypeError("StatusTracker: deps.clock must be a function");
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#unsubscribe = this.#store.subscribe((e) => this.#onStore(e));
  }

  /** Stops following the store. Idempotent. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /** Registers a listener (called synchronously, in order); returns its unsubscribe function. */
  subscribe(listener: (e: TrackerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  // --- reads (the store's config state, for the settlement engine and /status) ---

  /** The store's desired snapshot (version, hash, revision). */
  desired(): { version: number; hash: string; revision: string | null } | null {
    return this.#store.desired();
  }

  /** What the SFU runs, as far as the agent knows. */
  applied(): { version: number; hash: string; at: string } | null {
    return this.#store.applied();
  }

  /** Hash of the file content last read when valid; null when invalid or never read. */
  fileHash(): string | null {
    return this.#store.fileHash();
  }

  /** The NACK error of the latest push of `hash`, or null. */
  rejection(hash: string): ErrorInfo | null {
    return this.#store.rejection(hash);
  }

  /** Whether the SFU runs the desired config (false before the first valid config). */
  converged(): boolean {
    const d = this.#store.desired();
    return d !== null && this.#store.applied()?.hash === d.hash;
  }

  /** The newest error not yet cleared by a success; null when none. */
  lastError(): ErrorInfo | null {
    return this.#lastError === null ? null : { ...this.#lastError };
  }

  /** The last error cleared by a success, with when it happened and when it was cleared; null when none. */
  previousError(): PreviousError | null {
    return this.#previousError === null ? null : { ...this.#previousError };
  }

  /** The SFU link for /status `sfu`. */
  sfu(): SfuLinkStatus {
    return { ...this.#link };
  }

  /** Whether the SFU is connected (WebSocket: after its hello; HTTP: the last request was answered). */
  connected(): boolean {
    return this.#link.connected;
  }

  /** Settlements, oldest first (at most {@link MAX_SETTLEMENTS}). */
  settlements(): Settlement[] {
    return this.#settlements.map((s) => ({ ...s, error: s.error && { ...s.error } }));
  }

  /** The last load of the config file. */
  lastLoad(): LastLoad {
    return { ...this.#lastLoad };
  }

  /** ISO time of the last ack (or late ack) of a push, or null. */
  lastAppliedAt(): string | null {
    return this.#lastAppliedAt;
  }

  /** `/status` `secrets` (see {@link SecretsStatus}). */
  secrets(): SecretsStatus {
    const s = this.#secrets;
    return { ...s, lastError: s.lastError && { ...s.lastError } };
  }

  /** The revision attached to `hash` by {@link setRevision}, or null. */
  revisionOf(hash: string): string | null {
    return this.#revisions.get(hash) ?? null;
  }

  /** The SFU's latest call-health report, or null when it never sent one. */
  health(): HealthReport | null {
    return this.#health === null ? null : { ...this.#health };
  }

  // --- writes ---

  /** Attaches a Git revision (from a reload event) to a config hash; shown in /status desired.revision and pushed as `revision` if not yet pushed. */
  setRevision(hash: string, revision: string | null): void {
    this.#revisions.delete(hash);
    this.#revisions.set(hash, revision);
    if (this.#revisions.size > MAX_REVISIONS) this.#revisions.delete(this.#revisions.keys().next().value as string);
    this.#store.setDesiredRevision(hash, revision);
  }

  /** Records a settlement (keeps the last {@link MAX_SETTLEMENTS}); one not applied with an error becomes lastError. */
  recordSettlement(s: Settlement): void {
    const copy = { ...s, error: s.error && { ...s.error } };
    this.#settlements.push(copy);
    if (this.#settlements.length > MAX_SETTLEMENTS) {
      this.#settlements.splice(0, this.#settlements.length - MAX_SETTLEMENTS);
    }
    this.#emit({ type: "settled", settlement: { ...copy } });
    if (s.outcome !== "applied" && s.error !== null) this.#setError({ ...s.error, at: s.at });
  }

  /** Takes in one event of the delivery core (the link, secrets, refused versions, call health). */
  onDelivery(e: DeliveryEvent): void {
    switch (e.type) {
      case "link-up":
        // A transport without a hello (HTTP) reports every answered request: only a change counts.
        if (this.#link.connected && e.sfu === null) return;
        this.#link = { connected: true, name: e.sfu?.name ?? null, version: e.sfu?.version ?? null };
        this.#emit({ type: "link", connected: true });
        break;
      case "link-down":
        // Name and version stay for /status.
        if (!this.#link.connected) return;
        this.#link = { ...this.#link, connected: false };
        this.#emit({ type: "link", connected: false });
        break;
      case "version-refused":
        this.#setError({ code: "VERSION_REFUSED", message: e.reason, at: this.#now() });
        break;
      case "secrets-changed":
        this.#secrets = { ...this.#secrets, generation: e.generation };
        break;
      case "secrets-unknown":
        // A new connection: what the SFU reads is not known until it confirms.
        this.#secrets = { ...this.#secrets, applied: null, at: null };
        break;
      case "secrets-applied":
        this.#secretsApplied(e.generation);
        break;
      case "secret-rotation":
        if (e.outcome === "ack") this.#secretsApplied(e.generation);
        else if (e.error !== null) this.#secrets = { ...this.#secrets, lastError: { ...e.error, at: this.#now() } };
        break;
      case "health": {
        const c = e.counters;
        // Extra fields are dropped.
        this.#health = {
          hash: c.hash,
          since: c.since,
          joins: c.joins,
          joinFailures: c.joinFailures,
          iceConnected: c.iceConnected,
          iceFailures: c.iceFailures,
          receivedAt: this.#now(),
        };
        break;
      }
    }
  }

  // --- internals ---

  /** The SFU confirmed it reads the secret files as of `generation`; clears `secrets.lastError`. */
  #secretsApplied(generation: number): void {
    this.#secrets = { ...this.#secrets, applied: generation, at: this.#now(), lastError: null };
  }

  #onStore(e: StoreEvent): void {
    switch (e.type) {
      case "valid":
        this.#lastLoad = { success: true, successAt: this.#now() };
        break;
      case "invalid":
        this.#lastLoad = { ...this.#lastLoad, success: false };
        this.#setError(e.error);
        break;
      case "applied":
        this.#lastAppliedAt = this.#now();
        break;
      case "rejected":
        this.#setError(e.error);
        break;
      case "ack-timeout":
        this.#setError({ ...ackTimeoutError(e.version, e.hash), at: this.#now() });
        break;
    }
    this.#emit(e);
    if (e.type === "applied" || e.type === "adopted" || e.type === "valid") this.#maybeClearError();
  }

  /** lastError -> previousError once the desired config is applied and the file is valid. */
  #maybeClearError(): void {
    if (this.#lastError === null || !this.converged()) return;
    if (this.#store.fileHash() !== this.#store.desired()?.hash) return;
    const previous: PreviousError = { ...this.#lastError, clearedAt: this.#now() };
    this.#previousError = previous;
    this.#lastError = null;
    this.#emit({ type: "error-cleared", previous: { ...previous } });
  }

  #setError(error: ErrorInfo): void {
    this.#lastError = { code: error.code, message: error.message, at: error.at };
    this.#emit({ type: "error", error: { ...this.#lastError } });
  }

  #now(): string {
    return this.#clock().toISOString();
  }

  #emit(e: TrackerEvent): void {
    for (const l of [...this.#listeners]) l(e);
  }
}
