/**
 * Config texts for the agent and SNS/SQS tests: valid sfu-config YAML (v1,
 * or v2 with a TURN REST server) that differs by one number
 * (`limits.maxRooms`), and its config hash.
 */
import type { SnapshotStore } from "../../agent/sidecar/snapshot-store.ts";
import { loadConfigText } from "../../protocol/config-loader.ts";
import type { NormalisedConfig } from "../../protocol/config-schema-v2.ts";

/** Options of {@link configText}. */
export interface ConfigTextExtra {
  /** Adds one TURN server with this credential (the secret the redaction tests look for). */
  credential?: string;
  /** `logging.level` (default `info`). */
  level?: string;
  /** Makes it a schemaVersion 2 config with one TURN server minting credentials from this auth secret file. */
  authSecretFile?: string;
  /** Adds one TURN server with username and this credential file (v1). */
  credentialFile?: string;
}

/** A valid config text; `n` (1..100000) changes `limits.maxRooms` and so the hash. */
export function configText(n: number, extra: ConfigTextExtra = {}): string {
  const server = `\n  turnServers:\n    - urls: ["turn:turn.example.com:3478"]`;
  const turn = extra.credential
    ? `${server}\n      username: user1\n      credential: ${extra.credential}`
    : extra.authSecretFile
      ? `${server}\n      authSecretFile: ${extra.authSecretFile}`
      : extra.credentialFile
        ? `${server}\n      username: user1\n      credentialFile: ${extra.credentialFile}`
        : "";
  return `schemaVersion: ${extra.authSecretFile ? 2 : 1}
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1${turn}
logging:
  level: ${extra.level ?? "info"}
limits:
  maxRooms: ${n}
`;
}

/** The config hash of a config text (secret paths checked against `secretsDir` by shape only); throws when invalid. */
export async function configHash(text: string, secretsDir?: string): Promise<string> {
  const r = await loadConfigText(text, { checkFiles: false, ...(secretsDir === undefined ? {} : { secretsDir }) });
  if (!r.ok) throw new Error(`configHash: invalid config: ${JSON.stringify(r.problems)}`);
  return r.hash;
}

/** A loaded config (normalised, with its hash) whose `limits.maxRooms` is `n`: fixtures of the store and rollout tests. */
export async function loadedConfig(n: number): Promise<{ config: NormalisedConfig; hash: string }> {
  const r = await loadConfigText(configText(n), { checkFiles: false });
  if (!r.ok) throw new Error(`loadedConfig: invalid config: ${JSON.stringify(r.problems)}`);
  return { config: r.config, hash: r.hash };
}

/**
 * Offers `config` to the store as the mounted file's own valid config (what
 * the agent does on a valid reading without a rollout): the desired snapshot
 * becomes it. Returns whether it changed and its version.
 */
export function offerConfig(
  store: SnapshotStore,
  config: NormalisedConfig,
  hash: string,
  revision: string | null = null,
): { changed: boolean; version: number } {
  const r = store.offerFile(hash, { config, hash, revision });
  return { changed: r.changed, version: r.version ?? 0 };
}
