/**
 * The one settlement engine: follows the status tracker's events and settles waits from two sources, the
 * queue's reload events (queue/settlement.ts, subscribed through {@link SettlementEngine.subscribe}) and, in
 * watch-only mode, the desired versions; it adds the late-applied rule to both and records every settlement
 * in the tracker. PROTOCOL.md [section 5.1](../../protocol/PROTOCOL.md#51-settling-what-the-agent-reports-as-applied),
 * queue/README.md ("Settlement").
 */
import type { SettlementStore, SettlementStoreEvent } from "./queue/settlement.ts";
import type { ErrorInfo, Settlement } from "./snapshot-store.ts";
import type { StatusTracker, TrackerEvent } from "./status-tracker.ts";
import { ackTimeoutError } from "./transport.ts";

/** Options of {@link SettlementEngine}. */
export interface SettlementEngineOptions {
  /** Settle one wait per desired version (watch-only mode: no queue source settles reload events). */
  watchDesired: boolean;
}

/**
 * Settles what the SFU did with each wait and records it in the tracker. The queue source
 * reads the config state and records through this engine ({@link SettlementStore}); its waits
 * see every tracker event first, then the desired-version waits, then the late-applied rule.
 */
export class SettlementEngine implements SettlementStore {
  readonly #tracker: StatusTracker;
  readonly #clock: () => Date;
  readonly #opts: SettlementEngineOptions;
  readonly #sources = new Set<(e: SettlementStoreEvent) => void>();
  /** Watch-only mode: the desired version waiting to settle (or settled: its last outcome). */
  #open: { version: number; hash: string; outcome: Settlement["outcome"] | null } | null = null;
  #unsubscribe: (() => void) | null = null;

  constructor(deps: { tracker: StatusTracker; clock: () => Date }, options: SettlementEngineOptions) {
    this.#tracker = deps.tracker;
    this.#clock = deps.clock;
    this.#opts = { ...options };
  }

  /** Follows the tracker. Idempotent. */
  start(): void {
    this.#unsubscribe ??= this.#tracker.subscribe((e) => this.#onEvent(e));
  }

  /** Stops following the tracker. Idempotent. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  // --- the queue source's view of the config state (SettlementStore): the tracker's ---
  readonly fileHash = (): string | null => this.#tracker.fileHash();
  readonly applied = (): { version: number; hash: string } | null => this.#tracker.applied();
  readonly desired = (): { version: number; hash: string } | null => this.#tracker.desired();
  readonly rejection = (hash: string): ErrorInfo | null => this.#tracker.rejection(hash);
  readonly lastError = (): ErrorInfo | null => this.#tracker.lastError();
  readonly setRevision = (hash: string, revision: string | null): void => this.#tracker.setRevision(hash, revision);

  /** Records a settlement in the tracker (which publishes it as a `settled` event). */
  recordSettlement(s: Settlement): void {
    this.#tracker.recordSettlement(s);
  }

  /** Registers a source (or a reader of `settled` events): called with every tracker event, in order. */
  subscribe(listener: (e: SettlementStoreEvent) => void): () => void {
    this.#sources.add(listener);
    return () => {
      this.#sources.delete(listener);
    };
  }

  // --- internals ---

  #onEvent(e: TrackerEvent): void {
    for (const l of [...this.#sources]) l(e);
    if (this.#opts.watchDesired) this.#watchSettle(e);
    if (e.type === "applied" || e.type === "adopted") this.#settleLateApplied(e.hash, e.version);
  }

  /** Watch-only settlements: one per desired version, superseded by the next one. */
  #watchSettle(e: TrackerEvent): void {
    const open = this.#open;
    const settle = (outcome: Settlement["outcome"], version: number, error: Settlement["error"]) => {
      if (open === null) return;
      open.outcome = outcome;
      this.recordSettlement({
        revision: this.#tracker.revisionOf(open.hash),
        hash: open.hash,
        version,
        outcome,
        error,
        at: this.#now(),
      });
    };
    switch (e.type) {
      case "desired":
        if (open !== null && open.outcome === null) settle("superseded", open.version, null);
        this.#open = { version: e.version, hash: e.hash, outcome: null };
        break;
      case "applied":
      case "adopted":
        if (open?.hash === e.hash && open.outcome !== "applied") settle("applied", e.version, null);
        break;
      case "rejected":
        if (open?.hash === e.hash && open.outcome === null) {
          settle("rejected", e.version, { code: e.error.code, message: e.error.message });
        }
        break;
      case "ack-timeout":
        if (open?.hash === e.hash && open.outcome === null) {
          settle("timeout", e.version, ackTimeoutError(e.version));
        }
        break;
      case "invalid":
        if (e.hash !== null) {
          this.recordSettlement({
            revision: null,
            hash: e.hash,
            version: null,
            outcome: "invalid",
            error: { code: e.error.code, message: e.error.message },
            at: e.error.at,
          });
        }
        break;
    }
  }

  /**
   * The SFU runs `hash` (ack or report): when it is the desired hash and its
   * latest settlement is `rejected` or `timeout`, it settles `applied` now.
   */
  #settleLateApplied(hash: string, version: number): void {
    if (this.#tracker.desired()?.hash !== hash) return;
    const latest = this.#tracker.settlements().findLast((s) => s.hash === hash);
    if (latest === undefined || (latest.outcome !== "rejected" && latest.outcome !== "timeout")) return;
    if (this.#open?.hash === hash) this.#open.outcome = "applied";
    this.recordSettlement({
      revision: latest.revision ?? this.#tracker.revisionOf(hash),
      hash,
      version,
      outcome: "applied",
      error: null,
      at: this.#now(),
    });
  }

  #now(): string {
    return this.#clock().toISOString();
  }
}
