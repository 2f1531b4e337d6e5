/**
 * The one config pipeline shared by the agent, `sfu-agent validate` and the
 * standalone SFU: read -> parse YAML -> validate (schema + semantic checks)
 * -> normalise -> hash. Every problem carries the JSON pointer it concerns and,
 * when the input was YAML text, the line:column it comes from.
 *
 * Reading costs bounded time and memory for any input (the limits are in
 * yaml-limits.ts, enforced by yaml-document.ts and, for already-parsed
 * values, config-problems.ts). Problem lists are capped and their text made
 * safe to show (no secrets, no control characters; safe-text.ts). A config
 * whose push frame would exceed the protocol's frame limit is refused.
 *
 * Expected failures (a bad file) are returned as `{ ok: false }` values; this
 * module only throws on programming errors.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import type { ErrorObject } from "ajv";
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { createAjv } from "./ajv.ts";
import { semanticProblems } from "./config-checks.ts";
import {
  type ConfigProblem,
  finishList,
  ON_KEY,
  PINNED,
  problem,
  schemaProblems,
  shapeProblems,
} from "./config-problems.ts";
import { configSchemaV1, normalise, type SfuConfigV1, SUPPORTED_SCHEMA_VERSIONS } from "./config-schema.ts";
import { type ConfigHash, canonicalJson, canonicalJsonBytes, canonicalJsonHash } from "./hash.ts";
import { MAX_FRAME_BYTES } from "./messages-schema.ts";
import { escapeControlChars } from "./safe-text.ts";
import { readYaml, yieldToEventLoop } from "./yaml-document.ts";
import { MAX_YAML_ALIASES } from "./yaml-limits.ts";

export { checkIceUri } from "./config-checks.ts";
export { type ConfigProblem, MAX_REPORTED_PROBLEMS } from "./config-problems.ts";
export { normalise } from "./config-schema.ts";
export {
  MAX_YAML_ALIASES,
  MAX_YAML_DEPTH,
  MAX_YAML_EXPANDED_BYTES,
  MAX_YAML_KEYS,
  MAX_YAML_NODES,
  MAX_YAML_TOKENS,
} from "./yaml-document.ts";

import { configSchemaV2, type NormalisedConfig, normaliseV2, type SfuConfigV2 } from "./config-schema-v2.ts";
import { DEFAULT_SECRETS_DIR } from "./secret-paths.ts";

/** Largest config file accepted, in bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Largest `config` message envelope around the config, in bytes: every field
 * but `config` at its largest (nonce and version up to 2^53-1, a 256-character
 * revision written with 6-byte escapes).
 */
const MAX_ENVELOPE_BYTES = Buffer.byteLength(
  JSON.stringify({
    type: "config",
    nonce: Number.MAX_SAFE_INTEGER,
    version: Number.MAX_SAFE_INTEGER,
    hash: `sha256:${"0".repeat(64)}`,
    revision: "\u0000".repeat(256),
    schemaVersion: 1,
    config: {},
  }),
);
/**
 * Largest canonical JSON of a config, in bytes: what fits in one push frame
 * (MAX_FRAME_BYTES) with the largest envelope. A larger config could never
 * be delivered, so the loader refuses it.
 */
export const MAX_CONFIG_JSON_BYTES = MAX_FRAME_BYTES - MAX_ENVELOPE_BYTES;

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
      config: NormalisedConfig;
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
   * Check that every `credentialFile` and `authSecretFile` exists, is
   * readable and (symlinks resolved) lies under `secretsDir` (default true).
   * `sfu-agent notify` turns this off: the hook Job does not mount the
   * Secret. The path shape (under `secretsDir`, no `..`) is checked either way.
   */
  checkFiles?: boolean;
  /** The one directory secret files may live under (default {@link DEFAULT_SECRETS_DIR}). */
  secretsDir?: string;
}

/** Values with more nodes than this are checked in several event-loop slices. */
const BIG_VALUE_NODES = 10_000;

const ajv = createAjv();
const validateSchema = ajv.compile(configSchemaV1);
const validateSchemaV2 = ajv.compile(configSchemaV2);

/**
 * Formats a problem as `FILE:LINE:COL: <pointer>: <message>` (the `validate`
 * output line). Control characters of every part are escaped (the file name
 * and keys come from outside), so the line is safe to print to a terminal.
 */
export function formatProblem(source: string, p: ConfigProblem): string {
  const where = `${escapeControlChars(source)}:${p.line ?? 1}:${p.col ?? 1}`;
  const prefix = p.severity === "warning" ? "warning: " : "";
  return `${where}: ${escapeControlChars(p.pointer) || "/"}: ${prefix}${escapeControlChars(p.message)}`;
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

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a regular file from offset 0 until EOF or past MAX_CONFIG_BYTES, into
 * a buffer of its own with room for one byte more than fstat said (to notice
 * a file that grew since).
 */
function readWhole(fd: number, statSize: number): Buffer {
  let buf = Buffer.allocUnsafe(Math.min(statSize, MAX_CONFIG_BYTES) + 1);
  let length = 0;
  for (;;) {
    const n = readSync(fd, buf, length, buf.length - length, length);
    length += n;
    if (n === 0 || length > MAX_CONFIG_BYTES) return buf.subarray(0, length);
    if (length === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, MAX_CONFIG_BYTES + 1));
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

/**
 * Parses and validates YAML/JSON config text. Bounded in time and memory for
 * any text (see yaml-document.ts for the limits); every problem is located at
 * its line:column, sorted by position, and at most MAX_REPORTED_PROBLEMS are
 * listed.
 */
export async function loadConfigText(text: string, options: LoadOptions = {}): Promise<LoadResult> {
  const source = options.source ?? "<input>";
  if (Buffer.byteLength(text, "utf8") > MAX_CONFIG_BYTES) {
    return invalid(source, [problem("", `config exceeds ${MAX_CONFIG_BYTES} bytes`)]);
  }
  const read = await readYaml(text);
  if (!read.ok) {
    return invalid(
      source,
      finishList(
        read.issues.map(({ pinned: _, ...i }) => ({ severity: "error", ...i })),
        "problem",
      ),
    );
  }
  const result = await validateValue(read.value, { ...options, source });
  const locate = (p: ConfigProblem): ConfigProblem => ({ ...p, ...read.locate(p.pointer, ON_KEY.has(p)) });
  // Past a cut (the token limit) the value is truncated: what is wrong there is the cut.
  const readTo = read.readTo;
  const beforeCut = (p: ConfigProblem) => readTo === null || (p.line !== null && p.line < readTo);
  const warnings = finishList(result.warnings.map(locate).filter(beforeCut), "warning");
  const yamlProblems = read.issues.map((i): ConfigProblem => {
    const { pinned, ...rest } = i;
    const p: ConfigProblem = { severity: "error", ...rest };
    if (pinned) PINNED.add(p);
    return p;
  });
  if (result.ok && yamlProblems.length === 0) return { ...result, warnings };
  const later = result.ok ? [] : result.problems.map(locate).filter(beforeCut);
  const code = result.ok ? "INVALID_CONFIG" : result.code;
  return { ok: false, source, code, problems: finishList([...yamlProblems, ...later], "problem"), warnings };
}

/**
 * Validates an already-parsed config value (e.g. the `config` of a pushed
 * message) and normalises it. Problems carry pointers but no line:column.
 * The same limits as for YAML text apply (nesting depth, node and key
 * counts), and every string and key must be well-formed Unicode.
 * Synchronous except for the optional `credentialFile` checks.
 */
export async function validateConfigValue(value: unknown, options: LoadOptions = {}): Promise<LoadResult> {
  const result = await validateValue(value, options);
  const warnings = finishList(result.warnings, "warning");
  if (result.ok) return { ...result, warnings };
  return { ...result, problems: finishList(result.problems, "problem"), warnings };
}

/** {@link validateConfigValue} without the final capping and sorting of the lists. */
async function validateValue(value: unknown, options: LoadOptions): Promise<LoadResult> {
  const source = options.source ?? "<input>";
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "empty" : Array.isArray(value) ? "a list" : `a ${typeof value}`;
    return invalid(source, [problem("", `config must be a mapping with schemaVersion: 1, got ${kind}`)]);
  }
  const shape = shapeProblems(value);
  if (shape.stop) return invalid(source, shape.problems);
  // Each check of a big value is a slice of its own (see yieldToEventLoop).
  const big = shape.nodes > BIG_VALUE_NODES;
  if (big) await yieldToEventLoop();
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
  const validate = sv === 2 ? validateSchemaV2 : validateSchema;
  const schemaOk = validate(value);
  const problems = schemaOk ? [] : schemaProblems(validate.errors ?? []);
  if (big) await yieldToEventLoop();
  problems.push(...shape.problems);
  // Semantic checks run even when the schema failed, on whatever parts are
  // well-typed, so one run reports every problem it can.
  const semantic = await semanticProblems(value as Record<string, unknown>, options);
  if (big) await yieldToEventLoop();
  problems.push(...semantic.problems);
  const warnings = semantic.warnings;
  if (problems.length > 0) return { ok: false, source, code: "INVALID_CONFIG", problems, warnings };
  const normalised = sv === 2 ? normaliseV2(value as SfuConfigV2) : normalise(value as SfuConfigV1);
  // The size is known before the text is built: a value whose text would not
  // fit is never serialised (aliases or shared values can make it huge).
  const jsonBytes = canonicalJsonBytes(normalised, MAX_CONFIG_JSON_BYTES);
  if (jsonBytes > MAX_CONFIG_JSON_BYTES) {
    return invalid(source, [
      problem(
        "",
        `config is too large to deliver: its canonical JSON is more than ${MAX_CONFIG_JSON_BYTES} bytes, but a push frame is limited to ` +
          `${MAX_FRAME_BYTES} bytes (the protocol's MAX_FRAME_BYTES), which leaves ${MAX_CONFIG_JSON_BYTES} bytes for the config`,
      ),
    ]);
  }
  return { ok: true, source, config: normalised, hash: canonicalJsonHash(canonicalJson(normalised)), warnings };
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

// --- Building blocks for the other YAML document of the ConfigMap (the rollout policy) ---
// A policy is at most MAX_POLICY_BYTES (64 KiB), which bounds this synchronous
// document-model path; configs take the sliced reader of yaml-document.ts.

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
