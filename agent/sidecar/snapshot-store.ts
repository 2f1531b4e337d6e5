/**
 * The agent's versioned config state, pure (no I/O, no timers): the desired snapshot, the file's
 * validity, what the SFU applied and rejected (PROTOCOL.md [section 5](../protocol/PROTOCOL.md#5-nonces-versions-and-delivery-rules)).
 */
import type { NormalisedConfig } from "../../protocol/config-schema-v2.ts";
import type { SettlementOutcome } from "../../protocol/messages-schema.ts";
import type { RolloutStage } from "../../protocol/rollout-schema.ts";

/** An error as shown in /status and carried by store events. */
export interface ErrorInfo {
  code: string;
  message: string;
  /** ISO 8601 time it happened. */
  at: string;
}

/**
 * What changed in the store. Listeners are called synchronously, in subscription order.
 * - `desired`: a new valid config (new hash, new version);
 * - `valid`: the file read is valid again, or holds another valid hash (sent before `desired`);
 * - `invalid`: the file holds new invalid content (once per content);
 * - `applied`: the SFU acked a push (or reported a push whose answer was lost);
 * - `adopted`: the SFU reported what it runs (`hello.applied`, HTTP `GET`);
 *   `version` is the SFU's, `desiredVersion` the desired version after adoption;
 * - `rejected`, `ack-timeout`: the SFU nacked, or did not answer, a push.
 */
export type StoreEvent =
  | { type: "desired"; version: number; hash: string; revision: string | null }
  | { type: "valid"; hash: string }
  | { type: "invalid"; hash: string | null; error: ErrorInfo }
  | { type: "applied"; version: number; hash: string }
  | { type: "adopted"; version: number; hash: string }
  | { type: "rejected"; version: number; hash: string; error: ErrorInfo }
  | { type: "ack-timeout"; version: number; hash: string };

/** The desired snapshot: the last valid config read from the file. */
export interface DesiredSnapshot {
  version: number;
  hash: string;
  revision: string | null;
  config: NormalisedConfig;
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
  /** Seconds from the reload event's publication (`issuedAt`) to the mounted file having the hash; absent when not measured. */
  propagationSeconds?: number;
  /** Seconds from the reload event's publication to the SFU's ack (`applied` only); absent when not measured. */
  eventToAppliedSeconds?: number;
  /** During a progressive rollout (a policy is mounted): the pod's stage when this was recorded. */
  stage?: RolloutStage;
  /** With `stage`: the pod's cohort rank. */
  rank?: number;
  /** With `stage`: the rollout it concerns (its id, candidate hash and step), null when none runs. */
  rollout?: { id: string; hash: string; step: number } | null;
}

/**
 * Highest `hello.applied.version` (or HTTP `GET` applied version) the agent
 * accepts: 2^31. Far above any real count of config changes, and far enough
 * below 2^53 that the agent's own counter stays a safe integer forever.
 */
export const MAX_SFU_VERSION = 2 ** 31;

/**
 * Pure versioned state of the agent. Invariants:
 * - an invalid file never replaces the last valid config;
 * - the desired version only increases, and is always greater than any version an SFU reported
 *   (the agent continues from `hello.applied`), so versions never go backwards for an SFU;
 * - versions stay safe integers: a reported version above {@link MAX_SFU_VERSION}, or above what
 *   this store issued or adopted once it has talked to an SFU, is refused ({@link SnapshotStore.checkSfuApplied});
 * - the same content (hash) offered twice is a no-op.
 */
export class SnapshotStore {
  readonly #clock: () => Date;
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #rejections = new Map<string, ErrorInfo>();
  #desired: DesiredSnapshot | null = null;
  #applied: AppliedSnapshot | null = null;
  #fileHash: string | null = null;
  #lastInvalidKey: string | null = null;
  #highestVersion = 0;
  /** Whether an SFU reported or acked a version in this process (then reports above #highestVersion are refused). */
  #sfuSeen = false;

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

  /** Highest version issued or adopted so far (0 before the first). */
  highestVersion(): number {
    return this.#highestVersion;
  }

  /** Registers a listener; returns its unsubscribe function. */
  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * The file holds valid content of `fileHash`, and `desired` is what the
   * SFU should run: the file's own config, or another valid config (a
   * progressive rollout holds this pod on the stable config while the
   * mounted file already has the candidate), or null to leave the desired
   * snapshot as it is. A new desired hash gets a new, higher version and
   * emits `desired`; `valid` is emitted when the file's hash changed or the
   * file was invalid before. Returns whether the desired snapshot changed
   * and its version (null while there is none).
   */
  offerFile(
    fileHash: string,
    desired: { config: NormalisedConfig; hash: string; revision: string | null } | null,
  ): { changed: boolean; version: number | null } {
    const wasFile = this.#fileHash;
    this.#fileHash = fileHash;
    this.#lastInvalidKey = null;
    if (wasFile !== fileHash) this.#emit({ type: "valid", hash: fileHash });
    if (desired === null || this.#desired?.hash === desired.hash) {
      return { changed: false, version: this.#desired?.version ?? null };
    }
    const version = this.#nextVersion();
    this.#desired = { version, hash: desired.hash, revision: desired.revision, config: desired.config };
    this.#emit({ type: "desired", version, hash: desired.hash, revision: desired.revision });
    return { changed: true, version };
  }

  /**
   * Records that the file now holds invalid content (`hash` of its raw bytes,
   * or null when unreadable). The last valid config stays desired. Emits
   * `invalid` unless the same content was already reported (a re-read of an
   * unchanged bad file is not news). Returns whether it was news.
   */
  recordInvalid(hash: string | null, error: { code: string; message: string }): boolean {
    this.#fileHash = null;
    const key = `${hash}\u0000${error.code}\u0000${error.message}`;
    if (key === this.#lastInvalidKey) return false;
    this.#lastInvalidKey = key;
    this.#emit({ type: "invalid", hash, error: { ...error, at: this.#now() } });
    return true;
  }

  /** Sets the Git revision of the desired snapshot when its hash is `hash` (pushed as `revision` if not yet pushed). */
  setDesiredRevision(hash: string, revision: string | null): void {
    if (this.#desired?.hash === hash) this.#desired = { ...this.#desired, revision };
  }

  /**
   * Checks a version an SFU reports it runs (`hello.applied`, HTTP `GET`)
   * before {@link adoptSfuApplied}: null when acceptable, else why not. A
   * version above {@link MAX_SFU_VERSION} is refused always; once this store
   * has talked to an SFU (adopted or acked a version), a version above the
   * highest it ever issued or adopted is refused too (the agent numbers the
   * versions; a higher one is a bug or a forgery, and taking it in would let
   * one message push every later version out of range).
   */
  checkSfuApplied(applied: { version: number; hash: string } | null): string | null {
    if (applied === null) return null;
    const v = applied.version;
    if (!Number.isSafeInteger(v) || v < 0) return `applied.version ${v} is not a non-negative safe integer`;
    if (v > MAX_SFU_VERSION) return `applied.version ${v} is above the limit ${MAX_SFU_VERSION}`;
    if (this.#sfuSeen && v > this.#highestVersion) {
      return `applied.version ${v} is above the highest version this agent issued (${this.#highestVersion})`;
    }
    return null;
  }

  /**
   * Takes in what a connecting SFU reports as applied (`hello.applied`);
   * check it with {@link checkSfuApplied} first (this throws RangeError on a
   * refused version). The version counter continues above it; when the
   * desired config is a different hash whose version is not above it, the
   * desired snapshot is renumbered above it. When the hash equals the
   * desired hash, the desired version adopts the SFU's version (nothing
   * needs pushing). Emits `adopted`.
   */
  adoptSfuApplied(applied: { version: number; hash: string } | null): void {
    if (applied === null) return;
    const refused = this.checkSfuApplied(applied);
    if (refused !== null) throw new RangeError(`SnapshotStore: ${refused}`);
    this.#sfuSeen = true;
    this.#highestVersion = Math.max(this.#highestVersion, applied.version);
    this.#applied = { version: applied.version, hash: applied.hash, at: this.#now() };
    const d = this.#desired;
    if (d !== null) {
      if (d.hash === applied.hash) {
        if (d.version !== applied.version && applied.version >= d.version) {
          this.#desired = { ...d, version: applied.version };
        }
      } else if (d.version <= applied.version) {
        this.#desired = { ...d, version: this.#nextVersion() };
      }
    }
    this.#emit({ type: "adopted", version: applied.version, hash: applied.hash });
  }

  /** The SFU acked `version`/`hash`: it is applied. Emits `applied`. */
  markApplied(version: number, hash: string): void {
    this.#applied = { version, hash, at: this.#now() };
    this.#rejections.delete(hash);
    this.#sfuSeen = true;
    this.#highestVersion = Math.max(this.#highestVersion, version);
    this.#emit({ type: "applied", version, hash });
  }

  /** The SFU nacked `version`/`hash`. Emits `rejected`. */
  markRejected(version: number, hash: string, error: { code: string; message: string }): void {
    const info = { code: error.code, message: error.message, at: this.#now() };
    this.#rejections.delete(hash);
    this.#rejections.set(hash, info);
    if (this.#rejections.size > 100) this.#rejections.delete(this.#rejections.keys().next().value as string);
    this.#emit({ type: "rejected", version, hash, error: info });
  }

  /** The SFU did not answer the push of `version`/`hash` in time. Emits `ack-timeout`. */
  markAckTimeout(version: number, hash: string): void {
    this.#emit({ type: "ack-timeout", version, hash });
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
