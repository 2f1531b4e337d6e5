/**
 * Time for the queue module: wall clock and timers behind one interface so
 * the settlement state machine, the heartbeat and the sweeper can be driven
 * by a manual clock in unit tests.
 */

/** Opaque handle returned by {@link Timers.setTimeout}. */
export type TimerHandle = unknown;

/** Wall clock plus one-shot timers. */
export interface Timers {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; real timers are unref'd so they never keep a process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock and `setTimeout` (unref'd). */
export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Resolves after `ms`, or early (without error) when `signal` aborts. Used for
 * back-off sleeps that `stop()` must be able to cut short.
 */
export function sleep(timers: Timers, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      timers.clearTimeout(handle);
      resolve();
    };
    const handle = timers.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
