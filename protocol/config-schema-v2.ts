/**
 * Config schema v2: schema v1 plus
 * - TURN REST credentials: a TURN server entry may name `authSecretFile`
 *   (the shared secret the TURN server also knows, e.g. coturn's
 *   `static-auth-secret`) and `credentialTtl` instead of a static
 *   `username` + `credential`/`credentialFile`. The SFU then mints a fresh,
 *   time-limited username and password per participant; browsers never see
 *   a long-lived secret;
 * - `server.allowedOrigins`: the origins allowed to open the SFU's
 *   signalling WebSocket (absent or empty: same origin only).
 *
 * Why a new schemaVersion rather than new optional v1 fields: a v1 SFU
 * validates strictly (`additionalProperties: false`) and would refuse a
 * config carrying the new fields, so the agent must know, from
 * `hello.schemaVersions`, that the SFU can take them before it pushes.
 *
 * Built from the v1 schema object (shared parts are the same objects, so the
 * two cannot drift); the TypeScript type is derived from it. The semantic
 * rules JSON Schema does not express (which credential fields exclude which,
 * origin syntax) and the normalisation live here too; the loader calls them
 * for schemaVersion 2.
 */
import type { FromSchema } from "json-schema-to-ts";
import {
  type CodecName,
  configSchemaV1,
  type LogLevel,
  NOT_BLANK,
  type NormalisedConfigV1,
  normalise,
  type SfuConfigV1,
  sortedTurnServer,
  type TurnServer,
} from "./config-schema.ts";

/** Canonical `$id` of the published config schema v2. */
export const CONFIG_SCHEMA_V2_ID = "https://sfu-config.dev/schemas/config.v2.schema.json";

/** Bounds and default of `credentialTtl`, in seconds. */
export const CREDENTIAL_TTL = { min: 60, max: 86_400, default: 3600 } as const;

/** Most entries of `server.allowedOrigins`. */
export const MAX_ALLOWED_ORIGINS = 100;

const v1 = configSchemaV1.properties;
const turnItemV1 = v1.webrtc.properties.turnServers.items;

/** JSON Schema (draft 2020-12) of config schemaVersion 2. */
export const configSchemaV2 = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: CONFIG_SCHEMA_V2_ID,
  title: "sfu-config v2",
  description:
    "Configuration of a WebRTC SFU managed by sfu-config (schemaVersion 2: v1 plus TURN REST credentials and allowed signalling origins).",
  type: "object",
  additionalProperties: false,
  required: ["schemaVersion", "server", "webrtc"],
  properties: {
    schemaVersion: { const: 2, description: "Config schema version; 2 for this schema." },
    server: {
      type: "object",
      additionalProperties: false,
      required: ["port"],
      properties: {
        port: v1.server.properties.port,
        allowedOrigins: {
          type: "array",
          description:
            "Origins (scheme://host[:port]) whose pages may open the signalling WebSocket /ws. Absent or empty: same origin only. A request without Origin (not a browser) is allowed.",
          uniqueItems: true,
          maxItems: MAX_ALLOWED_ORIGINS,
          items: { type: "string", minLength: 1, maxLength: 2048 },
        },
      },
    },
    webrtc: {
      type: "object",
      additionalProperties: false,
      required: ["icePortRange", "codecs"],
      properties: {
        icePortRange: v1.webrtc.properties.icePortRange,
        codecs: v1.webrtc.properties.codecs,
        listenIp: v1.webrtc.properties.listenIp,
        announcedIps: v1.webrtc.properties.announcedIps,
        turnServers: {
          type: "array",
          description: "TURN/STUN servers handed to clients as iceServers.",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["urls"],
            properties: {
              urls: turnItemV1.properties.urls,
              username: turnItemV1.properties.username,
              credentialFile: turnItemV1.properties.credentialFile,
              credential: turnItemV1.properties.credential,
              authSecretFile: {
                type: "string",
                minLength: 1,
                pattern: NOT_BLANK,
                maxLength: 4096,
                description:
                  "Path of a file holding the TURN REST shared secret (coturn static-auth-secret; a mounted Secret under the secrets directory). The SFU mints per-participant credentials from it; excludes username, credential and credentialFile.",
              },
              credentialTtl: {
                type: "integer",
                minimum: CREDENTIAL_TTL.min,
                maximum: CREDENTIAL_TTL.max,
                description: `Lifetime in seconds of a minted credential (with authSecretFile only; default ${CREDENTIAL_TTL.default}).`,
              },
            },
          },
        },
      },
    },
    logging: v1.logging,
    limits: v1.limits,
  },
} as const;

/** A v2 config document as written (optional fields may be absent). */
export type SfuConfigV2 = FromSchema<typeof configSchemaV2>;
/** One TURN/STUN server entry of schema v2. */
export type TurnServerV2 = NonNullable<SfuConfigV2["webrtc"]["turnServers"]>[number];

/**
 * The normalised v2 config (what is hashed and pushed). As for v1, every
 * optional field with a default is filled in: `server.allowedOrigins` (`[]`)
 * and, on a server with `authSecretFile`, `credentialTtl`.
 */
export interface NormalisedConfigV2 {
  schemaVersion: 2;
  server: { allowedOrigins: string[]; port: number };
  webrtc: {
    icePortRange: [number, number];
    codecs: CodecName[];
    listenIp: string;
    announcedIps: string[];
    turnServers: TurnServerV2[];
  };
  logging: { level: LogLevel };
  limits: { maxRooms: number; maxParticipantsPerRoom: number };
}

/** A normalised config of either schema version (what the loader returns, the agent hashes and pushes). */
export type NormalisedConfig = NormalisedConfigV1 | NormalisedConfigV2;

/** A TURN server entry of either schema version. */
export type AnyTurnServer = TurnServer | TurnServerV2;

/** A problem found by {@link v2SemanticProblems}: pointer and message. */
export interface V2Problem {
  pointer: string;
  message: string;
}

/**
 * The v2-only rules JSON Schema does not express, over a value that may have
 * failed the schema (defensive):
 * - `authSecretFile` excludes `username`, `credential` and `credentialFile`;
 * - `credentialTtl` needs `authSecretFile`;
 * - each `server.allowedOrigins` entry is a serialised http(s) origin.
 * Also returns which TURN servers carry REST credentials, so the loader's v1
 * rule "a turn: server needs username and credential" is not applied to them.
 */
export function v2SemanticProblems(value: Record<string, unknown>): {
  problems: V2Problem[];
  restCredentialServers: Set<number>;
} {
  const problems: V2Problem[] = [];
  const restCredentialServers = new Set<number>();
  const server = isRecord(value["server"]) ? value["server"] : {};
  const origins = Array.isArray(server["allowedOrigins"]) ? (server["allowedOrigins"] as unknown[]) : [];
  for (let i = 0; i < origins.length && i < MAX_ALLOWED_ORIGINS; i++) {
    const o = origins[i];
    if (typeof o !== "string" || o === "") continue;
    const err = checkOrigin(o);
    if (err !== null) problems.push({ pointer: `/server/allowedOrigins/${i}`, message: err });
  }
  const webrtc = isRecord(value["webrtc"]) ? value["webrtc"] : {};
  const turn = Array.isArray(webrtc["turnServers"]) ? (webrtc["turnServers"] as unknown[]) : [];
  for (let i = 0; i < turn.length; i++) {
    const t = turn[i];
    if (!isRecord(t)) continue;
    const base = `/webrtc/turnServers/${i}`;
    if (t["authSecretFile"] !== undefined) {
      restCredentialServers.add(i);
      for (const key of ["username", "credential", "credentialFile"] as const) {
        if (t[key] !== undefined) {
          problems.push({
            pointer: `${base}/${key}`,
            message: `not with authSecretFile: the SFU mints a username and credential per participant from the shared secret; remove ${key}`,
          });
        }
      }
    } else if (t["credentialTtl"] !== undefined) {
      problems.push({
        pointer: `${base}/credentialTtl`,
        message: "credentialTtl applies only to a server with authSecretFile",
      });
    }
  }
  return { problems, restCredentialServers };
}

/**
 * Returns why `origin` is not a serialised http(s) origin
 * (`scheme://host[:port]`, lower case, no default port, no path), or null.
 */
export function checkOrigin(origin: string): string | null {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `${JSON.stringify(origin)}: not an origin; expected scheme://host[:port], e.g. https://app.example.com`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return `${JSON.stringify(origin)}: scheme must be https: or http:`;
  }
  if (url.origin !== origin) {
    return `${JSON.stringify(origin)}: not a plain origin; write it as ${JSON.stringify(url.origin)} (scheme://host[:port], lower case, no path, no default port)`;
  }
  return null;
}

/**
 * Fills the v2 defaults: the v1 normalisation (the same defaults, keys in
 * canonical order, so hashing is a plain JSON.stringify) plus
 * `server.allowedOrigins` and each TURN REST server's `credentialTtl`.
 * Idempotent.
 */
export function normaliseV2(config: SfuConfigV2): NormalisedConfigV2 {
  const base = normalise(config as unknown as SfuConfigV1);
  // Spreading keeps each key where the v1 normalisation put it (sorted).
  return {
    ...base,
    schemaVersion: 2,
    server: { allowedOrigins: [...(config.server.allowedOrigins ?? [])], port: base.server.port },
    webrtc: { ...base.webrtc, turnServers: (config.webrtc.turnServers ?? []).map(normalisedTurnServerV2) },
  };
}

function normalisedTurnServerV2(t: TurnServerV2): TurnServerV2 {
  const ttl = t.authSecretFile !== undefined && t.credentialTtl === undefined ? CREDENTIAL_TTL.default : undefined;
  return sortedTurnServer((ttl === undefined ? t : { ...t, credentialTtl: ttl }) as TurnServer) as TurnServerV2;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
