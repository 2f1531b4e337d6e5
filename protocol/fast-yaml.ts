/**
 * A fast YAML reader for the loader's common case: a valid config file.
 *
 * The `yaml` package builds a full document model (ranges, comments) that the
 * loader needs to give every problem its line:column, but it costs ~10x more
 * than js-yaml on large files (13 ms vs 1.3 ms for 16 KiB on our machines),
 * and most reloads are of valid files with nothing to locate. So the loader
 * first reads the text with js-yaml through a schema that reproduces the
 * YAML 1.2 core schema of the `yaml` package exactly (same regular
 * expressions for null, bool, int and float; everything else a string), and
 * only falls back to the full path when there is anything to report.
 *
 * Returns `undefined` whenever the fast path must not decide: text with
 * anchors, aliases, tags or directives (`&`, `*`, `!`, `%`: the full path caps
 * alias expansion and reports tags), several documents, any parse error, or a
 * mapping key that is not a plain name (the two libraries turn non-string
 * keys into different strings: js-yaml names a null key "null" and `{}`
 * "[object Object]" where `yaml` writes "" and "{}"; every key of a valid
 * config is a plain name other than "null").
 */
import { FAILSAFE_SCHEMA, loadAll, Type } from "js-yaml";

// YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema), as the `yaml` package resolves it.
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const INT_OCT = /^0o[0-7]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const FLOAT_INF = /^[-+]?\.(?:inf|Inf|INF)$/;
const FLOAT_NAN = /^\.(?:nan|NaN|NAN)$/;

const coreSchema = FAILSAFE_SCHEMA.extend({
  implicit: [
    new Type("tag:yaml.org,2002:null", {
      kind: "scalar",
      resolve: (data: string | null) => data === null || NULL.test(data),
      construct: () => null,
    }),
    new Type("tag:yaml.org,2002:bool", {
      kind: "scalar",
      resolve: (data: string | null) => data !== null && BOOL.test(data),
      construct: (data: string) => data[0] === "t" || data[0] === "T",
    }),
    new Type("tag:yaml.org,2002:int", {
      kind: "scalar",
      resolve: (data: string | null) => data !== null && (INT.test(data) || INT_OCT.test(data) || INT_HEX.test(data)),
      construct: (data: string) =>
        INT_OCT.test(data)
          ? Number.parseInt(data.slice(2), 8)
          : INT_HEX.test(data)
            ? Number.parseInt(data, 16)
            : Number(data),
    }),
    new Type("tag:yaml.org,2002:float", {
      kind: "scalar",
      resolve: (data: string | null) =>
        data !== null && (FLOAT.test(data) || FLOAT_INF.test(data) || FLOAT_NAN.test(data)),
      construct: (data: string) =>
        FLOAT_NAN.test(data)
          ? Number.NaN
          : FLOAT_INF.test(data)
            ? data[0] === "-"
              ? -Infinity
              : Infinity
            : Number(data),
    }),
  ],
});

/**
 * Text the full path must read: anchors, aliases, tags, directives, and a `#`
 * right after a non-space character (js-yaml reads `""#x` as a value and a
 * comment, `yaml` reports the missing space as an error).
 */
const NEEDS_FULL_PATH = /[&*!%]|\S#/;

/**
 * Parses `text` as exactly one YAML document holding a mapping, with the core
 * schema, or returns `undefined` when the full `yaml` path must handle it
 * (a config is always a mapping; anything else is an error to locate).
 */
export function fastYamlValue(text: string): unknown {
  if (NEEDS_FULL_PATH.test(text)) return undefined;
  try {
    const docs = loadAll(text, undefined, { schema: coreSchema });
    const [doc] = docs;
    const isMapping = typeof doc === "object" && doc !== null && !Array.isArray(doc);
    return docs.length === 1 && isMapping && !hasUnusualKey(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** Keys both libraries read alike: plain names (not "null", a null key in js-yaml). */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function hasUnusualKey(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasUnusualKey);
  if (typeof value !== "object" || value === null) return false;
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (k === "null" || !PLAIN_KEY.test(k) || hasUnusualKey(obj[k])) return true;
  }
  return false;
}
