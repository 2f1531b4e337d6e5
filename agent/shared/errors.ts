/**
 * The agent's error idiom: a start-up failure (a bad flag, a port in use, an
 * unreadable file) is an {@link AgentError} with a literal `code` that the
 * commands map to their exit code ({@link exitCodeOf}) and print with its
 * message; programmer misuse (bad constructor options, a component started
 * twice) is a standard `TypeError`, `RangeError` or `Error`; expected
 * outcomes (an invalid config, a NACK) are returned values, never throws.
 * The codes are listed in docs/troubleshooting.md.
 */

/** Literal codes of {@link AgentError}, each with its exit code in {@link EXIT_CODES}. */
export type AgentErrorCode =
  /** A flag or environment variable is invalid. */
  | "INVALID_OPTIONS"
  /** A server could not listen on its address (port in use, bad host). */
  | "LISTEN_FAILED"
  /** The `--token-file` could not be read or is empty. */
  | "TOKEN_FILE"
  /** The admission webhook's serving certificate or key cannot be read, or they do not form a pair. */
  | "TLS_FILES"
  /** The queue settings derived from the flags are out of range. */
  | "QUEUE_OPTIONS"
  /** An AWS call failed in a way the caller must see (e.g. provisioning gave up). */
  | "QUEUE_AWS"
  /** An option of the conformance kit is invalid. */
  | "CONFORMANCE_OPTIONS"
  /** The base config the conformance kit pushes could not be loaded or is invalid. */
  | "CONFORMANCE_BASE_CONFIG"
  /** The conformance kit's WebSocket server could not listen. */
  | "CONFORMANCE_LISTEN_FAILED";

/** The exit code of a command that failed with each code: 2 for what the user typed, 1 for the rest. */
export const EXIT_CODES: Readonly<Record<AgentErrorCode, 1 | 2>> = {
  INVALID_OPTIONS: 2,
  LISTEN_FAILED: 1,
  TOKEN_FILE: 1,
  TLS_FILES: 1,
  QUEUE_OPTIONS: 2,
  QUEUE_AWS: 1,
  CONFORMANCE_OPTIONS: 2,
  CONFORMANCE_BASE_CONFIG: 2,
  CONFORMANCE_LISTEN_FAILED: 1,
};

/** A start-up failure of the agent's commands; `code` tells which (see the module comment). */
export class AgentError<C extends AgentErrorCode = AgentErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgentError";
    this.code = code;
  }
}

/** The exit code for a failure: {@link EXIT_CODES} for an {@link AgentError}, 1 for anything else. */
export function exitCodeOf(err: unknown): 1 | 2 {
  return err instanceof AgentError ? EXIT_CODES[err.code as AgentErrorCode] : 1;
}
