/**
 * What a receiver of call-health counters (PROTOCOL.md section 15) accepts
 * beyond their schema: counters that can be true together. Each join yields
 * at most one failure or one ICE verdict, so neither `joinFailures` nor
 * `iceConnected + iceFailures` can exceed `joins`; and no pod handles
 * {@link MAX_HEALTH_COUNT} joins under one config. A report breaking these
 * is refused (a typed, returned refusal; the receiver drops it and counts
 * it), never stored or compared: a rollout would judge a pod on it.
 */
import type { HealthCounters } from "./messages-schema.ts";

/** Largest counter value accepted (one SFU pod under one config hash: a billion joins is a broken counter, not traffic). */
export const MAX_HEALTH_COUNT = 1_000_000_000;

/** Why a health report was refused. */
export type HealthRefusalCode =
  /** The report is about a config hash the SFU does not run (nor is being pushed). */
  | "UNKNOWN_HASH"
  /** The counters contradict each other (more failures or ICE verdicts than joins). */
  | "CONTRADICTORY_COUNTERS"
  /** A counter is not an integer in 0..{@link MAX_HEALTH_COUNT}, or `since` is not a time. */
  | "ABSURD_COUNTER";

/** A refused health report: a code and a message naming the counters (never anything else). */
export interface HealthRefusal {
  ok: false;
  code: HealthRefusalCode;
  message: string;
}

const COUNTERS = ["joins", "joinFailures", "iceConnected", "iceFailures"] as const;

/** The refusal of counters that cannot be true together, or null when they can (see the module comment). */
export function healthCountersRefusal(c: HealthCounters): HealthRefusal | null {
  for (const k of COUNTERS) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 0 || v > MAX_HEALTH_COUNT) {
      return { ok: false, code: "ABSURD_COUNTER", message: `${k} ${v} is not an integer in 0..${MAX_HEALTH_COUNT}` };
    }
  }
  if (!Number.isFinite(Date.parse(c.since))) {
    return { ok: false, code: "ABSURD_COUNTER", message: "since is not a date-time" };
  }
  if (c.joinFailures > c.joins) {
    return {
      ok: false,
      code: "CONTRADICTORY_COUNTERS",
      message: `joinFailures ${c.joinFailures} exceeds joins ${c.joins}`,
    };
  }
  if (c.iceConnected + c.iceFailures > c.joins) {
    return {
      ok: false,
      code: "CONTRADICTORY_COUNTERS",
      message: `iceConnected ${c.iceConnected} + iceFailures ${c.iceFailures} exceeds joins ${c.joins}`,
    };
  }
  return null;
}
