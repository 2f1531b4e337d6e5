/**
 * Delivery bookkeeping shared by both push transports (the WebSocket
 * {@link SfuSession} and the {@link HttpPusher}): what the SFU runs as far as
 * this push session knows, which hashes it rejected, which config to push
 * next, and the reporting of every outcome to the {@link SnapshotStore}
 * (config state) and the {@link StatusTracker} (link, push outcomes). The
 * transports only move bytes and decide *when* they may send; *what* to send
 * and what an answer means live here, once.
 *
 * Rules (PROTOCOL.md sections 5, 6 and 12):
 * - latest wins: nothing is queued; whenever a transport may send, it asks
 *   {@link PushLedger.next} and gets the store's newest desired config;
 * - no re-push of the applied hash: a desired hash equal to what the SFU
 *   runs (reported, or acked) is never sent;
 * - no NACK loop: a rejected hash is not sent again at once within the
 *   session. A session is one WebSocket connection, or, over HTTP, the life
 *   of the agent process (until the SFU reports through `GET` that it runs
 *   something else, i.e. it restarted). {@link PushLedger.reset} starts a
 *   new one. Three things lift the rule for a hash: it becomes desired
 *   again (a newer config came and went: it is pushed and settles again);
 *   a new session; and, for `APPLY_FAILED` only (a condition that can pass,
 *   like an unreadable credential file), a capped backoff
 *   ({@link NACK_RETRY_DEFAULTS}: 1 s doubling to 5 min) after which it is
 *   sent again on the same session;
 * - an SFU reporting a version out of range (see
 *   SnapshotStore.checkSfuApplied) is refused: {@link PushLedger.adopt}
 *   returns the reason and the transport ends the session.
 */
import type { ConfigMessage } from "../protocol/messages-schema.ts";
import type { DesiredSnapshot, SnapshotStore } from "./snapshot-store.ts";
import type { PushTransport, StatusTracker } from "./status-tracker.ts";

/** A config the SFU runs: `{version, hash}`. */
export interface AppliedRef {
  version: number;
  hash: string;
}

/** A NACK error as carried by a `nack` or an HTTP 409/422 body. */
export interface PushError {
  code: string;
  message: string;
  path?: string;
}

/** Backoff of the re-send of a config nacked with `APPLY_FAILED`: `baseMs` doubling per nack, capped at `maxMs`. */
export interface NackRetryOptions {
  baseMs: number;
  maxMs: number;
}

/** Documented defaults of {@link NackRetryOptions}: 1 s doubling to 5 min. */
export const NACK_RETRY_DEFAULTS: NackRetryOptions = { baseMs: 1_000, maxMs: 300_000 };

/** The NACK code whose hash is retried on the same session after a backoff. */
export const RETRYABLE_NACK_CODE = "APPLY_FAILED";

/** Dependencies of {@link PushLedger}. */
export interface PushLedgerDeps {
  store: SnapshotStore;
  tracker?: StatusTracker | undefined;
  /** Label of the outcome events. */
  transport: PushTransport;
  /** Called when a retry of an `APPLY_FAILED` hash is due (the transport then tries to send). */
  onRetryDue?: () => void;
  nackRetry?: NackRetryOptions | undefined;
}

/** Builds the `config` message (WebSocket frame or HTTP body) of a desired snapshot. */
export function configMessage(d: DesiredSnapshot, nonce: number): ConfigMessage {
  return {
    type: "config",
    nonce,
    version: d.version,
    hash: d.hash,
    revision: d.revision,
    schemaVersion: d.config.schemaVersion,
    config: d.config as unknown as ConfigMessage["config"],
  };
}

interface Rejection {
  code: string;
  /** Consecutive APPLY_FAILED nacks of this hash (the backoff exponent). */
  attempts: number;
  timer: NodeJS.Timeout | null;
}

/** Per-session delivery state of one SFU; see the module comment. */
export class PushLedger {
  readonly #deps: PushLedgerDeps;
  readonly #retry: NackRetryOptions;
  readonly #rejected = new Map<string, Rejection>();
  /** APPLY_FAILED attempts of hashes whose retry came due (kept for the next backoff step). */
  readonly #attempts = new Map<string, number>();
  #applied: AppliedRef | null = null;

  constructor(deps: PushLedgerDeps) {
    const retry = deps.nackRetry ?? NACK_RETRY_DEFAULTS;
    if (!(Number.isInteger(retry.baseMs) && retry.baseMs >= 1 && retry.maxMs >= retry.baseMs)) {
      throw new TypeError("PushLedger: nackRetry needs integer baseMs >= 1 and maxMs >= baseMs");
    }
    this.#deps = deps;
    this.#retry = { ...retry };
  }

  /** What the SFU runs as far as this session knows (reported or acked); null when unknown or none. */
  get applied(): AppliedRef | null {
    return this.#applied;
  }

  /** Whether `hash` is held back after a NACK in this session (not sent until a retry, a re-desire or a new session). */
  isRejected(hash: string): boolean {
    return this.#rejected.has(hash);
  }

  /** When the held-back `hash` is retried (ms from its NACK), or null when it is not retried on this session. */
  retryDelayMs(hash: string): number | null {
    const r = this.#rejected.get(hash);
    if (r === undefined || r.code !== RETRYABLE_NACK_CODE) return null;
    return this.#delay(r.attempts);
  }

  /**
   * The config to push now: the store's newest desired snapshot, unless there
   * is none, the SFU already runs it, it is held back after a NACK, or
   * `skip(hash)` says so (a transport's own rule, e.g. an abandoned push).
   */
  next(skip?: (hash: string) => boolean): DesiredSnapshot | null {
    const d = this.#deps.store.desired();
    if (d === null) return null;
    if (this.#applied?.hash === d.hash) return null;
    if (this.#rejected.has(d.hash)) return null;
    if (skip?.(d.hash)) return null;
    return d;
  }

  /**
   * A config became desired (the store's `desired` event): a hash held back
   * after an earlier NACK is desired *again*, so it may be pushed again.
   */
  desiredAgain(hash: string): void {
    this.#forget(hash);
    this.#attempts.delete(hash);
  }

  /**
   * Takes in what the SFU reports it runs (`hello.applied`, or HTTP `GET`).
   * Returns null when taken in: the store continues its version numbering
   * above it (versions never go backwards for an SFU) and shows it as
   * applied. Returns the reason when the version is refused (out of range;
   * reported to the tracker): nothing is taken in.
   */
  adopt(applied: AppliedRef | null): string | null {
    const ref = applied === null ? null : { version: applied.version, hash: applied.hash };
    const refused = this.#deps.store.checkSfuApplied(ref);
    if (refused !== null) {
      this.#deps.tracker?.versionRefused(ref?.version ?? 0, refused);
      return refused;
    }
    this.#applied = ref;
    this.#deps.store.adoptSfuApplied(ref);
    return null;
  }

  /** Starts a new session: forgets rejections (and their retries) and what the SFU runs. */
  reset(): void {
    for (const hash of [...this.#rejected.keys()]) this.#forget(hash);
    this.#attempts.clear();
    this.#applied = null;
  }

  /** Ends the ledger: cancels pending retries. */
  dispose(): void {
    this.reset();
  }

  /** Counts one config sent (a frame, or a POST, retries included). */
  recordSent(): void {
    this.#deps.tracker?.pushSent(this.#deps.transport);
  }

  /** The SFU acked `version`/`hash` after `seconds`: it is applied. */
  recordAck(version: number, hash: string, seconds: number): void {
    this.#applied = { version, hash };
    this.#attempts.delete(hash);
    this.#deps.tracker?.pushOutcome(this.#deps.transport, "ack", seconds);
    this.#deps.store.markApplied(version, hash);
  }

  /**
   * The SFU reports (HTTP `GET`) that it runs `version`/`hash`, a push whose
   * answer was lost (timeout, connection dropped): applied, like a late ack,
   * without a latency sample or an outcome count.
   */
  recordLateAck(version: number, hash: string): void {
    this.#applied = { version, hash };
    this.#attempts.delete(hash);
    this.#deps.store.markApplied(version, hash);
  }

  /**
   * The SFU nacked `version`/`hash` after `seconds`: held back on this
   * session (an `APPLY_FAILED` one until its backoff ends); recorded as
   * rejected. Returns the retry delay in ms, or null when not retried here.
   */
  recordNack(version: number, hash: string, error: PushError, seconds: number): number | null {
    this.#forget(hash);
    const attempts = error.code === RETRYABLE_NACK_CODE ? (this.#attempts.get(hash) ?? 0) : 0;
    const r: Rejection = { code: error.code, attempts, timer: null };
    this.#rejected.set(hash, r);
    let delay: number | null = null;
    if (error.code === RETRYABLE_NACK_CODE) {
      delay = this.#delay(attempts);
      this.#attempts.set(hash, attempts + 1);
      r.timer = setTimeout(() => {
        r.timer = null;
        if (this.#rejected.get(hash) !== r) return;
        this.#rejected.delete(hash);
        this.#deps.onRetryDue?.();
      }, delay);
      r.timer.unref();
    }
    this.#deps.tracker?.pushOutcome(this.#deps.transport, "nack", seconds);
    this.#deps.store.markRejected(version, hash, { code: error.code, message: error.message });
    return delay;
  }

  /**
   * `version`/`hash` was not sent: the SFU cannot take its schemaVersion
   * (WebSocket: not in `hello.schemaVersions`). Recorded like a NACK with
   * code `UNSUPPORTED_SCHEMA` (rejected, lastError, settlement) and push
   * outcome `unsupported_schema`; held back on this session like a rejected
   * hash (sent again only if it becomes desired again or on a new session).
   */
  recordUnsupported(version: number, hash: string, message: string): void {
    this.#forget(hash);
    this.#rejected.set(hash, { code: "UNSUPPORTED_SCHEMA", attempts: 0, timer: null });
    this.#deps.tracker?.pushOutcome(this.#deps.transport, "unsupported_schema", null);
    this.#deps.store.markRejected(version, hash, { code: "UNSUPPORTED_SCHEMA", message });
  }

  /** The SFU did not answer `version`/`hash` within the ack timeout: recorded as `timeout`. */
  recordTimeout(version: number, hash: string, report = true): void {
    this.#deps.tracker?.pushOutcome(this.#deps.transport, "timeout", null);
    if (report) this.#deps.store.markAckTimeout(version, hash);
  }

  /** Counts a transport-level failure (HTTP only: an unexpected status, or the SFU unreachable). */
  recordFailure(outcome: "http_error" | "unreachable"): void {
    this.#deps.tracker?.pushOutcome(this.#deps.transport, outcome, null);
  }

  /** The SFU link is up (WebSocket: its hello) or down; HTTP: the last request was answered or not. */
  recordLink(up: { name: string; version: string } | boolean): void {
    const t = this.#deps.tracker;
    if (t === undefined) return;
    if (typeof up === "object") t.linkUp(up);
    else if (this.#deps.transport === "http") t.setHttpLink(up);
    else if (!up) t.linkDown();
  }

  #delay(attempts: number): number {
    return Math.min(this.#retry.maxMs, this.#retry.baseMs * 2 ** Math.min(attempts, 40));
  }

  #forget(hash: string): void {
    const r = this.#rejected.get(hash);
    if (r?.timer) clearTimeout(r.timer);
    this.#rejected.delete(hash);
  }
}
