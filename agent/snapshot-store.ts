/**
 * The agent's versioned snapshot store: pure state, no I/O and no timers
 * (time comes from an injected clock). It holds the last valid config (the
 * desired snapshot, with its version, hash and Git revision), what the SFU
 * applied, the last error, the SFU connection, and recent settlements.
 * Transports (the file watcher, the WebSocket push server, the SQS trigger)
 * write to it and subscribe to its events; none of them talk to each other
 * (the go-control-plane split of cache and server).
 *
 * Invariants:
 * - an invalid file never replaces the last valid config;
 * - the desired version only increases, and is always greater than any
 *   version an SFU reported (the agent continues from `hello.applied`), so
 *   versions never go backwards for an SFU, across agent restarts too;
 * - the same content (hash) offered twice is a no-op.
 */
import type { NormalisedConfigV1 } from "../protocol/config-schema.ts";
import type { SettlementOutcome } from "../protocol/messages-schema.ts";

/** An error as shown in /status and carried by store events. */
export interface ErrorInfo {
  code: string;
  message: string;
  /** ISO 8601 time it happened. */
  at: string;
}

/** What changed in the store. Listeners are called synchronously, in subscription order. */
export type StoreEvent =
  | { type: "desired"; version: number; hash: string; revision: string | null }
  | { type: "invalid"; hash: string | null; error: ErrorInfo }
  | { type: "applied"; version: number; hash: string }
  | { type: "rejected"; version: number; hash: string; error: ErrorInfo }
  | { type: "ack-timeout"; version: number; hash: string };

/** The desired snapshot: the last valid config read from the file. */
export interface DesiredSnapshot {
  version: number;
  hash: string;
  revision: string | null;
  config: NormalisedConfigV1;
}

/** What the SFU applied, as far as the agent knows. */
export interface AppliedSnapshot {
  version: number;
  hash: string;
  /** ISO 8601 time of the ack (or of the hello that reported it). */
  at: string;
}

/** One settled reload, for /status `settlements` and the status topic. */
export interface Settlement {
  revision: string | null;
  hash: string;
  version: number | null;
  outcome: SettlementOutcome;
  error: { code: string; message: string } | null;
  at: string;
}

/** The connected SFU, for /status `sfu`. */
export interface SfuInfo {
  connected: boolean;
  name: string | null;
  version: string | null;
}

/** How many settlements /status keeps. */
export const MAX_SETTLEMENTS = 20;

/** Pure versioned state of the agent; see the module comment for its invariants. */
export class SnapshotStore {
  readonly #clock: () => Date;
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #rejections = new Map<string, ErrorInfo>();
  readonly #revisions = new Map<string, string | null>();
  #desired: DesiredSnapshot | null = null;
  #applied: AppliedSnapshot | null = null;
  #fileHash: string | null = null;
  #lastInvalidKey: string | null = null;
  #lastError: ErrorInfo | null = null;
  #lastSuccessAt: string | null = null;
  #highestVersion = 0;
  #settlements: Settlement[] = [];
  #sfu: SfuInfo = { connected: false, name: null, version: null };

  constructor(deps: { clock: () => Date }) {
    if (typeof deps?.clock !== "function") throw new TypeError("SnapshotStore: deps.clock must be a function");
    this.#clock = deps.clock;
  }

  /** The last valid config, or null before the first valid read. */
  desired(): DesiredSnapshot | null {
    return this.#desired;
  }

  /** What the SFU applied (from an ack or its hello), or null when unknown. */
  applied(): AppliedSnapshot | null {
    return this.#applied;
  }

  /** Hash (config hash, same as protocol hash()) of the file content last read, when it was valid; null if never read or invalid. */
  fileHash(): string | null {
    return this.#fileHash;
  }

  /** The NACK error of the latest push of `hash`, if the SFU rejected it; null otherwise. */
  rejection(hash: string): ErrorInfo | null {
    return this.#rejections.get(hash) ?? null;
  }

  /** The most recent error (invalid file, NACK, ack timeout, failed settlement); null when none yet. */
  lastError(): ErrorInfo | null {
    return this.#lastError;
  }

  /** ISO time of the last successful apply (ack), or null. */
  lastSuccessAt(): string | null {
    return this.#lastSuccessAt;
  }

  /** The SFU connection, for /status. */
  sfu(): SfuInfo {
    return { ...this.#sfu };
  }

  /** Settlements, oldest first (at most {@link MAX_SETTLEMENTS}). */
  settlements(): Settlement[] {
    return this.#settlements.map((s) => ({ ...s }));
  }

  /** Registers a listener; returns its unsubscribe function. */
  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Offers a valid config read from the file. A new hash becomes the desired
   * snapshot with a new, higher version and emits `desired`; the current
   * hash is a no-op. Returns whether the desired snapshot changed.
   */
  offerValid(config: NormalisedConfigV1, hash: string): { changed: boolean; version: number } {
    this.#fileHash = hash;
    this.#lastInvalidKey = null;
    if (this.#desired?.hash === hash) return { changed: false, version: this.#desired.version };
    const version = this.#nextVersion();
    const revision = this.#revisions.get(hash) ?? null;
    this.#desired = { version, hash, revision, config };
    this.#emit({ type: "desired", version, hash, revision });
    return { changed: true, version };
  }

  /**
   * Records that the file now holds invalid content (`hash` of its raw bytes,
   * or null when unreadable). The last valid config stays desired. Emits
   * `invalid` and sets lastError unless the same content was already
   * reported (a re-read of an unchanged bad file is not news).
   */
  recordInvalid(hash: string | null, error: { code: string; message: string }): boolean {
    this.#fileHash = null;
    const key = `${hash}\u0000${error.code}\u0000${error.message}`;
    if (key === this.#lastInvalidKey) return false;
    this.#lastInvalidKey = key;
    const info = { ...error, at: this.#now() };
    this.#lastError = info;
    this.#emit({ type: "invalid", hash, error: info });
    return true;
  }

  /** Attach the Git revision (from a reload event) to a config hash; shown in /status desired.revision and pushed as `revision` if not yet pushed. */
  setRevision(hash: string, revision: string | null): void {
    this.#revisions.set(hash, revision);
    if (this.#revisions.size > 100) {
      const oldest = this.#revisions.keys().next().value as string;
      this.#revisions.delete(oldest);
    }
    if (this.#desired?.hash === hash) this.#desired = { ...this.#desired, revision };
  }

  /** The revision attached to `hash` by {@link setRevision}, or null. */
  revisionOf(hash: string): string | null {
    return this.#revisions.get(hash) ?? null;
  }

  /**
   * Takes in what a connecting SFU reports as applied (`hello.applied`). The
   * version counter continues above it; when the desired config is a
   * different hash whose version is not above it, the desired snapshot is
   * renumbered above it. When the hash equals the desired hash, the desired
   * version adopts the SFU's version (nothing needs pushing).
   */
  adoptSfuApplied(applied: { version: number; hash: string } | null): void {
    if (applied === null) return;
    this.#highestVersion = Math.max(this.#highestVersion, applied.version);
    this.#applied = { version: applied.version, hash: applied.hash, at: this.#now() };
    const d = this.#desired;
    if (d === null) return;
    if (d.hash === applied.hash) {
      if (d.version !== applied.version && applied.version >= d.version) {
        this.#desired = { ...d, version: applied.version };
      }
    } else if (d.version <= applied.version) {
      this.#desired = { ...d, version: this.#nextVersion() };
    }
  }

  /** The SFU acked `version`/`hash`: it is applied. Emits `applied`. */
  markApplied(version: number, hash: string): void {
    const at = this.#now();
    this.#applied = { version, hash, at };
    this.#lastSuccessAt = at;
    this.#rejections.delete(hash);
    this.#highestVersion = Math.max(this.#highestVersion, version);
    this.#emit({ type: "applied", version, hash });
  }

  /** The SFU nacked `version`/`hash`. Emits `rejected` and sets lastError. */
  markRejected(version: number, hash: string, error: { code: string; message: string }): void {
    const info = { code: error.code, message: error.message, at: this.#now() };
    this.#rejections.set(hash, info);
    if (this.#rejections.size > 100) this.#rejections.delete(this.#rejections.keys().next().value as string);
    this.#lastError = info;
    this.#emit({ type: "rejected", version, hash, error: info });
  }

  /** The SFU did not answer the push of `version`/`hash` in time. Emits `ack-timeout` and sets lastError. */
  markAckTimeout(version: number, hash: string): void {
    this.#lastError = {
      code: "ACK_TIMEOUT",
      message: `the SFU did not answer version ${version} (${hash}) in time`,
      at: this.#now(),
    };
    this.#emit({ type: "ack-timeout", version, hash });
  }

  /** Records the SFU connection state (name and version from its hello). */
  setSfu(info: SfuInfo): void {
    this.#sfu = { ...info };
  }

  /** Record a settlement outcome for /status `settlements` (keep the last 20) and lastError when not applied. */
  recordSettlement(s: Settlement): void {
    this.#settlements.push({ ...s });
    if (this.#settlements.length > MAX_SETTLEMENTS)
      this.#settlements.splice(0, this.#settlements.length - MAX_SETTLEMENTS);
    if (s.outcome !== "applied" && s.error !== null) this.#lastError = { ...s.error, at: s.at };
  }

  #nextVersion(): number {
    this.#highestVersion = Math.max(this.#highestVersion, this.#desired?.version ?? 0) + 1;
    return this.#highestVersion;
  }

  #now(): string {
    return this.#clock().toISOString();
  }

  #emit(e: StoreEvent): void {
    for (const l of [...this.#listeners]) l(e);
  }
}
