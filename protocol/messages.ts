/**
 * Parsing and validation of sfu-config/1 frames and SNS events. Expected
 * failures are returned values carrying the close code to use, never throws.
 */
import type { ValidateFunction } from "ajv";
import { createAjv } from "./ajv.ts";
import { type JsonLimits, parseBoundedJson } from "./bounded-json.ts";
import { CloseCode, type CloseCodeValue } from "./close-codes.ts";
import {
  type AckMessage,
  ackSchema,
  type ConfigMessage,
  configMessageSchema,
  type HealthEvent,
  type HealthMessage,
  type HelloMessage,
  healthEventSchema,
  healthMessageSchema,
  helloSchema,
  MAX_FRAME_BYTES,
  type NackMessage,
  nackSchema,
  type ReloadEvent,
  reloadEventSchema,
  type StatusEvent,
  statusEventSchema,
} from "./messages-schema.ts";
import { type SecretsReloadMessage, secretsReloadSchema } from "./secrets-reload.ts";
import { MAX_YAML_DEPTH, MAX_YAML_KEYS, MAX_YAML_NODES } from "./yaml-limits.ts";

/**
 * Limits on one sfu-config/1 frame, either way: MAX_FRAME_BYTES, and the
 * config file's own depth, value and key limits plus the room the frame's
 * envelope (`{type, nonce, config: ...}`) takes around a config.
 */
export const FRAME_JSON_LIMITS: Readonly<JsonLimits> = {
  maxBytes: MAX_FRAME_BYTES,
  maxDepth: MAX_YAML_DEPTH + 2,
  maxValues: MAX_YAML_NODES + 16,
  maxKeys: MAX_YAML_KEYS + 16,
};

/** Most bytes of one SQS message body (SQS's own maximum message size is 256 KiB). */
export const MAX_EVENT_BODY_BYTES = 256 * 1024;
/**
 * Limits on one SQS message body (a reload, status or health event, raw or in
 * its SNS envelope): the envelope's string fields and its Message text. An
 * event holds a few dozen values; the limits leave room and refuse floods.
 */
export const EVENT_JSON_LIMITS: Readonly<JsonLimits> = {
  maxBytes: MAX_EVENT_BODY_BYTES,
  maxDepth: 8,
  maxValues: 1_000,
  maxKeys: 256,
};

const ajv = createAjv();
const validators = {
  hello: ajv.compile(helloSchema),
  config: ajv.compile(configMessageSchema),
  ack: ajv.compile(ackSchema),
  nack: ajv.compile(nackSchema),
  "secrets-reload": ajv.compile(secretsReloadSchema),
  health: ajv.compile(healthMessageSchema),
} as const;
const validateReload = ajv.compile(reloadEventSchema);
const validateStatus = ajv.compile(statusEventSchema);
const validateHealthEvent = ajv.compile(healthEventSchema);

/** A frame that could not be accepted, with the close code the receiver must use. */
export interface FrameError {
  ok: false;
  closeCode: CloseCodeValue;
  reason: string;
}
export type FrameResult<T> = { ok: true; message: T } | FrameError;

function describe(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`).join("; ");
}

/** Truncates a close reason to the 123 bytes a WebSocket close frame allows. */
export function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out, "utf8") > 123) out = out.slice(0, -1);
  return out;
}

function parseFrame(data: string | Buffer, allowed: readonly (keyof typeof validators)[]): FrameResult<unknown> {
  const size = typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
  if (size > MAX_FRAME_BYTES) {
    return {
      ok: false,
      closeCode: CloseCode.FRAME_TOO_LARGE,
      reason: `frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`,
    };
  }
  const parsed = parseBoundedJson(data, FRAME_JSON_LIMITS, "frame");
  if (!parsed.ok) {
    // Too deep or too many values/keys is valid JSON that no message schema admits: 4003.
    const closeCode =
      parsed.code === "BAD_JSON" || parsed.code === "NOT_UTF8"
        ? CloseCode.BAD_JSON
        : parsed.code === "TOO_LARGE"
          ? CloseCode.FRAME_TOO_LARGE
          : CloseCode.INVALID_MESSAGE;
    return { ok: false, closeCode, reason: closeReason(parsed.message) };
  }
  const value = parsed.value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, closeCode: CloseCode.INVALID_MESSAGE, reason: "frame is not a JSON object" };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !(allowed as readonly string[]).includes(type)) {
    return {
      ok: false,
      closeCode: CloseCode.UNKNOWN_TYPE,
      reason: closeReason(`unknown message type ${JSON.stringify(type)}`),
    };
  }
  const validate: ValidateFunction = validators[type as keyof typeof validators];
  if (!validate(value)) {
    return {
      ok: false,
      closeCode: CloseCode.INVALID_MESSAGE,
      reason: closeReason(`invalid ${type}: ${describe(validate)}`),
    };
  }
  return { ok: true, message: value };
}

/**
 * Parses a frame received by the agent: hello, ack, nack, and the optional
 * `health` frame (which this agent always advertises).
 */
export function parseSfuFrame(
  data: string | Buffer,
): FrameResult<HelloMessage | AckMessage | NackMessage | HealthMessage> {
  return parseFrame(data, ["hello", "ack", "nack", "health"]) as FrameResult<
    HelloMessage | AckMessage | NackMessage | HealthMessage
  >;
}

/**
 * Parses a frame received by the SFU: `config`, and `secrets-reload` (which
 * the agent sends only to an SFU advertising the feature in its hello).
 */
export function parseAgentFrame(data: string | Buffer): FrameResult<ConfigMessage | SecretsReloadMessage> {
  return parseFrame(data, ["config", "secrets-reload"]) as FrameResult<ConfigMessage | SecretsReloadMessage>;
}

/** Result of parsing an SQS message body. */
export type EventResult<T> = { ok: true; event: T; envelope: boolean } | { ok: false; reason: string };

/**
 * Parses an SQS message body holding a reload event, either raw (raw message
 * delivery) or inside the standard SNS JSON envelope (`{"Type":"Notification","Message":"..."}`).
 */
export function parseReloadEvent(body: string): EventResult<ReloadEvent> {
  return parseEvent(body, validateReload) as EventResult<ReloadEvent>;
}

/** Parses a status event, raw or in an SNS envelope. */
export function parseStatusEvent(body: string): EventResult<StatusEvent> {
  return parseEvent(body, validateStatus) as EventResult<StatusEvent>;
}

/** Parses a call-health event (`sfu-config.health`), raw or in an SNS envelope. */
export function parseHealthEvent(body: string): EventResult<HealthEvent> {
  return parseEvent(body, validateHealthEvent) as EventResult<HealthEvent>;
}

function parseEvent(body: string, validate: ValidateFunction): EventResult<unknown> {
  const unwrapped = parseEventJson(body);
  if (!unwrapped.ok) return unwrapped;
  const { value, envelope } = unwrapped;
  if (!validate(value)) return { ok: false, reason: describe(validate).slice(0, MAX_REASON_CHARS) };
  return { ok: true, event: value, envelope };
}

/** Longest reason text returned for a refused message body (errors are capped). */
const MAX_REASON_CHARS = 1024;

/**
 * Parses an SQS message body within EVENT_JSON_LIMITS and unwraps the standard
 * SNS envelope (`{"Type":"Notification","Message":"..."}`, whose Message text
 * is parsed within the same limits). Never throws; reasons are capped and hold
 * no part of the body.
 */
export function parseEventJson(
  body: string,
): { ok: true; value: unknown; envelope: boolean } | { ok: false; reason: string } {
  const outer = parseBoundedJson(body, EVENT_JSON_LIMITS, "message body");
  if (!outer.ok) return { ok: false, reason: outer.message };
  let value = outer.value;
  let envelope = false;
  if (
    typeof value === "object" &&
    value !== null &&
    (value as { Type?: unknown }).Type === "Notification" &&
    typeof (value as { Message?: unknown }).Message === "string"
  ) {
    envelope = true;
    const inner = parseBoundedJson((value as { Message: string }).Message, EVENT_JSON_LIMITS, "SNS envelope Message");
    if (!inner.ok) return { ok: false, reason: inner.message };
    value = inner.value;
  }
  return { ok: true, value, envelope };
}
