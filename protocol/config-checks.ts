/**
 * The semantic checks of a config: what JSON Schema cannot express (ICE
 * port range order, an audio and a video codec, TURN/STUN URIs, credentials
 * given once, credentialFile readable). Defensive: they run on values that
 * may have failed the schema, looking only at the well-typed parts.
 */
import { constants as fsConstants } from "node:fs";
import { access, open } from "node:fs/promises";
import { type ConfigProblem, problem } from "./config-problems.ts";
import { AUDIO_CODECS, VIDEO_CODECS } from "./config-schema.ts";

/** Options of {@link semanticProblems}. */
export interface SemanticOptions {
  /** Check that every `credentialFile` exists and is readable (default true). */
  checkFiles?: boolean;
}

/** The checks JSON Schema cannot express. Defensive: `value` may have failed the schema. */
export async function semanticProblems(
  value: Record<string, unknown>,
  options: SemanticOptions,
): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
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
    if (needsCredential && (username === undefined || (credential ?? credentialFile) === undefined)) {
      problems.push(problem(base, "a turn:/turns: server needs username and credentialFile (or credential)"));
    }
    if (credential !== undefined) {
      warnings.push({
        ...problem(`${base}/credential`, "inline credential: prefer credentialFile pointing at a mounted Secret"),
        severity: "warning",
      });
    }
    if (typeof credentialFile === "string" && credentialFile !== "" && options.checkFiles !== false) {
      const err = await checkReadable(credentialFile);
      if (err) problems.push(problem(`${base}/credentialFile`, `${credentialFile}: ${err}`));
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

async function checkReadable(path: string): Promise<string | null> {
  try {
    const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) return "is a directory";
      if (!stat.isFile()) return "credential file is not a regular file";
    } finally {
      await handle.close();
    }
    await access(path, fsConstants.R_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "credential file does not exist";
    if (code === "EACCES" || code === "EPERM") return "credential file is not readable";
    return `credential file cannot be read (${code})`;
  }
}
