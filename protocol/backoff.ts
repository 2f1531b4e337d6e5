/**
 * The retry rule of sfu-config/1 (PROTOCOL.md section 3): an SFU re-dials the
 * agent, and the agent's HTTP push mode retries a POST, after
 * `min(maxMs, baseMs * 2^attempt)` times a uniform factor in [0.5, 1].
 */

/** Delay in ms before retry number `attempt` (0-based); never below `min(baseMs, maxMs) / 2`. `random` returns [0, 1). */
export function reconnectDelay(
  attempt: number,
  options: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 40));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}
