/**
 * Call health counters of the SFU, per applied config hash: how many joins
 * it handled, how many were refused or failed, how many peer connections
 * connected and how many failed ICE. A progressive rollout compares these
 * figures between the pods that run a new config and those that do not, so
 * the counters restart from zero whenever a config with another hash is
 * applied, and an outcome is counted only for a participant created under
 * the hash currently applied: a call set up under the previous config never
 * counts for or against the new one.
 *
 * Each participant contributes at most one ICE verdict: connected, or failed
 * (its peer connection reached `failed`, or was not connected within
 * `iceConnectTimeoutMs` of the client's first answer). Reported in `/status`
 * `health` and, when the agent advertises the feature, in `health` frames on
 * the control connection. Counts only, never names, rooms or addresses.
 */
import type { HealthCounters } from "../protocol/index.ts";
import type { ConfigSnapshot, ConfigState } from "./config-state.ts";

/** How long after its first answer a peer connection may take to connect before it counts as an ICE failure. */
export const ICE_CONNECT_TIMEOUT_MS = 10_000;

/** One kind of outcome a participant reports. */
export type HealthOutcome = "join" | "joinFailure" | "iceConnected" | "iceFailure";

const FIELD: Record<HealthOutcome, "joins" | "joinFailures" | "iceConnected" | "iceFailures"> = {
  join: "joins",
  joinFailure: "joinFailures",
  iceConnected: "iceConnected",
  iceFailure: "iceFailures",
};

/** The counters of the config hash applied now; see the module comment. */
export class CallHealth {
  #counters: HealthCounters | null = null;
  /** Bumped on every change, so a sender can tell whether anything changed since it last sent. */
  #generation = 0;
  readonly #listeners = new Set<() => void>();
  readonly #unsubscribe: () => void;

  /** Follows `state`: a swap to another hash starts new counters at the swap's `appliedAt`. */
  constructor(state: ConfigState) {
    if (state.current) this.#reset(state.current);
    this.#unsubscribe = state.onChange((next) => {
      if (this.#counters?.hash !== next.hash) this.#reset(next);
    });
  }

  /** Counters of the applied hash (a copy), or null before the first config. */
  snapshot(): HealthCounters | null {
    return this.#counters === null ? null : { ...this.#counters };
  }

  /** Increases on every change (a counter or a reset). */
  get generation(): number {
    return this.#generation;
  }

  /**
   * Counts one `outcome` for a participant created under `hash`; ignored when
   * `hash` is not the applied hash (the call belongs to an earlier config).
   */
  record(outcome: HealthOutcome, hash: string): void {
    const c = this.#counters;
    if (c === null || c.hash !== hash) return;
    c[FIELD[outcome]]++;
    this.#changed();
  }

  /** Registers a listener called after every change; returns its remover. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops following the config state. */
  close(): void {
    this.#unsubscribe();
    this.#listeners.clear();
  }

  #reset(snapshot: ConfigSnapshot): void {
    this.#counters = {
      hash: snapshot.hash,
      since: new Date(snapshot.appliedAt).toISOString(),
      joins: 0,
      joinFailures: 0,
      iceConnected: 0,
      iceFailures: 0,
    };
    this.#changed();
  }

  #changed(): void {
    this.#generation++;
    for (const l of [...this.#listeners]) l();
  }
}
