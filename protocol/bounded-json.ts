/**
 * The one bounded reader for JSON from outside the process (S3 objects and
 * error bodies, SQS message bodies, WebSocket frames, HTTP bodies): the same
 * limits as a config file (yaml-limits.ts) in bytes, nesting depth, values and
 * keys, checked by one linear scan of the text before `JSON.parse` builds
 * anything, so no input of any shape costs more than its limits allow. The
 * parsing itself is `JSON.parse`'s; the scan only counts.
 *
 * {@link readBoundedStream} bounds the bytes and the time of reading a body
 * (an SDK or HTTP stream) before any of it is parsed.
 */
import { MAX_YAML_DEPTH, MAX_YAML_KEYS, MAX_YAML_NODES } from "./yaml-limits.ts";

/** Limits on one JSON text; each defaults to the config file's own limit. */
export interface JsonLimits {
  /** Most bytes of UTF-8 text (no default: every caller names its own). */
  maxBytes: number;
  /** Deepest nesting of arrays and objects. Default MAX_YAML_DEPTH (64). */
  maxDepth?: number;
  /** Most values (scalars, arrays, objects, object keys excluded). Default MAX_YAML_NODES (100,000). */
  maxValues?: number;
  /** Most object keys in the whole text. Default MAX_YAML_KEYS (10,000). */
  maxKeys?: number;
}

/** Why a JSON text was refused. */
export type JsonRefusal = "TOO_LARGE" | "TOO_DEEP" | "TOO_MANY_VALUES" | "TOO_MANY_KEYS" | "NOT_UTF8" | "BAD_JSON";

/** The outcome of {@link parseBoundedJson}: the value, or why not (never a throw for bad input). */
export type BoundedJsonResult = { ok: true; value: unknown } | { ok: false; code: JsonRefusal; message: string };

const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * Parses `input` (text, or bytes that must be UTF-8) as JSON within `limits`.
 * `where` names the input in messages (for example `s3://bucket/key`).
 * Misuse (a non-positive maxBytes) is a RangeError.
 */
export function parseBoundedJson(input: string | Uint8Array, limits: JsonLimits, where = "JSON"): BoundedJsonResult {
  if (!(limits.maxBytes > 0)) throw new RangeError(`maxBytes must be positive, got ${limits.maxBytes}`);
  const maxDepth = limits.maxDepth ?? MAX_YAML_DEPTH;
  const maxValues = limits.maxValues ?? MAX_YAML_NODES;
  const maxKeys = limits.maxKeys ?? MAX_YAML_KEYS;
  let text: string;
  if (typeof input === "string") {
    // A UTF-16 string is at least length and at most 3 x length UTF-8 bytes: skip the count when it cannot matter.
    if (
      input.length > limits.maxBytes ||
      (input.length * 3 > limits.maxBytes && Buffer.byteLength(input, "utf8") > limits.maxBytes)
    ) {
      return refuse("TOO_LARGE", `${where}: more than ${limits.maxBytes} bytes`);
    }
    text = input;
  } else {
    if (input.length > limits.maxBytes) {
      return refuse("TOO_LARGE", `${where}: ${input.length} bytes exceeds ${limits.maxBytes}`);
    }
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(input);
    } catch {
      return refuse("NOT_UTF8", `${where}: not UTF-8 text`);
    }
  }
  const counted = scan(text, maxDepth, maxValues, maxKeys);
  if (counted !== null) return refuse(counted.code, `${where}: ${counted.message}`);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    // JSON.parse's message quotes the text around the error; say only where (the text may hold a secret).
    const at = /at position (\d+)/.exec((err as Error).message);
    return refuse("BAD_JSON", `${where}: not JSON${at ? ` (at position ${at[1]})` : ""}`);
  }
}

/**
 * Counts depth, values and keys in one pass, outside strings. A value is
 * counted at each container opening and at each scalar start (after `[`, `,`
 * or `:`), so malformed text can only be counted high, never low; JSON.parse
 * rejects it afterwards.
 */
function scan(
  text: string,
  maxDepth: number,
  maxValues: number,
  maxKeys: number,
): { code: JsonRefusal; message: string } | null {
  let depth = 0;
  let values = 0;
  let keys = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string; a backslash skips the next code unit.
      i++;
      while (i < n) {
        const s = text.charCodeAt(i);
        if (s === BACKSLASH) i += 2;
        else if (s === QUOTE) break;
        else i++;
      }
      continue;
    }
    if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) return { code: "TOO_DEEP", message: `nested more than ${maxDepth} levels deep` };
      if (++values > maxValues) return { code: "TOO_MANY_VALUES", message: `more than ${maxValues} values` };
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COMMA) {
      if (++values > maxValues) return { code: "TOO_MANY_VALUES", message: `more than ${maxValues} values` };
    } else if (c === COLON) {
      if (++keys > maxKeys) return { code: "TOO_MANY_KEYS", message: `more than ${maxKeys} object keys` };
    }
  }
  return null;
}

function refuse(code: JsonRefusal, message: string): BoundedJsonResult {
  return { ok: false, code, message };
}

/** Limits on reading one body. */
export interface StreamLimits {
  /** Most bytes read; the stream is destroyed past it. */
  maxBytes: number;
  /** Most milliseconds from the first read to the end (a hanging or trickling body). */
  timeoutMs: number;
  /** Aborts the read early (the process is stopping). */
  signal?: AbortSignal;
}

/** The outcome of {@link readBoundedStream}. */
export type StreamResult =
  | { ok: true; bytes: Buffer }
  | { ok: false; code: "TOO_LARGE" | "TIMEOUT" | "ABORTED" | "READ_FAILED"; message: string };

/**
 * Reads an async-iterable body (a Node stream, an SDK body, a fetch body) to
 * at most `maxBytes` within `timeoutMs`; past either the body is destroyed and
 * the read refused. Never throws for the body's own failures.
 */
export async function readBoundedStream(body: unknown, limits: StreamLimits, where = "body"): Promise<StreamResult> {
  if (body === undefined || body === null) return { ok: true, bytes: Buffer.alloc(0) };
  const destroy = () => (body as { destroy?: (e?: Error) => void }).destroy?.();
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<"TIMEOUT" | "ABORTED">((resolve) => {
    timer = setTimeout(() => resolve("TIMEOUT"), limits.timeoutMs);
    timer.unref?.();
    if (limits.signal) {
      onAbort = () => resolve("ABORTED");
      if (limits.signal.aborted) onAbort();
      else limits.signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  const iterator = (body as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]?.();
  if (!iterator) {
    clearTimeout(timer);
    return { ok: false, code: "READ_FAILED", message: `${where}: not a readable body` };
  }
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), stop]);
      if (next === "TIMEOUT" || next === "ABORTED") {
        destroy();
        void iterator.return?.().catch(() => {});
        return next === "TIMEOUT"
          ? { ok: false, code: "TIMEOUT", message: `${where}: not read within ${limits.timeoutMs} ms` }
          : { ok: false, code: "ABORTED", message: `${where}: read aborted` };
      }
      if (next.done) break;
      const chunk = typeof next.value === "string" ? Buffer.from(next.value) : Buffer.from(next.value);
      size += chunk.length;
      if (size > limits.maxBytes) {
        destroy();
        void iterator.return?.().catch(() => {});
        return { ok: false, code: "TOO_LARGE", message: `${where}: exceeds ${limits.maxBytes} bytes` };
      }
      chunks.push(chunk);
    }
  } catch (err) {
    return { ok: false, code: "READ_FAILED", message: `${where}: ${(err as Error)?.message ?? String(err)}` };
  } finally {
    clearTimeout(timer);
    if (onAbort) limits.signal?.removeEventListener("abort", onAbort);
  }
  return { ok: true, bytes: Buffer.concat(chunks, size) };
}
