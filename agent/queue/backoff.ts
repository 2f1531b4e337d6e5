/**
 * Exponential back-off with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): attempt n waits a uniform random time in
 * [0, min(max, base * 2^n)], with a floor of `base / 2` so a broken endpoint is
 * never hammered in a tight loop.
 */

/** Back-off parameters, in milliseconds. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * Delay before retry number `attempt` (0-based). `random` returns [0, 1).
 * Always within [min(base/2, max), max].
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(options.baseMs / 2, options.maxMs);
  return Math.round(floor + random() * Math.max(0, ceiling - floor));
}

/** `ms` scaled by a uniform factor in [1 - spread, 1 + spread] (spread in [0, 1)). */
export function jittered(ms: number, spread: number, random: () => number = Math.random): number {
  return Math.round(ms * (1 - spread + 2 * spread * random()));
}
