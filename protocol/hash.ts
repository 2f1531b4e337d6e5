/**
 * Canonical JSON and the config hash (PROTOCOL.md "Canonical JSON").
 *
 * Canonical JSON is JSON text with no insignificant whitespace, object keys
 * sorted by UTF-16 code units (JavaScript's default sort; identical to code
 * point order for the ASCII keys the schema allows), strings and numbers as
 * `JSON.stringify` writes them. For the values a config holds (objects, arrays,
 * strings, integers, booleans, null) this equals RFC 8785 (JCS).
 */
import { createHash } from "node:crypto";

/** Serialises a JSON value canonically. Throws TypeError on non-JSON values. */
export function canonicalJson(value: unknown): string {
  // When every object already lists its keys in canonical order (the loader's
  // normalise() builds configs so, and a pushed config arrives so), the
  // native JSON.stringify writes exactly the canonical text in one pass,
  // without the per-node strings and arrays of the general path.
  return inCanonicalOrder(value) ? JSON.stringify(value) : sortedJson(value);
}

/**
 * True when JSON.stringify(value) is already canonical: only JSON values,
 * finite numbers, no toJSON, object keys sorted. Anything else (including
 * values sortedJson rejects) answers false and takes the general path.
 */
function inCanonicalOrder(value: unknown): boolean {
  if (value === null || typeof value === "boolean" || typeof value === "string") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value !== "object") return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
    return true;
  }
  const obj = value as Record<string, unknown>;
  if (typeof obj["toJSON"] === "function") return false;
  let previous: string | undefined;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v === undefined) continue; // omitted by both paths
    if ((previous !== undefined && key <= previous) || !inCanonicalOrder(v)) return false;
    previous = key;
  }
  return true;
}

function sortedJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => sortedJson(v)).join(",")}]`;
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson(obj[k])}`).join(",")}}`;
  }
  throw new TypeError(`canonicalJson: unsupported value of type ${typeof value}`);
}

/**
 * The UTF-8 byte length of `canonicalJson(value)`, counted without building
 * the text; the walk stops as soon as the count passes `stopAbove` (then the
 * result is some number above it). Object keys and strings are counted as
 * JSON.stringify escapes them; an `undefined` array item as `null`, an
 * `undefined` property not at all. Throws TypeError where canonicalJson
 * would (a non-finite number, a function or symbol).
 */
export function canonicalJsonBytes(value: unknown, stopAbove = Number.POSITIVE_INFINITY): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null) total += 4;
    else if (typeof v === "boolean") total += v ? 4 : 5;
    else if (typeof v === "string") total += jsonStringBytes(v);
    else if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: non-finite number ${v}`);
      total += String(v).length;
    } else if (Array.isArray(v)) {
      total += 2 + Math.max(0, v.length - 1);
      for (let i = v.length - 1; i >= 0; i--) stack.push(v[i] === undefined ? null : v[i]);
    } else if (typeof v === "object") {
      const obj = v as Record<string, unknown>;
      let members = 0;
      for (const key of Object.keys(obj)) {
        const item = obj[key];
        if (item === undefined) continue;
        members++;
        total += jsonStringBytes(key) + 1;
        stack.push(item);
      }
      total += 2 + Math.max(0, members - 1);
    } else throw new TypeError(`canonicalJson: unsupported value of type ${typeof v}`);
    if (total > stopAbove) return total;
  }
  return total;
}

/** Bytes of `JSON.stringify(s)` in UTF-8 (quotes included), without building it. */
function jsonStringBytes(s: string): number {
  let n = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) n += 2;
    else if (c >= 0x20 && c < 0x80) n += 1;
    else if (c < 0x20) n += c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n += 4;
        i++;
      } else n += 6;
    } else if (c >= 0xdc00 && c <= 0xdfff) n += 6;
    else n += 3;
  }
  return n;
}

/** A config hash: `sha256:` followed by 64 lowercase hex digits. */
export type ConfigHash = `sha256:${string}`;

/** Pattern every {@link ConfigHash} matches. */
export const HASH_PATTERN = "^sha256:[0-9a-f]{64}$";

/** `sha256:<hex>` of the UTF-8 bytes of the canonical JSON of `value`. */
export function configHash(value: unknown): ConfigHash {
  return canonicalJsonHash(canonicalJson(value));
}

/**
 * `sha256:<hex>` of the UTF-8 bytes of `json`, a text {@link canonicalJson}
 * already wrote: lets a caller that needs the canonical text anyway (e.g. for
 * its size) hash it without serialising twice.
 */
export function canonicalJsonHash(json: string): ConfigHash {
  return `sha256:${createHash("sha256").update(json, "utf8").digest("hex")}`;
}
