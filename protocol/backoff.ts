/**
 * The project's one backoff: the delay before retry number n grows as
 * `min(maxMs, baseMs × 2^n)` and is drawn below that ceiling by a jitter.
 * Its default is the SFU's reconnect rule, PROTOCOL.md
 * [section 3](./PROTOCOL.md#3-connection-lifecycle) (also the HTTP push retry, 12.4).
 */

/**
 * How a delay is drawn below its ceiling: `half` in [ceiling/2, ceiling]
 * (PROTOCOL.md's rule); `full` in [min(baseMs/2, maxMs), ceiling] (AWS's
 * "Exponential Backoff And Jitter", floored so that a broken endpoint is
 * never hammered in a tight loop); `none` the ceiling itself.
 */
export type Jitter = "half" | "full" | "none";

/** Options of {@link backoffDelay}; see {@link BACKOFF_DEFAULTS}. */
export interface BackoffOptions {
  /** Ceiling of the first retry (attempt 0), ms. */
  baseMs: number;
  /** Largest ceiling, ms. */
  maxMs: number;
  /** How the delay is drawn below the ceiling. */
  jitter?: Jitter;
}

/** Defaults of {@link BackoffOptions}: 0.5 s doubling to 30 s, `half` jitter (PROTOCOL.md section 3). */
export const BACKOFF_DEFAULTS: Readonly<Required<BackoffOptions>> = { baseMs: 500, maxMs: 30_000, jitter: "half" };

/** Doublings past this change nothing for any sane ceiling, and keep `2^n` finite. */
const MAX_DOUBLINGS = 40;

/**
 * Delay in ms before retry number `attempt` (0-based), `options` merged over
 * {@link BACKOFF_DEFAULTS}. `random` returns [0, 1) (a seam for tests).
 */
export function backoffDelay(
  attempt: number,
  options: Partial<BackoffOptions> = {},
  random: () => number = Math.random,
): number {
  const { baseMs, maxMs, jitter } = { ...BACKOFF_DEFAULTS, ...options };
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, MAX_DOUBLINGS));
  switch (jitter) {
    case "half":
      return Math.round(ceiling * (0.5 + 0.5 * random()));
    case "full": {
      const floor = Math.min(baseMs / 2, maxMs);
      return Math.round(floor + random() * Math.max(0, ceiling - floor));
    }
    case "none":
      return Math.round(ceiling);
  }
}

/** PROTOCOL.md section 3's reconnect delay: {@link backoffDelay} with `half` jitter; never below `min(baseMs, maxMs) / 2`. */
export function reconnectDelay(
  attempt: number,
  options: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  return backoffDelay(attempt, { ...options, jitter: "half" }, random);
}

/** `ms` scaled by a uniform factor in [1 - spread, 1 + spread] (spread in [0, 1)), for periodic timers. */
export function jittered(ms: number, spread: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 - spread + 2 * spread * random()));
}
