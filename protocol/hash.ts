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
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  throw new TypeError(`canonicalJson: unsupported value of type ${typeof value}`);
}

/** A config hash: `sha256:` followed by 64 lowercase hex digits. */
export type ConfigHash = `sha256:${string}`;

/** Pattern every {@link ConfigHash} matches. */
export const HASH_PATTERN = "^sha256:[0-9a-f]{64}$";

/** `sha256:<hex>` of the UTF-8 bytes of the canonical JSON of `value`. */
export function configHash(value: unknown): ConfigHash {
  return `sha256:${createHash("sha256").update(canonicalJson(value), "utf8").digest("hex")}`;
}
