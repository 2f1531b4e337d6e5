/**
 * Progressive rollout: the schema of the rollout policy (`rollout.yaml`, the
 * second key of the config ConfigMap) and of the durable rollout state (one
 * JSON object the rollout driver writes and every agent reads), and the
 * `rollout` field the driver adds to a reload event.
 *
 * The JSON files `protocol/schemas/rollout.v1.schema.json` and
 * `protocol/schemas/rollout-state.schema.json` are generated from these
 * objects (`npm run schemas`); a test keeps them identical.
 */
import type { FromSchema } from "json-schema-to-ts";
import type { NormalisedConfig } from "./config-schema-v2.ts";
import { HASH_PATTERN } from "./hash.ts";

/** Canonical `$id` of the published rollout policy schema. */
export const ROLLOUT_POLICY_SCHEMA_ID = "https://sfu-config.dev/schemas/rollout.v1.schema.json";
/** Canonical `$id` of the published rollout state schema. */
export const ROLLOUT_STATE_SCHEMA_ID = "https://sfu-config.dev/schemas/rollout-state.schema.json";
/** `type` of the rollout state object. */
export const ROLLOUT_STATE_TYPE = "sfu-config.rollout-state";
/** Bake time of a step that names none: 5 minutes. */
export const DEFAULT_BAKE_MS = 5 * 60_000;
/** Pattern of a bake duration: a decimal number and `s`, `m` or `h`. */
export const BAKE_PATTERN = "^[0-9]{1,6}(\\.[0-9]{1,3})?(s|m|h)$";
/** Most steps a policy may list. */
export const MAX_ROLLOUT_STEPS = 20;

/** Stages a pod reports during a rollout. */
export const ROLLOUT_STAGES = ["canary", "held", "applied", "reverted"] as const;
/** A pod's stage: in the cohort (`canary`), holding the stable config (`held`), on the new config (`applied`), back on stable after a halt (`reverted`). */
export type RolloutStage = (typeof ROLLOUT_STAGES)[number];
/** States of a rollout candidate. */
export const ROLLOUT_STATES = ["running", "halted", "complete"] as const;
/** State of a rollout candidate. */
export type RolloutCandidateState = (typeof ROLLOUT_STATES)[number];

const rate = { type: "number", minimum: 0, maximum: 1 } as const;

/** JSON Schema (draft 2020-12) of the rollout policy, schemaVersion 1. */
export const rolloutPolicySchemaV1 = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: ROLLOUT_POLICY_SCHEMA_ID,
  title: "sfu-config rollout policy v1",
  description:
    "Progressive rollout of a config change: the steps (percent of pods, bake time) and the criteria that halt it.",
  type: "object",
  additionalProperties: false,
  required: ["schemaVersion", "steps"],
  properties: {
    schemaVersion: { const: 1, description: "Rollout policy schema version; 1 for this schema." },
    steps: {
      type: "array",
      minItems: 1,
      maxItems: MAX_ROLLOUT_STEPS,
      description: "Steps in increasing percent; the last is 100.",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["percent"],
        properties: {
          percent: { type: "number", exclusiveMinimum: 0, maximum: 100, description: "Share of the pods, (0, 100]." },
          bake: {
            type: "string",
            pattern: BAKE_PATTERN,
            description: "How long the step bakes before it widens: 30s, 5m, 1h (default 5m).",
          },
        },
      },
    },
    halt: {
      type: "object",
      additionalProperties: false,
      description: "Halt criteria besides a NACK, an invalid config or a propagation timeout (those always halt).",
      properties: {
        health: {
          type: "object",
          additionalProperties: false,
          properties: {
            minJoins: {
              type: "integer",
              minimum: 1,
              maximum: 1_000_000,
              description: "Cohort joins below this are 'no traffic': the step bakes on (default 20).",
            },
            maxJoinFailureRate: { ...rate, description: "Highest join failure rate of the cohort (default 0.05)." },
            maxIceFailureRate: { ...rate, description: "Highest ICE failures per join of the cohort (default 0.10)." },
            maxRatioToBaseline: {
              type: "number",
              minimum: 1,
              maximum: 1000,
              description: "Halt when a cohort rate exceeds this times the baseline's (default 2.0).",
            },
          },
        },
        noTraffic: {
          enum: ["wait", "proceed"],
          description: "A step without enough joins: wait (bake on, reported 'no traffic') or proceed (default wait).",
        },
      },
    },
  },
} as const;

/** A rollout policy as written (optional fields may be absent). */
export type RolloutPolicyV1 = FromSchema<typeof rolloutPolicySchemaV1>;

/** Defaults of the optional policy fields. */
export const ROLLOUT_POLICY_DEFAULTS = {
  bakeMs: DEFAULT_BAKE_MS,
  minJoins: 20,
  maxJoinFailureRate: 0.05,
  maxIceFailureRate: 0.1,
  maxRatioToBaseline: 2.0,
  noTraffic: "wait",
} as const;

/** The normalised policy: defaults filled in, bake times in milliseconds. */
export interface RolloutPolicy {
  schemaVersion: 1;
  steps: { percent: number; bakeMs: number }[];
  halt: {
    health: { minJoins: number; maxJoinFailureRate: number; maxIceFailureRate: number; maxRatioToBaseline: number };
    noTraffic: "wait" | "proceed";
  };
}

const hash = { type: "string", pattern: HASH_PATTERN } as const;
const revision = { anyOf: [{ type: "string", minLength: 1, maxLength: 256 }, { type: "null" }] } as const;

/** JSON Schema of the durable rollout state (the S3 object). */
export const rolloutStateSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: ROLLOUT_STATE_SCHEMA_ID,
  title: "sfu-config rollout state",
  description:
    "The one durable record of a progressive rollout, written only by the rollout driver and read by every agent.",
  type: "object",
  additionalProperties: true,
  required: ["type", "updatedAt", "stable", "candidate"],
  properties: {
    type: { const: ROLLOUT_STATE_TYPE },
    updatedAt: { type: "string", format: "date-time" },
    stable: {
      description: "The config every pod outside the cohort runs, with its content; null before the first rollout.",
      anyOf: [
        {
          type: "object",
          additionalProperties: true,
          required: ["hash", "revision", "config"],
          properties: { hash, revision, config: { type: "object" } },
        },
        { type: "null" },
      ],
    },
    candidate: {
      description: "The config being rolled out; null when none.",
      anyOf: [
        {
          type: "object",
          additionalProperties: true,
          required: ["id", "hash", "revision", "state", "step", "threshold", "reason"],
          properties: {
            id: { type: "string", minLength: 1, maxLength: 128 },
            hash,
            revision,
            state: { enum: [...ROLLOUT_STATES] },
            step: { type: "integer", minimum: 0, maximum: MAX_ROLLOUT_STEPS },
            threshold: { type: "number", minimum: 0, maximum: 1 },
            reason: {
              anyOf: [
                {
                  type: "object",
                  additionalProperties: true,
                  required: ["step", "criterion", "pods", "detail"],
                  properties: {
                    step: { type: "integer", minimum: 0 },
                    criterion: { type: "string", minLength: 1, maxLength: 256 },
                    pods: { type: "array", maxItems: 10_000, items: { type: "string", maxLength: 256 } },
                    detail: { type: "string", maxLength: 8192 },
                  },
                },
                { type: "null" },
              ],
            },
          },
        },
        { type: "null" },
      ],
    },
  },
} as const;

/** Why a rollout halted. */
export interface RolloutHaltReason {
  /** The step (0-based index into the policy's steps) that halted. */
  step: number;
  /** The criterion: `nack`, `invalid`, `timeout`, `joinFailureRate`, `iceFailureRate`, ... */
  criterion: string;
  /** The cohort pods that tripped it. */
  pods: string[];
  /** Human-readable figures. */
  detail: string;
}

/** The config being rolled out. */
export interface RolloutCandidate {
  /** Unique per rollout (a UUID); a newer rollout writes a new id. */
  id: string;
  hash: string;
  revision: string | null;
  state: RolloutCandidateState;
  /** Index of the current step into the policy's steps. */
  step: number;
  /** Cohort cutoff: a pod is in the cohort iff its rank < threshold (0: nobody, 1: everyone). */
  threshold: number;
  reason: RolloutHaltReason | null;
}

/** The stable config: what every pod outside the cohort runs. */
export interface RolloutStable {
  hash: string;
  revision: string | null;
  /** The normalised config (its canonical hash is `hash`). */
  config: NormalisedConfig;
}

/** The durable rollout state. */
export interface RolloutState {
  type: typeof ROLLOUT_STATE_TYPE;
  /** ISO 8601 time of the write. */
  updatedAt: string;
  stable: RolloutStable | null;
  candidate: RolloutCandidate | null;
}

/** The `rollout` field the driver adds to a reload event. */
export interface ReloadRolloutField {
  id: string;
  step: number;
  threshold: number;
}

/**
 * The `rollout` field of a parsed reload event: the field when well-formed,
 * null when absent, `"malformed"` when present but wrong (the event still
 * asks for a re-read of the state).
 */
export function parseRolloutField(event: unknown): ReloadRolloutField | null | "malformed" {
  if (typeof event !== "object" || event === null) return null;
  const r = (event as { rollout?: unknown }).rollout;
  if (r === undefined || r === null) return null;
  if (typeof r !== "object") return "malformed";
  const { id, step, threshold } = r as Record<string, unknown>;
  if (typeof id !== "string" || id.length === 0 || id.length > 128) return "malformed";
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0) return "malformed";
  if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1)) return "malformed";
  return { id, step, threshold };
}
