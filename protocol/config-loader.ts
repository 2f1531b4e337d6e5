/**
 * The one config pipeline shared by the agent, `sfu-agent validate` and the
 * standalone SFU: read -> parse YAML -> validate (schema + semantic checks)
 * -> normalise -> hash. Every problem carries the JSON pointer it concerns and,
 * when the input was YAML text, the line:column it comes from.
 *
 * Expected failures (a bad file) are returned as `{ ok: false }` values; this
 * module only throws on programming errors.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { access, open } from "node:fs/promises";
import type { ErrorObject } from "ajv";
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { createAjv } from "./ajv.ts";
import {
  AUDIO_CODECS,
  CONFIG_DEFAULTS,
  configSchemaV1,
  type NormalisedConfigV1,
  type SfuConfigV1,
  SUPPORTED_SCHEMA_VERSIONS,
  type TurnServer,
  VIDEO_CODECS,
} from "./config-schema.ts";
import { fastYamlValue } from "./fast-yaml.ts";
import { type ConfigHash, configHash } from "./hash.ts";

/** Largest config file accepted, in bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Most YAML alias dereferences accepted (billion-laughs guard). */
export const MAX_YAML_ALIASES = 100;

/** One problem found in a config. `line`/`col` are 1-based, null when unknown. */
export interface ConfigProblem {
  severity: "error" | "warning";
  /** JSON pointer (RFC 6901) of the offending value; "" for the whole document. */
  pointer: string;
  message: string;
  line: number | null;
  col: number | null;
}

/** Why a config was refused. */
export type LoadFailureCode =
  | "INVALID_CONFIG"
  | "UNSUPPORTED_SCHEMA"
  /** The file does not exist (may be transient during a kubelet swap). */
  | "NOT_FOUND"
  /** The file exists but cannot be read (permissions, a directory, I/O error). */
  | "READ_FAILED";

export type LoadResult =
  | {
      ok: true;
      source: string;
      config: NormalisedConfigV1;
      hash: ConfigHash;
      warnings: ConfigProblem[];
    }
  | {
      ok: false;
      source: string;
      code: LoadFailureCode;
      problems: ConfigProblem[];
      warnings: ConfigProblem[];
    };

export interface LoadOptions {
  /** Name used in messages (defaults to the path, or "<input>"). */
  source?: string;
  /**
   * Check that every `credentialFile` exists and is readable (default true).
   * `sfu-agent notify` turns this off: the hook Job does not mount the Secret.
   */
  checkFiles?: boolean;
}

const ajv = createAjv();
const validateSchema = ajv.compile(configSchemaV1);

/** Formats a problem as `FILE:LINE:COL: <pointer>: <message>` (the `validate` output line). */
export function formatProblem(source: string, p: ConfigProblem): string {
  const where = `${source}:${p.line ?? 1}:${p.col ?? 1}`;
  const prefix = p.severity === "warning" ? "warning: " : "";
  return `${where}: ${p.pointer || "/"}: ${prefix}${p.message}`;
}

/** Reads and loads a config file. Never throws for bad input. */
export async function loadConfigFile(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  const source = options.source ?? path;
  const fail = (code: LoadFailureCode, message: string): LoadResult => ({
    ok: false,
    source,
    code,
    warnings: [],
    problems: [{ severity: "error", pointer: "", message, line: null, col: null }],
  });
  // The read is synchronous on purpose: a config is a small local file (a
  // ConfigMap on tmpfs, at most MAX_CONFIG_BYTES), and reading it in one go
  // keeps a reload from interleaving with the file watcher's own I/O
  // callbacks between every await (see the agent benchmark).
  let fd: number | undefined;
  let text: string | LoadResult;
  try {
    // O_NONBLOCK: opening a FIFO (or a device) must not block waiting for a
    // writer; the fstat below then refuses anything but a regular file.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return fail("READ_FAILED", "is a directory, not a config file");
    if (!stat.isFile()) return fail("READ_FAILED", "is not a regular file");
    if (stat.size > MAX_CONFIG_BYTES) {
      return fail("INVALID_CONFIG", `file is ${stat.size} bytes; the limit is ${MAX_CONFIG_BYTES}`);
    }
    const bytes = readWhole(fd, stat.size);
    if (bytes.length > MAX_CONFIG_BYTES) {
      return fail("INVALID_CONFIG", `file exceeds ${MAX_CONFIG_BYTES} bytes`);
    }
    // Decoded before anything else runs: the bytes may be the shared read buffer.
    text = decodeConfigBytes(bytes, source);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") return fail("NOT_FOUND", "no such file");
    if (e.code === "EISDIR") return fail("READ_FAILED", "is a directory, not a config file");
    if (e.code === "EACCES" || e.code === "EPERM") return fail("READ_FAILED", "permission denied");
    if (e.code === "ELOOP") return fail("READ_FAILED", "too many levels of symbolic links");
    return fail("READ_FAILED", `cannot read: ${e.code ?? e.message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return typeof text === "string" ? loadConfigText(text, { ...options, source }) : text;
}

/**
 * Files up to this size are read into one buffer kept for the life of the
 * process; larger ones (rare, up to MAX_CONFIG_BYTES) get a buffer of their
 * own. A fresh buffer per reload is memory outside the V8 heap that is only
 * freed when the GC gets to its wrapper: in a run of reloads those buffers
 * pile up in malloc's heap (see the agent benchmark).
 */
const SHARED_READ_BYTES = 64 * 1024;
const UTF8 = new TextDecoder("utf-8", { fatal: true });
let sharedReadBuffer: Buffer | null = null;

/**
 * Reads a regular file from offset 0 until EOF or past MAX_CONFIG_BYTES, into
 * a buffer with room for one byte more than fstat said (to notice a file
 * that grew since). The result may be a view of the shared read buffer:
 * decode it before the next read.
 */
function readWhole(fd: number, statSize: number): Buffer {
  const want = Math.min(statSize, MAX_CONFIG_BYTES) + 1;
  let buf: Buffer;
  if (want <= SHARED_READ_BYTES) {
    sharedReadBuffer ??= Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
    buf = sharedReadBuffer;
  } else {
    buf = Buffer.allocUnsafeSlow(want);
  }
  let length = 0;
  for (;;) {
    const n = readSync(fd, buf, length, buf.length - length, length);
    length += n;
    if (n === 0 || length > MAX_CONFIG_BYTES) return buf.subarray(0, length);
    if (length === buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.min(buf.length * 2, MAX_CONFIG_BYTES + 1));
      buf.copy(bigger);
      buf = bigger;
    }
  }
}

/** UTF-8 text of config bytes, or the failed result saying why they are not text. */
function decodeConfigBytes(bytes: Uint8Array, source: string): string | LoadResult {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return invalid(source, [problem("", "file is not valid UTF-8 text")]);
  }
  if (text.includes("\u0000")) return invalid(source, [problem("", "file contains NUL bytes; is it binary?")]);
  return text;
}

/** Loads config bytes (UTF-8 YAML or JSON). */
export async function loadConfigBytes(bytes: Uint8Array, options: LoadOptions = {}): Promise<LoadResult> {
  const source = options.source ?? "<input>";
  const text = decodeConfigBytes(bytes, source);
  return typeof text === "string" ? loadConfigText(text, { ...options, source }) : text;
}

/** Parses and validates YAML/JSON config text. */
export async function loadConfigText(text: string, options: LoadOptions = {}): Promise<LoadResult> {
  const source = options.source ?? "<input>";
  if (Buffer.byteLength(text, "utf8") > MAX_CONFIG_BYTES) {
    return invalid(source, [problem("", `config exceeds ${MAX_CONFIG_BYTES} bytes`)]);
  }
  // Fast path (protocol/fast-yaml.ts): a valid file with nothing to locate needs no document model.
  const fast = fastYamlValue(text);
  if (fast !== undefined) {
    const result = await validateConfigValue(fast, { ...options, source });
    if (result.ok && result.warnings.length === 0) return result;
  }
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    // Silences yaml's process warnings (e.g. collection keys); problems are reported below.
    logLevel: "error",
  });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return { line: null, col: null };
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
  const list = Array.isArray(docs) ? docs : [];
  if (!Array.isArray(docs)) {
    // An empty stream yields an EmptyStream object.
    return invalid(source, [problem("", "file is empty; expected a YAML mapping with schemaVersion: 1")]);
  }
  if (list.length === 0) return invalid(source, [problem("", "file is empty; expected a YAML mapping")]);
  if (list.length > 1) {
    const second = list[1] as Document.Parsed;
    return invalid(source, [
      { ...problem("", "multiple YAML documents; a config file holds exactly one"), ...at(second.range[0]) },
    ]);
  }
  const doc = list[0] as Document.Parsed;
  if (doc.errors.length > 0) return invalid(source, syntaxProblems(doc.errors, at));
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    return invalid(source, [problem("", `YAML: ${yamlMessage((err as Error).message)}`)]);
  }
  const locate = (pointer: string, key = false) => at(offsetOf(doc, pointer, key));
  const result = await validateConfigValue(value, { ...options, source });
  if (result.ok) return { ...result, warnings: result.warnings.map((w) => ({ ...w, ...locate(w.pointer) })) };
  return {
    ...result,
    problems: result.problems.map((p) => ({ ...p, ...locate(p.pointer, ON_KEY.has(p)) })),
    warnings: result.warnings.map((w) => ({ ...w, ...locate(w.pointer) })),
  };
}

/**
 * Validates an already-parsed config value (e.g. the `config` of a pushed
 * message) and normalises it. Problems carry pointers but no line:column.
 * Synchronous except for the optional `credentialFile` checks.
 */
export async function validateConfigValue(value: unknown, options: LoadOptions = {}): Promise<LoadResult> {
  const source = options.source ?? "<input>";
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "empty" : Array.isArray(value) ? "a list" : `a ${typeof value}`;
    return invalid(source, [problem("", `config must be a mapping with schemaVersion: 1, got ${kind}`)]);
  }
  const sv = (value as { schemaVersion?: unknown }).schemaVersion;
  if (
    typeof sv === "number" &&
    Number.isInteger(sv) &&
    !(SUPPORTED_SCHEMA_VERSIONS as readonly number[]).includes(sv)
  ) {
    return {
      ok: false,
      source,
      code: "UNSUPPORTED_SCHEMA",
      warnings: [],
      problems: [
        problem(
          "/schemaVersion",
          `schemaVersion ${sv} is not supported (supported: ${SUPPORTED_SCHEMA_VERSIONS.join(", ")})`,
        ),
      ],
    };
  }
  const schemaOk = validateSchema(value);
  const problems = schemaOk ? [] : schemaProblems(validateSchema.errors ?? []);
  // Semantic checks run even when the schema failed, on whatever parts are
  // well-typed, so one run reports every problem it can.
  const semantic = await semanticProblems(value as Record<string, unknown>, options);
  problems.push(...semantic.problems);
  const warnings = semantic.warnings;
  if (problems.length > 0) return { ok: false, source, code: "INVALID_CONFIG", problems, warnings };
  const normalised = normalise(value as SfuConfigV1);
  return { ok: true, source, config: normalised, hash: configHash(normalised), warnings };
}

/** The checks JSON Schema cannot express. Defensive: `value` may have failed the schema. */
async function semanticProblems(
  value: Record<string, unknown>,
  options: LoadOptions,
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

function sortedTurnServer(t: TurnServer): TurnServer {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(t).sort()) {
    const v = t[key as keyof TurnServer];
    out[key] = Array.isArray(v) ? [...v] : v;
  }
  return out as TurnServer;
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

function problem(pointer: string, message: string): ConfigProblem {
  return { severity: "error", pointer, message, line: null, col: null };
}

function invalid(source: string, problems: ConfigProblem[]): LoadResult {
  return { ok: false, source, code: "INVALID_CONFIG", problems, warnings: [] };
}

/** Most YAML syntax errors reported for one file; the rest are summarised. */
const MAX_SYNTAX_PROBLEMS = 10;

/** YAML parse errors as problems: one line each, stack exhaustion renamed, duplicates and floods cut. */
function syntaxProblems(
  errors: readonly { message: string; pos: [number, number] }[],
  at: (offset: number | undefined) => { line: number | null; col: number | null },
): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const message = `YAML: ${yamlMessage(e.message)}`;
    if (message.includes("nested too deeply") && seen.has(message)) continue;
    seen.add(message);
    out.push({ ...problem("", message), ...at(e.pos[0]) });
  }
  if (out.length > MAX_SYNTAX_PROBLEMS) {
    const more = out.length - MAX_SYNTAX_PROBLEMS;
    out.length = MAX_SYNTAX_PROBLEMS;
    out.push(problem("", `YAML: ${more} more syntax error(s) not shown`));
  }
  return out;
}

/** First line of a yaml error message; stack exhaustion on absurd nesting gets a plain name. */
function yamlMessage(message: string): string {
  if (/call stack|stack overflow/i.test(message)) return "document is nested too deeply";
  return message.split("\n")[0] ?? message;
}

function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Problems about a key itself (unknown key): loadConfigText locates the key, not its value. */
const ON_KEY = new WeakSet<ConfigProblem>();

/** Turns ajv errors into problems; drops the noise ajv emits alongside the useful error. */
function schemaProblems(errors: ErrorObject[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    let pointer = e.instancePath;
    let message: string;
    let onKey = false;
    switch (e.keyword) {
      case "additionalProperties":
        pointer = `${e.instancePath}/${escapePointer(String(e.params.additionalProperty))}`;
        message = `unknown key ${JSON.stringify(e.params.additionalProperty)}`;
        onKey = true;
        break;
      case "required":
        message = `missing required key ${JSON.stringify(e.params.missingProperty)}`;
        break;
      case "enum":
        message = `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
        break;
      case "const":
        message = `must be ${JSON.stringify(e.params.allowedValue)}`;
        break;
      case "anyOf":
        continue; // the branch errors (format) say more
      case "format":
        message = `must be a valid ${e.params.format === "ipv4" || e.params.format === "ipv6" ? "IP address" : e.params.format}`;
        break;
      case "uniqueItems": {
        const [first, dup] = [Number(e.params.j), Number(e.params.i)].sort((a, b) => a - b);
        pointer = `${e.instancePath}/${dup}`;
        message = `duplicate of item ${first}; list each value once`;
        break;
      }
      case "false schema":
        message = "unexpected extra item";
        break;
      default:
        message = e.message ?? "is invalid";
    }
    const key = `${pointer}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const p: ConfigProblem = { severity: "error", pointer, message, line: null, col: null };
    if (onKey) ON_KEY.add(p);
    out.push(p);
  }
  return out;
}

/** Offset in the source of the node at `pointer` (or of its key), else of its nearest ancestor. */
function offsetOf(doc: Document.Parsed, pointer: string, key: boolean): number | undefined {
  const segments =
    pointer === ""
      ? []
      : pointer
          .slice(1)
          .split("/")
          .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
  let node: unknown = doc.contents;
  let offset = isNode(node) ? (node as Node).range?.[0] : undefined;
  for (const [i, seg] of segments.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (!pair) break;
      const last = i === segments.length - 1;
      if (last && key && isNode(pair.key)) return (pair.key as Node).range?.[0];
      node = pair.value;
      if (!isNode(node)) return isNode(pair.key) ? (pair.key as Node).range?.[0] : offset;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (!isNode(item)) break;
      node = item;
    } else break;
    offset = (node as Node).range?.[0] ?? offset;
  }
  return offset;
}

// --- Building blocks shared with other YAML documents of the ConfigMap (the rollout policy) ---

/** One YAML document parsed as the config loader parses it, able to locate a JSON pointer in its source. */
export type ParsedYamlDocument =
  | {
      ok: true;
      value: unknown;
      /** line:col of the value at `pointer` (of its key when `key`), else of its nearest ancestor. */
      locate: (pointer: string, key?: boolean) => { line: number | null; col: number | null };
    }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Parses YAML (or JSON) text with the config loader's rules: one document,
 * unique keys, strict syntax, at most {@link MAX_YAML_ALIASES} alias
 * dereferences, at most `maxBytes` bytes. Problems carry line:col.
 */
export function parseYamlDocument(text: string, maxBytes: number = MAX_CONFIG_BYTES): ParsedYamlDocument {
  if (Buffer.byteLength(text, "utf8") > maxBytes) {
    return { ok: false, problems: [problem("", `file exceeds ${maxBytes} bytes`)] };
  }
  if (text.includes("\u0000")) return { ok: false, problems: [problem("", "file contains NUL bytes; is it binary?")] };
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    logLevel: "error",
  });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return { line: null, col: null };
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
  if (!Array.isArray(docs) || docs.length === 0) {
    return { ok: false, problems: [problem("", "file is empty; expected a YAML mapping")] };
  }
  if (docs.length > 1) {
    const second = docs[1] as Document.Parsed;
    return {
      ok: false,
      problems: [{ ...problem("", "multiple YAML documents; a file holds exactly one"), ...at(second.range[0]) }],
    };
  }
  const doc = docs[0] as Document.Parsed;
  if (doc.errors.length > 0) return { ok: false, problems: syntaxProblems(doc.errors, at) };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    return { ok: false, problems: [problem("", `YAML: ${yamlMessage((err as Error).message)}`)] };
  }
  return { ok: true, value, locate: (pointer, key = false) => at(offsetOf(doc, pointer, key)) };
}

/**
 * ajv errors as problems (the config loader's wording: unknown key, missing
 * required key, must be one of ...); `onKey` is true for problems about a key
 * itself, which {@link ParsedYamlDocument} `locate` should place on the key.
 */
export function describeSchemaErrors(errors: ErrorObject[]): (ConfigProblem & { onKey: boolean })[] {
  return schemaProblems(errors).map((p) => ({ ...p, onKey: ON_KEY.has(p) }));
}
