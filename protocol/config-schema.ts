/**
 * Config schema v1: the single source of truth for the SFU configuration
 * (strict: `additionalProperties: false` everywhere, so a typo is an error,
 * not a silently ignored key). The JSON file under `protocol/schemas/` is generated from
 * this object (`npm run schemas`) and a test keeps the two identical; the
 * TypeScript type {@link SfuConfigV1} is derived from it, never written twice.
 *
 * Extensions are new optional fields; a change an SFU validating v1 strictly
 * would refuse is a new schemaVersion (2: protocol/config-schema-v2.ts).
 */
import type { FromSchema } from "json-schema-to-ts";

/** The `pattern` of a path that must hold more than whitespace (`credentialFile`, `authSecretFile`); refused as "must not be blank". */
export const NOT_BLANK = "\\S";

/** Video codecs an SFU of this protocol may be told to negotiate. */
export const VIDEO_CODECS = ["vp8", "vp9", "h264", "av1"] as const;
/** Audio codecs an SFU of this protocol may be told to negotiate. */
export const AUDIO_CODECS = ["opus", "pcmu", "pcma"] as const;
/** Log levels, in increasing severity (pino's names). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
/** Schema versions this implementation understands (v2: protocol/config-schema-v2.ts). */
export const SUPPORTED_SCHEMA_VERSIONS = [1, 2] as const;

/** Canonical `$id` of the published config schema. */
export const CONFIG_SCHEMA_ID = "https://sfu-config.dev/schemas/config.v1.schema.json";

const port = { type: "integer", minimum: 1024, maximum: 65535 } as const;
const ipAddress = {
  type: "string",
  anyOf: [{ format: "ipv4" }, { format: "ipv6" }],
  description: "An IPv4 or IPv6 address literal.",
} as const;

/** JSON Schema (draft 2020-12) of config schemaVersion 1. */
export const configSchemaV1 = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: CONFIG_SCHEMA_ID,
  title: "sfu-config v1",
  description: "Configuration of a WebRTC SFU managed by sfu-config (schemaVersion 1).",
  type: "object",
  additionalProperties: false,
  required: ["schemaVersion", "server", "webrtc"],
  properties: {
    schemaVersion: { const: 1, description: "Config schema version; 1 for this schema." },
    server: {
      type: "object",
      additionalProperties: false,
      required: ["port"],
      properties: {
        port: {
          type: "integer",
          minimum: 1,
          maximum: 65535,
          description: "HTTP/signalling port. Changing it live needs a restart.",
        },
      },
    },
    webrtc: {
      type: "object",
      additionalProperties: false,
      required: ["icePortRange", "codecs"],
      properties: {
        icePortRange: {
          type: "array",
          description: "[min, max] UDP ports for ICE; min < max, both 1024..65535.",
          prefixItems: [port, port],
          items: false,
          minItems: 2,
          maxItems: 2,
        },
        codecs: {
          type: "array",
          description: "Codecs to negotiate, in preference order; at least one audio and one video codec.",
          minItems: 1,
          uniqueItems: true,
          items: { enum: [...VIDEO_CODECS, ...AUDIO_CODECS] },
        },
        listenIp: {
          ...ipAddress,
          description: "Interface ICE gathers on (0.0.0.0 = all; 127.0.0.1 locally and in tests).",
        },
        announcedIps: {
          type: "array",
          description: "Public addresses advertised as host candidates (NAT 1:1 on cloud nodes).",
          uniqueItems: true,
          items: ipAddress,
        },
        turnServers: {
          type: "array",
          description: "TURN/STUN servers handed to clients as iceServers.",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["urls"],
            properties: {
              urls: {
                type: "array",
                minItems: 1,
                items: { type: "string", minLength: 1, maxLength: 2048 },
                description: "turn:, turns: or stun: URIs (RFC 7064/7065).",
              },
              username: { type: "string", minLength: 1, maxLength: 512 },
              credentialFile: {
                type: "string",
                minLength: 1,
                pattern: NOT_BLANK,
                maxLength: 4096,
                description: "Path of a file holding the credential (a mounted Secret). Preferred.",
              },
              credential: {
                type: "string",
                minLength: 1,
                maxLength: 4096,
                description: "Inline credential. Accepted with a warning; never logged.",
              },
            },
          },
        },
      },
    },
    logging: {
      type: "object",
      additionalProperties: false,
      properties: {
        level: { enum: [...LOG_LEVELS], description: "Log level, applied at once." },
      },
    },
    limits: {
      type: "object",
      additionalProperties: false,
      description: "Optional extension: admission limits of the SFU.",
      properties: {
        maxRooms: { type: "integer", minimum: 1, maximum: 100000 },
        maxParticipantsPerRoom: { type: "integer", minimum: 1, maximum: 10000 },
      },
    },
  },
} as const;

/** A config document as written (optional fields may be absent). */
export type SfuConfigV1 = FromSchema<typeof configSchemaV1>;
/** One TURN/STUN server entry. */
export type TurnServer = NonNullable<SfuConfigV1["webrtc"]["turnServers"]>[number];
/** A codec name of schema v1. */
export type CodecName = (typeof VIDEO_CODECS)[number] | (typeof AUDIO_CODECS)[number];
/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The normalised config: what the loader returns, what the agent hashes and
 * pushes. Every optional field of v1 that has a default is filled in, so two
 * files that differ only by spelling out a default hash the same.
 */
export interface NormalisedConfigV1 {
  schemaVersion: 1;
  server: { port: number };
  webrtc: {
    icePortRange: [number, number];
    codecs: CodecName[];
    listenIp: string;
    announcedIps: string[];
    turnServers: TurnServer[];
  };
  logging: { level: LogLevel };
  limits: { maxRooms: number; maxParticipantsPerRoom: number };
}

/** Defaults applied by normalisation (documented in PROTOCOL.md). */
export const CONFIG_DEFAULTS = {
  listenIp: "0.0.0.0",
  logLevel: "info",
  maxRooms: 100,
  maxParticipantsPerRoom: 16,
} as const;

/**
 * Fills defaults; the result is what is hashed and pushed. Idempotent. Keys
 * are written in canonical (sorted) order so that hashing it is a plain
 * JSON.stringify (see canonicalJson).
 */
export function normalise(config: SfuConfigV1): NormalisedConfigV1 {
  const w = config.webrtc;
  return {
    limits: {
      maxParticipantsPerRoom: config.limits?.maxParticipantsPerRoom ?? CONFIG_DEFAULTS.maxParticipantsPerRoom,
      maxRooms: config.limits?.maxRooms ?? CONFIG_DEFAULTS.maxRooms,
    },
    logging: { level: config.logging?.level ?? CONFIG_DEFAULTS.logLevel },
    schemaVersion: 1,
    server: { port: config.server.port },
    webrtc: {
      announcedIps: [...(w.announcedIps ?? [])],
      codecs: [...w.codecs] as NormalisedConfigV1["webrtc"]["codecs"],
      icePortRange: [...(w.icePortRange as unknown as [number, number])],
      listenIp: w.listenIp ?? CONFIG_DEFAULTS.listenIp,
      turnServers: (w.turnServers ?? []).map(sortedTurnServer),
    },
  };
}

/** A TURN server entry with its keys in canonical (sorted) order and its lists copied. */
export function sortedTurnServer(t: TurnServer): TurnServer {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(t).sort()) {
    const v = t[key as keyof TurnServer];
    out[key] = Array.isArray(v) ? [...v] : v;
  }
  return out as TurnServer;
}
