/**
 * The value syntax every `sfu-agent` subcommand shares: the environment
 * variable of a flag, durations and `host:port` listen addresses.
 */

/** A `host:port` pair to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Name of the environment variable of a flag: `SFU_AGENT_` + upper snake case. */
export function envName(flag: string): string {
  return `SFU_AGENT_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/**
 * Parses a duration: a non-negative decimal number followed by `ms`, `s`,
 * `m` or `h`. Returns milliseconds, or null when malformed.
 */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  const ms = Math.round(n * unit);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** Parses `host:port` (IPv6 as `[::1]:7070`); port 0 means "any free port". Returns null when malformed. */
export function parseListenAddress(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: (m[1] ?? m[2]) as string, port };
}
