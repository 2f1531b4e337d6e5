/**
 * Delivery bookkeeping shared by both push transports (the WebSocket
 * {@link SfuSession} and the {@link HttpPusher}): what the SFU runs as far as
 * this push session knows, which hashes it rejected, which config to push
 * next, and the recording of every outcome into the {@link SnapshotStore}
 * and the metrics. The transports only move bytes and decide *when* they may
 * send; *what* to send and what an answer means live here, once.
 *
 * Rules (PROTOCOL.md sections 5 and 12):
 * - latest wins: nothing is queued; whenever a transport may send, it asks
 *   {@link PushLedger.next} and gets the store's newest desired config;
 * - no re-push of the applied hash: a desired hash equal to what the SFU
 *   runs (reported, or acked) is never sent;
 * - no NACK loop: a rejected hash is never sent again within the session.
 *   A session is one WebSocket connection, or, over HTTP, the life of the
 *   agent process (until the SFU reports through `GET` that it runs
 *   something else, i.e. it restarted). {@link PushLedger.reset} starts a
 *   new one.
 */
import type { ConfigMessage } from "../protocol/messages-schema.ts";
import type { AgentMetrics, PushOutcome, PushTransport } from "./metrics.ts";
import type { DesiredSnapshot, SnapshotStore } from "./snapshot-store.ts";

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

/** Dependencies of {@link PushLedger}. */
export interface PushLedgerDeps {
  store: SnapshotStore;
  metrics?: AgentMetrics | undefined;
  /** Label of the outcome metrics. */
  transport: PushTransport;
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

/** Per-session delivery state of one SFU; see the module comment. */
export class PushLedger {
  readonly #deps: PushLedgerDeps;
  readonly #rejected = new Set<string>();
  #applied: AppliedRef | null = null;

  constructor(deps: PushLedgerDeps) {
    this.#deps = deps;
  }

  /** What the SFU runs as far as this session knows (reported or acked); null when unknown or none. */
  get applied(): AppliedRef | null {
    return this.#applied;
  }

  /** Whether `hash` was rejected in this session (it will not be sent again). */
  isRejected(hash: string): boolean {
    return this.#rejected.has(hash);
  }

  /**
   * The config to push now: the store's newest desired snapshot, unless there
   * is none, the SFU already runs it, it was rejected in this session, or
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
   * Takes in what the SFU reports it runs (`hello.applied`, or HTTP `GET`):
   * the store continues its version numbering above it (versions never go
   * backwards for an SFU) and shows it as applied.
   */
  adopt(applied: AppliedRef | null): void {
    this.#applied = applied === null ? null : { version: applied.version, hash: applied.hash };
    this.#deps.store.adoptSfuApplied(this.#applied);
    this.#deps.metrics?.refresh(this.#deps.store);
  }

  /** Starts a new session: forgets rejections and what the SFU runs. */
  reset(): void {
    this.#rejected.clear();
    this.#applied = null;
  }

  /** Counts one config sent (a frame, or a POST, retries included). */
  recordSent(): void {
    this.#deps.metrics?.pushes.inc();
  }

  /** The SFU acked `version`/`hash` after `seconds`: it is applied (store, metrics). */
  recordAck(version: number, hash: string, seconds: number): void {
    this.#applied = { version, hash };
    this.#deps.metrics?.pushLatency.observe(seconds);
    this.#outcome("ack");
    this.#deps.store.markApplied(version, hash);
  }

  /**
   * The SFU reports (HTTP `GET`) that it runs `version`/`hash`, a push whose
   * answer was lost (timeout, connection dropped): applied, like a late ack
   * (store and settlement), without a latency sample or an outcome count.
   */
  recordLateAck(version: number, hash: string): void {
    this.#applied = { version, hash };
    this.#deps.store.markApplied(version, hash);
  }

  /** The SFU nacked `version`/`hash` after `seconds`: never sent again in this session; recorded as rejected. */
  recordNack(version: number, hash: string, error: PushError, seconds: number): void {
    this.#rejected.add(hash);
    this.#deps.metrics?.pushLatency.observe(seconds);
    this.#outcome("nack");
    this.#deps.store.markRejected(version, hash, { code: error.code, message: error.message });
  }

  /** The SFU did not answer `version`/`hash` within the ack timeout: recorded as `timeout`. */
  recordTimeout(version: number, hash: string, report = true): void {
    this.#outcome("timeout");
    if (report) this.#deps.store.markAckTimeout(version, hash);
  }

  /** Counts a transport-level failure (HTTP only: an unexpected status, or the SFU unreachable). */
  recordFailure(outcome: "http_error" | "unreachable"): void {
    this.#outcome(outcome);
  }

  #outcome(outcome: PushOutcome): void {
    this.#deps.metrics?.pushOutcomes.inc({ transport: this.#deps.transport, outcome });
  }
}
