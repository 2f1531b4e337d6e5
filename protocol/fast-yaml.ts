/**
 * A fast YAML reader for the loader's common case: a valid config file.
 *
 * The `yaml` package builds a full document model (ranges, comments) that the
 * loader needs to give every problem its line:column, but it costs ~10x more
 * than a plain parse on large files, and most reloads are of valid files
 * with nothing to locate. So the loader first tries this reader, and only
 * falls back to the full path when it declines or there is anything to
 * report.
 *
 * It reads the plain subset configs are written in, with the YAML 1.2 core
 * schema exactly as the `yaml` package resolves it (same regular expressions
 * for null, bool, int and float; everything else a string):
 * - block mappings whose keys are plain names (`[A-Za-z_][A-Za-z0-9_.-]*`,
 *   other than a null or bool word and `__proto__`), each key once;
 * - block sequences, with compact mappings as items (`- urls: [...]`), and
 *   a sequence at its key's own indentation (`key:\n- a`);
 * - one-line values: plain scalars, single- and double-quoted strings (no
 *   escapes), and flow sequences of such scalars (`[vp8, "opus"]`);
 * - comments and blank lines.
 * It declines (returns `undefined`) everything else, which the full path then
 * reads or reports: anchors, aliases, tags, directives (`&`, `*`, `!`, `%`
 * anywhere), a `#` right after a non-space character, tabs, CR, a byte-order
 * mark, document markers, block scalars, multi-line scalars and flow
 * collections, flow mappings, nested flow sequences, escapes, complex keys,
 * duplicate keys, odd indentation, and any text that is not one mapping.
 *
 * Why not a YAML library: the general parsers allocate several times more per
 * reload than the config they build (js-yaml: a dictionary object for every
 * flow collection), and that garbage is what grows the agent's heap in a run
 * of reloads (see the agent benchmark). This reader allocates little beyond
 * the resulting value.
 *
 * A differential test holds it to the `yaml` package: on any text, it either
 * declines or returns exactly what the full path reads.
 */

// YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema), as the `yaml` package resolves it.
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const INT_OCT = /^0o[0-7]+$/;
const INT_HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const FLOAT_INF = /^[-+]?\.(?:inf|Inf|INF)$/;
const FLOAT_NAN = /^\.(?:nan|NaN|NAN)$/;

/** Text left to the full path whatever its shape (see the module comment). */
const NEEDS_FULL_PATH = /[&*!%\t\r\uFEFF]|\S#|^(?:---|\.\.\.)(?:[ \n]|$)/m;

/** Keys the reader declines: words the core schema reads as null or bool (the `yaml` package then renames the key), and `__proto__`. */
const RESERVED_KEY = /^(?:[Nn]ull|NULL|[Tt]rue|TRUE|[Ff]alse|FALSE|__proto__)$/;

/** The `yaml` package refuses longer implicit keys. */
const MAX_KEY_LENGTH = 1000;

const DECLINE: unique symbol = Symbol("decline");
type Read = unknown; // a value, or DECLINE

const SPACE = 32;
const HASH = 35;
const DASH = 45;
const COLON = 58;
const COMMA = 44;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const DOUBLE_QUOTE = 34;
const SINGLE_QUOTE = 39;
const BACKSLASH = 92;

/** Parses `text` as one YAML mapping in the subset above, or returns `undefined` for the full path to handle. */
export function fastYamlValue(text: string): unknown {
  if (NEEDS_FULL_PATH.test(text)) return undefined;
  const r = new Lines(text);
  if (r.indent < 0 || isSequenceEntry(r, r.start + r.indent)) return undefined; // empty, or a list
  const value = mapping(r, r.indent, r.start + r.indent);
  return value === DECLINE || r.indent >= 0 ? undefined : value;
}

/** A cursor over the significant lines of the text (blank and comment-only lines skipped). */
class Lines {
  readonly text: string;
  /** Start of the current line, or text.length past the last one. */
  start = 0;
  /** Its indentation in spaces, or -1 past the last line. */
  indent = -1;
  /** Index of its newline, or text.length. */
  end = 0;
  /** Scratch: where the last scalar or flow sequence read ended. */
  pos = 0;

  constructor(text: string) {
    this.text = text;
    this.next(0);
  }

  /** Moves to the first significant line at or after index `from`. */
  next(from: number): void {
    const t = this.text;
    for (let p = from; p < t.length; ) {
      let q = p;
      while (t.charCodeAt(q) === SPACE) q++;
      let e = t.indexOf("\n", q);
      if (e < 0) e = t.length;
      if (q === e || t.charCodeAt(q) === HASH) {
        p = e + 1;
        continue;
      }
      this.start = p;
      this.indent = q - p;
      this.end = e;
      return;
    }
    this.start = t.length;
    this.indent = -1;
    this.end = t.length;
  }
}

function isSequenceEntry(r: Lines, at: number): boolean {
  if (r.text.charCodeAt(at) !== DASH) return false;
  const c = r.text.charCodeAt(at + 1);
  return at + 1 >= r.end || c === SPACE;
}

function isNameStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57) || c === 46 || c === DASH;
}

function isFlowIndicator(c: number): boolean {
  return c === COMMA || c === OPEN_BRACKET || c === CLOSE_BRACKET || c === OPEN_BRACE || c === CLOSE_BRACE;
}

/** End of the plain name at `at` if it is followed by `:` and a space or the end of the line, else -1. */
function keyEnd(r: Lines, at: number): number {
  const t = r.text;
  if (!isNameStart(t.charCodeAt(at))) return -1;
  let k = at + 1;
  while (isNameChar(t.charCodeAt(k))) k++;
  if (t.charCodeAt(k) !== COLON) return -1;
  return k + 1 >= r.end || t.charCodeAt(k + 1) === SPACE ? k : -1;
}

/** First non-space index at or after `p` on the current line. */
function skipSpaces(r: Lines, p: number): number {
  while (p < r.end && r.text.charCodeAt(p) === SPACE) p++;
  return p;
}

/** The block node at the current line (indented deeper than its parent). */
function block(r: Lines): Read {
  const at = r.start + r.indent;
  return isSequenceEntry(r, at) ? sequence(r, r.indent) : mapping(r, r.indent, at);
}

/**
 * A block mapping at indentation `n` whose first key starts at `first` (on
 * the current line: after `- ` for a compact mapping in a sequence). Leaves
 * the cursor on the first line after it.
 */
function mapping(r: Lines, n: number, first: number): Read {
  const t = r.text;
  const out: Record<string, unknown> = {};
  for (let at = first; ; at = r.start + n) {
    const k = keyEnd(r, at);
    if (k < 0) return DECLINE;
    if (k - at > MAX_KEY_LENGTH) return DECLINE;
    const key = t.slice(at, k);
    if (RESERVED_KEY.test(key) || Object.hasOwn(out, key)) return DECLINE;
    const v = valueAfter(r, skipSpaces(r, k + 1), n, true);
    if (v === DECLINE) return DECLINE;
    out[key] = v;
    if (r.indent !== n) break;
    if (isSequenceEntry(r, r.start + n)) return DECLINE; // a list entry among keys
  }
  return r.indent > n ? DECLINE : out;
}

/** A block sequence at indentation `n` (the current line is its first `-` entry). Leaves the cursor after it. */
function sequence(r: Lines, n: number): Read {
  const t = r.text;
  const out: unknown[] = [];
  do {
    const at = skipSpaces(r, r.start + n + 1);
    let v: Read;
    if (at < r.end && t.charCodeAt(at) !== HASH && keyEnd(r, at) >= 0) {
      v = mapping(r, at - r.start, at); // compact mapping: `- key: value`
    } else if (isSequenceEntry(r, at)) {
      return DECLINE; // `- - x`
    } else {
      v = valueAfter(r, at, n, false);
    }
    if (v === DECLINE) return DECLINE;
    out.push(v);
  } while (r.indent === n && isSequenceEntry(r, r.start + n));
  return r.indent > n ? DECLINE : out;
}

/**
 * The value of a key or sequence entry at indentation `n` that starts at
 * `at` on the current line: a one-line value, or (nothing but a comment left
 * on the line) the block below it, or null. `sameIndentList`: a sequence may
 * sit at the key's own indentation. Leaves the cursor after the value.
 */
function valueAfter(r: Lines, at: number, n: number, sameIndentList: boolean): Read {
  if (at < r.end && r.text.charCodeAt(at) !== HASH) {
    const v = inline(r, at);
    r.next(r.end + 1);
    return r.indent > n ? DECLINE : v; // a continuation line
  }
  r.next(r.end + 1);
  if (r.indent > n) return block(r);
  if (sameIndentList && r.indent === n && isSequenceEntry(r, r.start + n)) return sequence(r, n);
  return null;
}

/** A one-line value from `at` to the end of the current line, comment allowed. */
function inline(r: Lines, at: number): Read {
  const t = r.text;
  const c = t.charCodeAt(at);
  let v: Read;
  if (c === OPEN_BRACKET) v = flowSequence(r, at);
  else if (c === DOUBLE_QUOTE || c === SINGLE_QUOTE) v = quoted(r, at);
  else return plain(r, at, false);
  if (v === DECLINE) return DECLINE;
  const p = skipSpaces(r, r.pos);
  return p === r.end || t.charCodeAt(p) === HASH ? v : DECLINE;
}

/**
 * A plain scalar from `at`, ending at a comment or the end of the line, or
 * (`flow`) at `,` or `]`, resolved with the core schema. Sets r.pos to where
 * it ended.
 */
function plain(r: Lines, at: number, flow: boolean): Read {
  const t = r.text;
  const end = r.end;
  const c = t.charCodeAt(at);
  // Indicators that cannot start a plain scalar (`?` and `:` are declined even where YAML allows them),
  // and `-` before a space or, in a flow list, before a flow indicator.
  if ("{}[],#&*!|>'\"%@`?:".includes(t[at] as string)) return DECLINE;
  if (c === DASH) {
    const e = t.charCodeAt(at + 1);
    if (at + 1 >= end || e === SPACE || (flow && isFlowIndicator(e))) return DECLINE;
  }
  let p = at;
  for (; p < end; p++) {
    const d = t.charCodeAt(p);
    if (d === HASH) break; // always after a space (NEEDS_FULL_PATH)
    if (d === COLON) {
      const e = t.charCodeAt(p + 1);
      if (p + 1 >= end || e === SPACE || (flow && isFlowIndicator(e))) return DECLINE; // an implicit key
    }
    if (flow && isFlowIndicator(d)) {
      if (d === COMMA || d === CLOSE_BRACKET) break;
      return DECLINE;
    }
  }
  r.pos = p;
  while (t.charCodeAt(p - 1) === SPACE) p--;
  return coreScalar(t.slice(at, p));
}

/** A single- or double-quoted scalar closed on the same line (`''` is a quote; no backslash escapes). Sets r.pos after it. */
function quoted(r: Lines, at: number): Read {
  const t = r.text;
  const q = t.charCodeAt(at);
  let out = "";
  let from = at + 1;
  for (let p = from; p < r.end; p++) {
    const d = t.charCodeAt(p);
    if (d === BACKSLASH && q === DOUBLE_QUOTE) return DECLINE;
    if (d !== q) continue;
    if (q === SINGLE_QUOTE && t.charCodeAt(p + 1) === SINGLE_QUOTE) {
      out += t.slice(from, p + 1);
      from = p + 2;
      p++;
      continue;
    }
    r.pos = p + 1;
    return out + t.slice(from, p);
  }
  return DECLINE;
}

/** A flow sequence of scalars closed on the same line. Sets r.pos after its `]`. */
function flowSequence(r: Lines, at: number): Read {
  const t = r.text;
  const out: unknown[] = [];
  let p = skipSpaces(r, at + 1);
  if (t.charCodeAt(p) === CLOSE_BRACKET) {
    r.pos = p + 1;
    return out;
  }
  for (;;) {
    if (p >= r.end) return DECLINE;
    const c = t.charCodeAt(p);
    const v = c === DOUBLE_QUOTE || c === SINGLE_QUOTE ? quoted(r, p) : plain(r, p, true);
    if (v === DECLINE) return DECLINE;
    out.push(v);
    p = skipSpaces(r, r.pos);
    const d = t.charCodeAt(p);
    if (d === CLOSE_BRACKET && p < r.end) {
      r.pos = p + 1;
      return out;
    }
    if (d !== COMMA || p >= r.end) return DECLINE;
    p = skipSpaces(r, p + 1);
  }
}

/** A plain scalar's value under the core schema. */
function coreScalar(s: string): unknown {
  const c = s.charCodeAt(0);
  // Only these first characters can start a null, bool or number; most strings stop here.
  const special =
    c === 126 ||
    c === 110 ||
    c === 78 ||
    c === 116 ||
    c === 84 ||
    c === 102 ||
    c === 70 ||
    c === 43 ||
    c === DASH ||
    c === 46 ||
    (c >= 48 && c <= 57);
  if (!special) return s;
  if (NULL.test(s)) return null;
  if (BOOL.test(s)) return c === 116 || c === 84;
  if (INT.test(s)) return Number(s);
  if (INT_OCT.test(s)) return Number.parseInt(s.slice(2), 8);
  if (INT_HEX.test(s)) return Number.parseInt(s, 16);
  if (FLOAT.test(s)) return Number(s);
  if (FLOAT_INF.test(s)) return c === DASH ? -Infinity : Infinity;
  if (FLOAT_NAN.test(s)) return Number.NaN;
  return s;
}
