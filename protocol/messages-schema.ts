/**
 * JSON Schemas (draft 2020-12) of every wire message of sfu-config/1
 * (specified in PROTOCOL.md) and the TypeScript types derived from them, so
 * the validator and the types can never disagree. The JSON files under `protocol/schemas/` are generated from these
 * objects by `npm run schemas`; a test keeps them identical.
 */
import type { FromSchema } from "json-schema-to-ts";
import { HASH_PATTERN } from "./hash.ts";

/** WebSocket subprotocol name of sfu-config/1. */
export const SUBPROTOCOL = "sfu-config.v1";
/** Protocol number sent in `hello.protocol`. */
export const PROTOCOL_VERSION = 1;
/** Largest frame either side accepts, in bytes (larger frames close with 4009). */
export const MAX_FRAME_BYTES = 1024 * 1024;

const SCHEMA_BASE = "https://sfu-config.dev/schemas/";
const hash = { type: "string", pattern: HASH_PATTERN } as const;
const version = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const nonce = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;
const appliedRef = {
  anyOf: [
    {
      type: "object",
      additionalProperties: false,
      required: ["version", "hash"],
      properties: { version, hash },
    },
    { type: "null" },
  ],
} as const;

/** Error codes a NACK may carry. Receivers must accept unknown codes. */
export const NACK_CODES = ["INVALID_CONFIG", "UNSUPPORTED_SCHEMA", "RESTART_REQUIRED", "APPLY_FAILED"] as const;

/** SFU -> agent: first frame on every connection. */
export const helloSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}hello.schema.json`,
  title: "hello (SFU -> agent)",
  type: "object",
  additionalProperties: true,
  required: ["type", "protocol", "sfu", "schemaVersions", "applied"],
  properties: {
    type: { const: "hello" },
    protocol: { const: 1 },
    sfu: {
      type: "object",
      additionalProperties: true,
      required: ["name", "version"],
      properties: {
        name: { type: "string", minLength: 1, maxLength: 256 },
        version: { type: "string", minLength: 1, maxLength: 256 },
      },
    },
    schemaVersions: { type: "array", minItems: 1, items: { type: "integer", minimum: 1 } },
    applied: appliedRef,
  },
} as const;

/** agent -> SFU: one config version to apply. */
export const configMessageSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}config-message.schema.json`,
  title: "config (agent -> SFU)",
  type: "object",
  additionalProperties: true,
  required: ["type", "nonce", "version", "hash", "revision", "schemaVersion", "config"],
  properties: {
    type: { const: "config" },
    nonce,
    version: { ...version, minimum: 1 },
    hash,
    revision: { anyOf: [{ type: "string", minLength: 1, maxLength: 256 }, { type: "null" }] },
    schemaVersion: { type: "integer", minimum: 1 },
    config: { type: "object" },
  },
} as const;

/** SFU -> agent: the config of `nonce` is applied. */
export const ackSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}ack.schema.json`,
  title: "ack (SFU -> agent)",
  type: "object",
  additionalProperties: true,
  required: ["type", "nonce", "version", "hash"],
  properties: { type: { const: "ack" }, nonce, version: { ...version, minimum: 1 }, hash },
} as const;

/** SFU -> agent: the config of `nonce` was not applied; `applied` is still in force. */
export const nackSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}nack.schema.json`,
  title: "nack (SFU -> agent)",
  type: "object",
  additionalProperties: true,
  required: ["type", "nonce", "version", "hash", "applied", "error"],
  properties: {
    type: { const: "nack" },
    nonce,
    version: { ...version, minimum: 1 },
    hash,
    applied: appliedRef,
    error: {
      type: "object",
      additionalProperties: true,
      required: ["code", "message"],
      properties: {
        code: { type: "string", minLength: 1, maxLength: 64, examples: [...NACK_CODES] },
        message: { type: "string", maxLength: 8192 },
        path: { type: "string", maxLength: 1024 },
      },
    },
  },
} as const;

/** SNS reload event published by `sfu-agent notify` (raw or in an SNS envelope). */
export const reloadEventSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}reload-event.schema.json`,
  title: "sfu-config.reload event",
  type: "object",
  additionalProperties: true,
  required: ["type", "revision", "hash", "configMap", "issuedAt"],
  properties: {
    type: { const: "sfu-config.reload" },
    revision: { anyOf: [{ type: "string", minLength: 1, maxLength: 256 }, { type: "null" }] },
    hash,
    configMap: { anyOf: [{ type: "string", pattern: "^[a-z0-9.-]+/[a-z0-9.-]+$" }, { type: "null" }] },
    issuedAt: { type: "string", format: "date-time" },
  },
} as const;

/** Outcomes a settlement can have. */
export const SETTLEMENT_OUTCOMES = ["applied", "rejected", "invalid", "timeout", "superseded"] as const;
/**
 * Outcomes a status event can carry: a pod's settlement, or `halted`, which
 * the rollout driver (`sfu-agent rollout`) publishes once when it halts a
 * progressive rollout (its `pod` is the driver, not a pod).
 */
export const STATUS_EVENT_OUTCOMES = [...SETTLEMENT_OUTCOMES, "halted"] as const;

/** Status event an agent publishes per settlement (optional status topic). */
export const statusEventSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}status-event.schema.json`,
  title: "sfu-config.status event",
  type: "object",
  additionalProperties: true,
  required: ["type", "pod", "revision", "hash", "version", "outcome", "error", "at"],
  properties: {
    type: { const: "sfu-config.status" },
    pod: { type: "string", minLength: 1 },
    revision: { anyOf: [{ type: "string" }, { type: "null" }] },
    hash,
    version: { anyOf: [version, { type: "null" }] },
    outcome: { enum: [...STATUS_EVENT_OUTCOMES] },
    error: {
      anyOf: [
        {
          type: "object",
          additionalProperties: true,
          required: ["code", "message"],
          properties: { code: { type: "string" }, message: { type: "string" } },
        },
        { type: "null" },
      ],
    },
    at: { type: "string", format: "date-time" },
  },
} as const;

export type HelloMessage = FromSchema<typeof helloSchema>;
export type ConfigMessage = FromSchema<typeof configMessageSchema>;
export type AckMessage = FromSchema<typeof ackSchema>;
export type NackMessage = FromSchema<typeof nackSchema>;
export type ReloadEvent = FromSchema<typeof reloadEventSchema>;
export type StatusEvent = FromSchema<typeof statusEventSchema>;
export type NackCode = (typeof NACK_CODES)[number];
export type SettlementOutcome = (typeof SETTLEMENT_OUTCOMES)[number];
/** What an SFU reports it has applied. */
export type AppliedRef = { version: number; hash: string } | null;
/** Frames the SFU sends. */
export type SfuToAgentMessage = HelloMessage | AckMessage | NackMessage | HealthMessage;
/** Frames the agent sends. */
export type AgentToSfuMessage = ConfigMessage;

// --- Call health (optional feature) ---------------------------------------

/**
 * Response header of the WebSocket upgrade by which an agent advertises the
 * optional frames it accepts (comma-separated tokens). An SFU sends an
 * optional frame only when the token is listed, so an agent that predates
 * the feature never receives a type it would close the connection for.
 */
export const FEATURES_HEADER = "sfu-config-features";
/** Feature token of the `health` frame in {@link FEATURES_HEADER}. */
export const HEALTH_FEATURE = "health";

const count = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const healthCountersProperties = {
  hash,
  since: { type: "string", format: "date-time" },
  joins: count,
  joinFailures: count,
  iceConnected: count,
  iceFailures: count,
} as const;
const healthCountersRequired = ["hash", "since", "joins", "joinFailures", "iceConnected", "iceFailures"] as const;

/**
 * SFU -> agent (optional, only when the agent advertised `health`): call
 * health counters since the config `hash` was applied at `since`.
 */
export const healthMessageSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}health.schema.json`,
  title: "health (SFU -> agent, optional)",
  type: "object",
  additionalProperties: true,
  required: ["type", ...healthCountersRequired],
  properties: { type: { const: "health" }, ...healthCountersProperties },
} as const;

/** Health event an agent publishes to the status topic while a progressive rollout runs. */
export const healthEventSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: `${SCHEMA_BASE}health-event.schema.json`,
  title: "sfu-config.health event",
  type: "object",
  additionalProperties: true,
  required: ["type", "pod", "rank", "hash", "stage", "health", "at"],
  properties: {
    type: { const: "sfu-config.health" },
    pod: { type: "string", minLength: 1 },
    rank: { type: "number", minimum: 0, exclusiveMaximum: 1 },
    hash,
    stage: { type: "string", minLength: 1, maxLength: 64 },
    health: {
      type: "object",
      additionalProperties: true,
      required: [...healthCountersRequired],
      properties: healthCountersProperties,
    },
    at: { type: "string", format: "date-time" },
  },
} as const;

export type HealthMessage = FromSchema<typeof healthMessageSchema>;
/** The counters of a `health` frame (the frame without `type`), and of a health event's `health`. */
export interface HealthCounters {
  /** The config hash the counters are about (the one applied). */
  hash: string;
  /** ISO 8601 time that hash was applied: the counters start there. */
  since: string;
  /** Joins handled: admitted or refused. */
  joins: number;
  /** Joins refused (limits) or failed before the peer connection connected (no answer, negotiation failure). */
  joinFailures: number;
  /** Peer connections that reached `connected`. */
  iceConnected: number;
  /** Peer connections that reached `failed`, or did not connect within 10 s of the client's first answer. */
  iceFailures: number;
}
export type HealthEvent = FromSchema<typeof healthEventSchema>;
