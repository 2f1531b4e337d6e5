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
