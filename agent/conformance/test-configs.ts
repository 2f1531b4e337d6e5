/**
 * The configs the conformance kit pushes, all derived from one base config
 * (k8s/base/config.yaml or `--config FILE`, with `webrtc.listenIp` set to
 * 127.0.0.1) and hashed with the protocol's own {@link configHash}, so the kit
 * and the agent agree by construction. PROTOCOL.md
 * [section 8](../../protocol/PROTOCOL.md#8-canonical-json-and-the-config-hash).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatProblem, loadConfigFile } from "../../protocol/config-loader.ts";
import type { NormalisedConfigV1 } from "../../protocol/config-schema.ts";
import { AgentError } from "../shared/errors.ts";

/**
 * Path of the example config the kit uses unless `--config` is given:
 * k8s/base/config.yaml of the source tree, found from this module both when
 * run from source (agent/conformance/) and when built (dist/agent/conformance/).
 */
export const DEFAULT_BASE_CONFIG_PATH =
  ["../../k8s/base/config.yaml", "../../../k8s/base/config.yaml"]
    .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
    .find((path) => existsSync(path)) ?? fileURLToPath(new URL("../../k8s/base/config.yaml", import.meta.url));

/**
 * String in the canonical-hash test vector: non-ASCII (Latin-1, BMP, astral),
 * characters some JSON encoders escape (`<>&`, U+2028, U+2029, `/`), the
 * controls with short escapes that older encoders write as `\u00xx` (`\b`,
 * `\f`; Go before 1.22), a tab, a quote and a backslash. Canonical JSON
 * writes all of them raw except `"`, `\` and the controls (`\b`, `\f`,
 * `\t`), exactly as `JSON.stringify` / RFC 8785 do.
 */
export const HASH_VECTOR_USERNAME = 'conformance-ü€😀<&>\u2028\u2029/\b\f\t"\\';

/**
 * Loads the base config; throws an {@link AgentError} `CONFORMANCE_BASE_CONFIG` (with the loader's
 * `FILE:LINE:COL: pointer: message` lines) when the file is missing or invalid.
 * Credential files are not checked: they live on the SFU's machine.
 */
export async function loadBaseConfig(path: string = DEFAULT_BASE_CONFIG_PATH): Promise<NormalisedConfigV1> {
  const result = await loadConfigFile(path, { checkFiles: false });
  if (!result.ok) {
    const lines = result.problems.map((p) => formatProblem(result.source, p)).join("\n");
    const hint = result.code === "NOT_FOUND" ? " (pass --config FILE)" : "";
    throw new AgentError("CONFORMANCE_BASE_CONFIG", `base config ${path} is unusable${hint}:\n${lines}`);
  }
  if (result.config.schemaVersion !== 1) {
    throw new AgentError(
      "CONFORMANCE_BASE_CONFIG",
      `base config ${path} is schemaVersion ${result.config.schemaVersion}; the kit needs a schemaVersion 1 base (it derives its v2 cases from it)`,
    );
  }
  return { ...result.config, webrtc: { ...result.config.webrtc, listenIp: "127.0.0.1" } };
}

/**
 * A hot-appliable variant of `base`, distinct for each `serial`: only
 * `limits.maxRooms` changes (1000 + serial), so every push has a fresh hash.
 */
export function variant(base: NormalisedConfigV1, serial: number): NormalisedConfigV1 {
  return { ...base, limits: { ...base.limits, maxRooms: 1000 + serial } };
}

/** `config` with `server.port` changed (+1, or -1 at 65535): not appliable live. */
export function portChanged(config: NormalisedConfigV1): NormalisedConfigV1 {
  const port = config.server.port === 65535 ? 65534 : config.server.port + 1;
  return { ...config, server: { port } };
}

/** Origin the kit's schemaVersion 2 configs allow (a name that resolves nowhere). */
export const CONFORMANCE_ORIGIN = "https://conformance.invalid";

/**
 * `config` as a schemaVersion 2 config (normalised: `server.allowedOrigins`
 * filled in; its TURN entries are valid v2 entries as they are), allowing
 * {@link CONFORMANCE_ORIGIN}. Only for an SFU whose hello lists 2.
 */
export function asV2(config: NormalisedConfigV1): Record<string, unknown> {
  return {
    ...config,
    schemaVersion: 2,
    server: { allowedOrigins: [CONFORMANCE_ORIGIN], port: config.server.port },
  };
}

/** `config` claiming schemaVersion 99, which no v1 SFU supports. */
export function unsupportedSchema(config: NormalisedConfigV1): Record<string, unknown> {
  return { ...config, schemaVersion: 99 };
}

/** `config` with a STUN server whose username is {@link HASH_VECTOR_USERNAME}. */
export function hashVector(config: NormalisedConfigV1): NormalisedConfigV1 {
  return {
    ...config,
    webrtc: {
      ...config.webrtc,
      turnServers: [{ urls: ["stun:stun.invalid:3478"], username: HASH_VECTOR_USERNAME }],
    },
  };
}

/** Deep copy of a JSON value with every object's keys in reverse (non-canonical) order. */
export function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).reverse();
    return Object.fromEntries(entries.map(([k, v]) => [k, reverseKeys(v)]));
  }
  return value;
}
