/**
 * Start-up errors of `sfu-agent admission` (the command exits 1 with the
 * message). Expected runtime outcomes (an invalid config, a malformed review,
 * a rotated certificate that does not load) are replies, metrics and log
 * lines, never throws.
 */
import { AgentError } from "../errors.ts";

/** The serving certificate or key cannot be read, or they do not form a usable pair. */
export class TlsFilesError extends AgentError {
  readonly code = "TLS_FILES" as const;
  override name = "TlsFilesError";
}
