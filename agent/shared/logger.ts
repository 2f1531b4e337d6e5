/**
 * The agent's JSON logger (pino). Level is changeable at run time
 * (`logger.level = "debug"`; `sfu-agent run` toggles debug on SIGUSR2).
 * Credential-bearing fields are redacted by path as a second line of defence:
 * the agent never passes a config, a token or request headers to a log call
 * in the first place.
 *
 * Every line is one JSON object with unique keys: pino writes a child's
 * bindings and the call's own fields side by side, so `child({component})`
 * of a logger already bound to `component`, or a call passing a bound field
 * again, would repeat a key, which strict JSON log pipelines reject or
 * mangle. {@link uniqueKeys} rewrites such a line (the last value wins: the
 * innermost binding or the call's field) before it reaches the destination.
 */
import { type DestinationStream, type Logger, pino } from "pino";
import type { LogLevel } from "../../protocol/config-schema.ts";

/** Field paths pino replaces with "[redacted]" wherever they appear (up to three levels deep). */
export const REDACTED_PATHS: readonly string[] = [
  "credential",
  "*.credential",
  "*.*.credential",
  "config.webrtc.turnServers[*].credential",
  "token",
  "*.token",
  "*.*.token",
  "authorization",
  "*.authorization",
  "*.*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "password",
  "*.password",
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level: LogLevel;
  /** Where JSON lines go; stdout (fd 1) when omitted. Tests pass a stream to capture them. */
  destination?: DestinationStream;
  /** Fields added to every line (e.g. `{ pod }`). */
  base?: Record<string, unknown>;
}

/**
 * Returns `line` (one JSON object, optionally newline-terminated) with each
 * key once: the position of its first occurrence, the value of its last.
 * Lines without a repeated key, or that are not JSON, are returned as they are.
 */
export function uniqueKeys(line: string): string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof value !== "object" || value === null) return line;
  const out = JSON.stringify(value);
  // Same length after a round trip: no key was dropped (pino writes no spaces), so keep the original bytes.
  const trimmed = line.endsWith("\n") ? line.slice(0, -1) : line;
  if (out.length === trimmed.length) return line;
  return line.endsWith("\n") ? `${out}\n` : out;
}

/** Creates the agent logger: one JSON object per line with unique keys, ISO timestamps, redaction of credential fields. */
export function createLogger(options: LoggerOptions): Logger {
  const target = options.destination ?? pino.destination({ fd: 1, sync: true });
  const destination: DestinationStream = { write: (line: string) => target.write(uniqueKeys(line)) };
  return pino(
    {
      level: options.level,
      base: { name: "sfu-agent", ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
