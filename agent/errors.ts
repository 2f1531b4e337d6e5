/**
 * Typed errors of the agent. Each class carries a literal `code` so callers
 * can branch without string matching. These are thrown only for programming
 * or start-up failures (bad options, a port in use, an unreadable token
 * file); expected runtime outcomes (an invalid config file, a NACK) are
 * returned values and store events, never throws.
 */

/** Base class of every agent error. */
export abstract class AgentError extends Error {
  abstract readonly code: string;
}

/** A command-line flag or environment variable is invalid (`sfu-agent run` exits 2). */
export class OptionsError extends AgentError {
  readonly code = "INVALID_OPTIONS" as const;
  override name = "OptionsError";
}

/** A server could not listen on its address (port in use, bad host). */
export class ListenError extends AgentError {
  readonly code = "LISTEN_FAILED" as const;
  override name = "ListenError";
}

/** The `--token-file` could not be read or is empty. */
export class TokenFileError extends AgentError {
  readonly code = "TOKEN_FILE" as const;
  override name = "TokenFileError";
}

/** A component was used in the wrong lifecycle state (e.g. started twice). */
export class LifecycleError extends AgentError {
  readonly code = "LIFECYCLE" as const;
  override name = "LifecycleError";
}
