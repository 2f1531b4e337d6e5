/**
 * WebSocket close codes of sfu-config/1 (PROTOCOL.md "Closing"). Either side
 * closes with one of these, and a human-readable reason (<= 123 bytes), on a
 * protocol violation. Receivers treat unknown 4xxx codes as 4000.
 */
export const CloseCode = {
  /** Generic protocol violation. */
  PROTOCOL_ERROR: 4000,
  /** A frame was not valid UTF-8 JSON, or was binary. */
  BAD_JSON: 4001,
  /** A frame's `type` is unknown to the receiver. */
  UNKNOWN_TYPE: 4002,
  /** A frame does not match its JSON Schema. */
  INVALID_MESSAGE: 4003,
  /** A nonce that was never issued, or a config nonce that did not increase. */
  BAD_NONCE: 4004,
  /** The first SFU frame was not `hello`, or `hello` was sent twice. */
  HELLO_REQUIRED: 4005,
  /** `hello` did not arrive in time after the connection opened. */
  HELLO_TIMEOUT: 4006,
  /** No common protocol or schema version. */
  UNSUPPORTED_PROTOCOL: 4007,
  /** A frame exceeded MAX_FRAME_BYTES (messages-schema.ts). */
  FRAME_TOO_LARGE: 4009,
  /** The agent already serves an SFU; one connection at a time. */
  ALREADY_CONNECTED: 4010,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];
