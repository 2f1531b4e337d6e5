/**
 * An agent logger ({@link createLogger}: JSON lines, redaction) whose lines
 * are kept in memory, for tests that assert on logs.
 */
import { Writable } from "node:stream";
import type { Logger } from "pino";
import { createLogger, type LoggerOptions } from "../../agent/shared/logger.ts";

/** A logger and the raw JSON lines it wrote so far (one entry per line, in order). */
export function capturedLogger(level: LoggerOptions["level"]): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(line);
      cb();
    },
  });
  return { logger: createLogger({ level, destination }), logs };
}
