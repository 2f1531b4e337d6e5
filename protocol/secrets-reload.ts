/**
 * The `secrets-reload` message (agent -> SFU) and the `hello.features` flag
 * that allows it.
 *
 * A Secret rotation changes the files a config names (`credentialFile`,
 * `authSecretFile`) but not the config: its text, and so its hash, stay the
 * same, and nothing would be pushed. An SFU that lists
 * {@link SECRETS_RELOAD_FEATURE} in `hello.features` accepts
 * `secrets-reload`: it re-reads every secret file of its applied config and
 * answers with the ordinary `ack {nonce, version, hash}` (the applied
 * config's version and hash, unchanged) or `nack` (e.g. `APPLY_FAILED` with
 * the `path` of an unreadable file; it then keeps using what it read
 * before). `generation` is the agent's rotation counter: it increases with
 * every change the agent sees and is never derived from a secret.
 *
 * The agent never sends it to an SFU that did not advertise the feature: to
 * such an SFU it would be an unknown message type (close 4002).
 */
import type { FromSchema } from "json-schema-to-ts";
import { HASH_PATTERN } from "./hash.ts";

/** The `hello.features` entry of an SFU that accepts `secrets-reload`. */
export const SECRETS_RELOAD_FEATURE = "secrets-reload";

/** Most `hello.features` entries looked at (the hello is bounded by the frame limit; this bounds the work). */
const MAX_FEATURES = 64;

const safeInt = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

/** agent -> SFU: re-read the secret files of the applied config. */
export const secretsReloadSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://sfu-config.dev/schemas/secrets-reload.schema.json",
  title: "secrets-reload (agent -> SFU)",
  description:
    "Sent only to an SFU whose hello.features lists secrets-reload. The SFU re-reads every secret file its applied config names and answers ack {nonce, version, hash} or nack, like a config.",
  type: "object",
  additionalProperties: true,
  required: ["type", "nonce", "version", "hash", "generation"],
  properties: {
    type: { const: "secrets-reload" },
    nonce: safeInt,
    version: safeInt,
    hash: { type: "string", pattern: HASH_PATTERN },
    generation: safeInt,
  },
} as const;

/** A `secrets-reload` message. */
export type SecretsReloadMessage = FromSchema<typeof secretsReloadSchema>;

/**
 * The feature names of a `hello` (`features`: an optional array of strings;
 * anything else, or non-string entries, are ignored: hello allows extra
 * properties and an SFU may not know this field at all).
 */
export function helloFeatures(hello: unknown): string[] {
  const features = typeof hello === "object" && hello !== null ? (hello as { features?: unknown }).features : undefined;
  if (!Array.isArray(features)) return [];
  const out: string[] = [];
  for (let i = 0; i < features.length && i < MAX_FEATURES; i++) {
    const f = features[i];
    if (typeof f === "string" && f.length <= 64) out.push(f);
  }
  return out;
}

/** Builds a `secrets-reload` message. */
export function secretsReloadMessage(
  nonce: number,
  applied: { version: number; hash: string },
  generation: number,
): SecretsReloadMessage {
  return { type: "secrets-reload", nonce, version: applied.version, hash: applied.hash, generation };
}
