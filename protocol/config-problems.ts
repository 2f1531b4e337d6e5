/**
 * Problems found in a config, and how they are reported: JSON Schema errors
 * turned into plain messages, the limits and well-formedness of a plain
 * value (nesting, node and key counts, unpaired surrogates), and the final
 * list (safe text, sorted by position, capped). Internal to protocol/; the
 * public types are re-exported by config-loader.ts.
 */
import type { ErrorObject } from "ajv";
import { NOT_BLANK } from "./config-schema.ts";
import { capText, MAX_MESSAGE_CHARS, safeMessage } from "./safe-text.ts";
import { MAX_YAML_DEPTH, MAX_YAML_KEYS, MAX_YAML_NODES } from "./yaml-document.ts";

/** One problem found in a config. `line`/`col` are 1-based, null when unknown. */
export interface ConfigProblem {
  severity: "error" | "warning";
  /** JSON pointer (RFC 6901) of the offending value; "" for the whole document. */
  pointer: string;
  message: string;
  line: number | null;
  col: number | null;
}

/** Most problems (and, separately, warnings) listed for one config; one more line says how many were left out. */
export const MAX_REPORTED_PROBLEMS = 20;

/** An error problem at `pointer`, not yet located. */
export function problem(pointer: string, message: string): ConfigProblem {
  return { severity: "error", pointer, message, line: null, col: null };
}

/**
 * Limits and well-formedness of a plain value, in one iterative walk
 * (bounded by the node limit even on a shared or cyclic in-process value):
 * nesting depth, node and key counts (`stop` when one is exceeded; `nodes`
 * is the count walked), and
 * unpaired UTF-16 surrogates in strings and keys, which no portable JSON
 * encoder can hash.
 */
export function shapeProblems(root: object): { problems: ConfigProblem[]; stop: boolean; nodes: number } {
  interface Frame {
    value: unknown;
    depth: number;
    parent: Frame | null;
    segment: string;
  }
  const problems: ConfigProblem[] = [];
  const pointerOf = (f: Frame | null, last?: string): string => {
    const parts: string[] = last === undefined ? [] : [last];
    for (let at = f; at !== null && at.parent !== null; at = at.parent) parts.push(at.segment);
    return parts.reduceRight((acc, s) => `${acc}/${escapePointer(s)}`, "");
  };
  const surrogate = "contains an unpaired UTF-16 surrogate (like \\uD800); strings must be well-formed Unicode";
  const stack: Frame[] = [{ value: root, depth: 1, parent: null, segment: "" }];
  let nodes = 0;
  let keys = 0;
  while (stack.length > 0) {
    const f = stack.pop() as Frame;
    if (++nodes > MAX_YAML_NODES) {
      problems.push(problem(pointerOf(f), `more than ${MAX_YAML_NODES} nodes`));
      return { problems, stop: true, nodes };
    }
    const v = f.value;
    if (typeof v === "string") {
      if (!v.isWellFormed()) problems.push(problem(pointerOf(f), `string ${surrogate}`));
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    if (f.depth > MAX_YAML_DEPTH) {
      problems.push(problem(pointerOf(f), `nested more than ${MAX_YAML_DEPTH} levels deep`));
      return { problems, stop: true, nodes };
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        stack.push({ value: v[i], depth: f.depth + 1, parent: f, segment: String(i) });
      continue;
    }
    const entries = Object.keys(v);
    keys += entries.length;
    if (keys > MAX_YAML_KEYS) {
      problems.push(problem(pointerOf(f), `more than ${MAX_YAML_KEYS} mapping keys`));
      return { problems, stop: true, nodes };
    }
    for (let i = entries.length - 1; i >= 0; i--) {
      const key = entries[i] as string;
      if (!key.isWellFormed()) {
        const p = problem(pointerOf(f, key), `key ${surrogate}`);
        ON_KEY.add(p);
        problems.push(p);
      }
      stack.push({ value: (v as Record<string, unknown>)[key], depth: f.depth + 1, parent: f, segment: key });
    }
  }
  return { problems, stop: false, nodes };
}

/**
 * The list as reported: messages made safe to show (URI userinfo redacted,
 * control characters escaped, length capped), long pointers cut, sorted by
 * position, at most MAX_REPORTED_PROBLEMS entries plus one saying how many
 * more there were.
 */
export function finishList(list: ConfigProblem[], kind: "problem" | "warning"): ConfigProblem[] {
  const byPosition = (a: ConfigProblem, b: ConfigProblem) =>
    (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0);
  const safe = (p: ConfigProblem): ConfigProblem => ({
    ...p,
    pointer: capPointer(p.pointer),
    message: safeMessage(p.message),
  });
  if (list.length <= MAX_REPORTED_PROBLEMS) return list.map(safe).sort(byPosition);
  // A reached limit is always listed; the rest are the first by position.
  const pinned = list.filter((p) => PINNED.has(p)).slice(0, MAX_REPORTED_PROBLEMS);
  const rest = list.filter((p) => !PINNED.has(p)).sort(byPosition);
  const shown = [...pinned, ...rest.slice(0, MAX_REPORTED_PROBLEMS - pinned.length)].map(safe).sort(byPosition);
  shown.push({
    severity: kind === "problem" ? "error" : "warning",
    pointer: "",
    message: `and ${list.length - shown.length} more ${kind}(s) not shown`,
    line: null,
    col: null,
  });
  return shown;
}

/** A pointer (it may hold a huge key) cut to the message length, an ellipsis marking the cut. */
function capPointer(pointer: string): string {
  return capText(pointer, MAX_MESSAGE_CHARS);
}

export function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Problems about a key itself (unknown key): loadConfigText locates the key, not its value. */
export const ON_KEY = new WeakSet<ConfigProblem>();
/** Problems saying a limit was reached: listed however many other problems there are. */
export const PINNED = new WeakSet<ConfigProblem>();

/** Turns ajv errors into problems; drops the noise ajv emits alongside the useful error. */
export function schemaProblems(errors: ErrorObject[]): ConfigProblem[] {
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
      case "pattern":
        message = e.params.pattern === NOT_BLANK ? "must not be blank (only whitespace)" : (e.message ?? "is invalid");
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
