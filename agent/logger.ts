/**
 * The agent's JSON logger (pino). Level is changeable at run time
 * (`logger.level = "debug"`; `sfu-agent run` toggles debug on SIGUSR2).
 * Credential-bearing fields are redacted by path as a second line of defence:
 * the agent never passes a config, a token or request headers to a log call
 * in the first place.
 */
import { type DestinationStream, type Logger, pino } from "pino";
import type { LogLevel } from "../protocol/config-schema.ts";

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

/** Creates the agent logger: one JSON object per line, ISO timestamps, redaction of credential fields. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { name: "sfu-agent", ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}
