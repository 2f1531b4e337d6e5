/**
 * The TURN/STUN servers of a config, resolved for serving: secret files read
 * (only from under the secrets directory, symlinks checked, through
 * protocol/secret-paths.ts) into {@link TurnEntry} values held by the
 * applied snapshot, and turned into the `iceServers` of one participant at
 * join by {@link iceServersFor}.
 *
 * - `credentialFile` / `credential` (static): every participant gets the same
 *   username and credential, as in schema v1;
 * - `authSecretFile` (schema v2, TURN REST API): the shared secret is kept as
 *   a {@link TurnAuthSecret}; each participant gets a fresh username
 *   `expiry:participantId` and its HMAC, valid `credentialTtl` seconds. The
 *   secret itself never leaves the process.
 *
 * Reading happens when a config is applied and when the agent asks for a
 * secrets reload; failing reads are returned (with the JSON pointer of the
 * field) so the caller can NACK `APPLY_FAILED` and keep what it had.
 */
import {
  type AnyTurnServer,
  CREDENTIAL_TTL,
  DEFAULT_SECRETS_DIR,
  emptySecret,
  type NormalisedConfig,
  readSecretFile,
} from "../protocol/index.ts";
import { mintTurnCredential, TurnAuthSecret } from "./turn-credentials.ts";

/** An ICE server handed to clients (static credentials, or minted for one participant). Never log it. */
export interface ClientIceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** A TURN/STUN server ready to serve: static credentials, or a shared secret to mint from. */
export type TurnEntry =
  | { kind: "static"; server: ClientIceServer }
  | { kind: "rest"; urls: readonly string[]; ttlSeconds: number; secret: TurnAuthSecret };

/** Why the secret files of a config could not be resolved. */
export interface TurnResolveError {
  /** The JSON pointer of the field naming the file, e.g. `/webrtc/turnServers/0/authSecretFile`. */
  pointer: string;
  /** Names the path and the reason, never any content. */
  message: string;
}

/** Reads a secret file under a directory; the default is protocol's {@link readSecretFile}. */
export type SecretReader = typeof readSecretFile;

/**
 * Reads every secret file `config` names (under `secretsDir`) and returns
 * the entries, or the first failure. Secrets read from a file are trimmed;
 * one that is empty or only whitespace is refused (protocol's
 * {@link emptySecret}, the rule `validate` applies too).
 */
export async function resolveTurnEntries(
  config: Readonly<NormalisedConfig>,
  secretsDir: string = DEFAULT_SECRETS_DIR,
  read: SecretReader = readSecretFile,
): Promise<{ ok: true; entries: TurnEntry[] } | ({ ok: false } & TurnResolveError)> {
  const entries: TurnEntry[] = [];
  const servers = config.webrtc.turnServers as readonly AnyTurnServer[];
  for (let i = 0; i < servers.length; i++) {
    const t = servers[i] as AnyTurnServer & { authSecretFile?: string; credentialTtl?: number };
    const base = `/webrtc/turnServers/${i}`;
    if (t.authSecretFile !== undefined) {
      const r = await read(t.authSecretFile, secretsDir);
      if (!r.ok) return { ok: false, pointer: `${base}/authSecretFile`, message: `authSecretFile: ${r.message}` };
      const empty = emptySecret(t.authSecretFile, r.value);
      if (empty !== null) {
        r.value.fill(0);
        return { ok: false, pointer: `${base}/authSecretFile`, message: `authSecretFile: ${empty.message}` };
      }
      let secret: TurnAuthSecret;
      try {
        secret = new TurnAuthSecret(r.value);
      } catch {
        return {
          ok: false,
          pointer: `${base}/authSecretFile`,
          message: `${t.authSecretFile}: the auth secret is empty`,
        };
      } finally {
        r.value.fill(0);
      }
      entries.push({ kind: "rest", urls: [...t.urls], ttlSeconds: t.credentialTtl ?? CREDENTIAL_TTL.default, secret });
      continue;
    }
    const server: ClientIceServer = { urls: [...t.urls] };
    if (t.username !== undefined) server.username = t.username;
    if (t.credential !== undefined) server.credential = t.credential;
    if (t.credentialFile !== undefined) {
      const r = await read(t.credentialFile, secretsDir);
      if (!r.ok) return { ok: false, pointer: `${base}/credentialFile`, message: `credentialFile: ${r.message}` };
      const empty = emptySecret(t.credentialFile, r.value);
      if (empty !== null) {
        r.value.fill(0);
        return { ok: false, pointer: `${base}/credentialFile`, message: `credentialFile: ${empty.message}` };
      }
      server.credential = r.value.toString("utf8").trim();
      r.value.fill(0);
    }
    entries.push({ kind: "static", server });
  }
  return { ok: true, entries };
}

/**
 * The `iceServers` handed to participant `participantId` joining at `nowMs`:
 * static entries as configured, REST entries with a credential minted for it.
 * Never log the result.
 */
export function iceServersFor(
  entries: readonly TurnEntry[],
  participantId: string,
  nowMs: number = Date.now(),
): ClientIceServer[] {
  return entries.map((e) => {
    if (e.kind === "static") return { ...e.server, urls: [...e.server.urls] };
    const c = mintTurnCredential(e.secret, participantId, e.ttlSeconds, nowMs);
    return { urls: [...e.urls], username: c.username, credential: c.credential };
  });
}

/** True when both lists hold the same servers with the same secrets (a reload that changed nothing). */
export function sameTurnEntries(a: readonly TurnEntry[], b: readonly TurnEntry[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i];
    if (y === undefined || x.kind !== y.kind) return false;
    if (x.kind === "rest" && y.kind === "rest") {
      return x.ttlSeconds === y.ttlSeconds && x.urls.join() === y.urls.join() && x.secret.equals(y.secret);
    }
    return JSON.stringify(x) === JSON.stringify(y);
  });
}
