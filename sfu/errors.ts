/**
 * Typed errors of the SFU. Each carries a literal `code`. Expected outcomes
 * (a full room, a refused config) are returned values elsewhere; these are
 * thrown only for misuse (bad options) or failures the caller cannot plan for.
 */

/** Codes of {@link SfuError}. */
export type SfuErrorCode =
  | "INVALID_OPTIONS"
  | "NOT_STARTED"
  | "ALREADY_STARTED"
  | "NEGOTIATION_FAILED"
  | "CONFIG_REQUIRED"
  | "LISTEN_FAILED";

/** Base error of the SFU; `code` says what went wrong. */
export class SfuError extends Error {
  readonly code: SfuErrorCode;
  constructor(code: SfuErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SfuError";
    this.code = code;
  }
}

/** Options given to a constructor were invalid. */
export class InvalidOptionsError extends SfuError {
  constructor(message: string) {
    super("INVALID_OPTIONS", message);
    this.name = "InvalidOptionsError";
  }
}

/** Codes a client sees in a signalling `error` message (sfu/README.md). */
export const SignalErrorCode = {
  /** The frame was not JSON or not a known message. */
  BAD_MESSAGE: "BAD_MESSAGE",
  /** A room operation was sent before `join`. */
  NOT_JOINED: "NOT_JOINED",
  /** `join` was sent twice on one socket. */
  ALREADY_JOINED: "ALREADY_JOINED",
  /** `limits.maxRooms` rooms exist already. */
  ROOM_LIMIT: "ROOM_LIMIT",
  /** The room holds `limits.maxParticipantsPerRoom` participants already. */
  PARTICIPANT_LIMIT: "PARTICIPANT_LIMIT",
  /** No config has been applied yet; the SFU is not ready. */
  NOT_READY: "NOT_READY",
  /** An answer or candidate could not be applied. */
  NEGOTIATION_FAILED: "NEGOTIATION_FAILED",
} as const;

export type SignalErrorCodeValue = (typeof SignalErrorCode)[keyof typeof SignalErrorCode];
