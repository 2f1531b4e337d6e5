/**
 * The semantic checks of a config: what JSON Schema cannot express (ICE
 * port range order, an audio and a video codec, TURN/STUN URIs, credentials
 * given once, secret files under the secrets directory and readable, the
 * schemaVersion 2 rules of TURN REST servers). Defensive: they run on values that
 * may have failed the schema, looking only at the well-typed parts.
 */
import { type ConfigProblem, problem } from "./config-problems.ts";
import { AUDIO_CODECS, VIDEO_CODECS } from "./config-schema.ts";
import { v2SemanticProblems } from "./config-schema-v2.ts";
import { checkSecretFile, checkSecretPathShape, DEFAULT_SECRETS_DIR } from "./secret-paths.ts";

/** Options of {@link semanticProblems}. */
export interface SemanticOptions {
  /**
   * Check that every secret file (`credentialFile`, `authSecretFile`) exists
   * and is readable (default true); its path shape (under `secretsDir`, no
   * `..`) is checked either way.
   */
  checkFiles?: boolean;
  /** The one directory secret files may live under (default {@link DEFAULT_SECRETS_DIR}). */
  secretsDir?: string;
}

/** The checks JSON Schema cannot express. Defensive: `value` may have failed the schema. */
export async function semanticProblems(
  value: Record<string, unknown>,
  options: SemanticOptions,
): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const v2 = value.schemaVersion === 2 ? v2SemanticProblems(value) : null;
  if (v2 !== null) for (const p of v2.problems) problems.push(problem(p.pointer, p.message));
  const webrtc = isRecord(value.webrtc) ? value.webrtc : {};
  const range = webrtc.icePortRange;
  if (Array.isArray(range) && range.length === 2 && range.every((n) => Number.isInteger(n))) {
    const [min, max] = range as [number, number];
    if (min >= max) problems.push(problem("/webrtc/icePortRange", `min ${min} must be less than max ${max}`));
  }
  const codecs = webrtc.codecs;
  const known = [...AUDIO_CODECS, ...VIDEO_CODECS] as readonly unknown[];
  // An empty list or unknown names are the schema's to report.
  if (Array.isArray(codecs) && codecs.length > 0 && codecs.every((c) => known.includes(c))) {
    if (!codecs.some((c) => (AUDIO_CODECS as readonly unknown[]).includes(c))) {
      problems.push(problem("/webrtc/codecs", `needs at least one audio codec (${AUDIO_CODECS.join(", ")})`));
    }
    if (!codecs.some((c) => (VIDEO_CODECS as readonly unknown[]).includes(c))) {
      problems.push(problem("/webrtc/codecs", `needs at least one video codec (${VIDEO_CODECS.join(", ")})`));
    }
  }
  const turn = Array.isArray(webrtc.turnServers) ? (webrtc.turnServers as unknown[]) : [];
  // Index loops (no iterator or [index, value] pair per item): this runs on
  // every reload, over every server of a config that may list hundreds.
  for (let i = 0; i < turn.length; i++) {
    const server = turn[i];
    if (!isRecord(server)) continue;
    const base = `/webrtc/turnServers/${i}`;
    let needsCredential = false;
    const urls = Array.isArray(server.urls) ? (server.urls as unknown[]) : [];
    for (let j = 0; j < urls.length; j++) {
      const url = urls[j];
      if (typeof url !== "string" || url === "") continue;
      const err = checkIceUri(url);
      if (err) problems.push(problem(`${base}/urls/${j}`, err));
      if (/^turns?:/i.test(url)) needsCredential = true;
    }
    const { username, credential, credentialFile } = server;
    if (credential !== undefined && credentialFile !== undefined) {
      problems.push(problem(`${base}/credential`, "give either credential or credentialFile, not both"));
    }
    // A server with authSecretFile (v2) gets a credential minted per participant.
    const minted = v2?.restCredentialServers.has(i) === true;
    if (!minted && needsCredential && (username === undefined || (credential ?? credentialFile) === undefined)) {
      const what =
        v2 === null
          ? "username and credentialFile (or credential)"
          : "authSecretFile, or username and credentialFile (or credential)";
      problems.push(problem(base, `a turn:/turns: server needs ${what}`));
    }
    if (credential !== undefined) {
      warnings.push({
        ...problem(`${base}/credential`, "inline credential: prefer credentialFile pointing at a mounted Secret"),
        severity: "warning",
      });
    }
    for (const key of v2 === null ? (["credentialFile"] as const) : (["credentialFile", "authSecretFile"] as const)) {
      const path = server[key];
      if (typeof path !== "string" || path === "") continue;
      const dir = options.secretsDir ?? DEFAULT_SECRETS_DIR;
      const err =
        options.checkFiles === false
          ? checkSecretPathShape(path, dir)
          : ((await checkSecretFile(path, dir))?.message ?? null);
      if (err !== null) problems.push(problem(`${base}/${key}`, err));
    }
  }
  return { problems, warnings };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Returns an error message when `uri` is not a valid turn:/turns:/stun:/stuns: URI (RFC 7064/7065). */
export function checkIceUri(uri: string): string | null {
  const m = /^(turns?|stuns?):(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(\?transport=(udp|tcp))?$/.exec(uri);
  if (!m) {
    if (!/^(turns?|stuns?):/i.test(uri)) return `${JSON.stringify(uri)}: scheme must be turn:, turns: or stun:`;
    return `${JSON.stringify(uri)}: not a valid ICE server URI (expected scheme:host[:port][?transport=udp|tcp])`;
  }
  if (m[3] !== undefined) {
    const port = Number(m[3]);
    if (port < 1 || port > 65535) return `${JSON.stringify(uri)}: port ${port} is out of range 1..65535`;
  }
  if (m[4] !== undefined && m[1]?.startsWith("stun")) return `${JSON.stringify(uri)}: stun: URIs take no transport`;
  return null;
}
