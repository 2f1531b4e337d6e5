/**
 * YAML text -> plain JSON-like value, with bounded cost for any input and a
 * source location for every value.
 *
 * Three passes, each linear in the input:
 * 1. Lex + CST parse (the `yaml` package's Lexer and Parser, token by
 *    token). Before the whole document is in memory this pass refuses
 *    nesting deeper than {@link MAX_YAML_DEPTH} (the parser's own stack),
 *    more than {@link MAX_YAML_TOKENS} tokens (a CST node costs hundreds of
 *    bytes, so this bounds memory), and notes every YAML directive and tag
 *    (a config is plain data: only `%YAML 1.2` is accepted).
 * 2. Compose the CST into a Document (`yaml`'s Composer, core schema;
 *    duplicate keys are checked in pass 3, in linear time).
 * 3. Convert the Document into a plain value (yaml-convert.ts) in one walk that counts nodes
 *    after alias expansion (each anchor's size memoised, so a thousand
 *    aliases of a big list cost a thousand additions) against
 *    {@link MAX_YAML_NODES}, counts the bytes of scalar text after
 *    expansion against MAX_YAML_EXPANDED_BYTES, counts mapping keys against
 *    {@link MAX_YAML_KEYS}, refuses duplicate and non-scalar keys, and
 *    records where each key and value starts, so that any JSON pointer is
 *    located in O(depth).
 *
 * Messages never quote text under a secret-like key (see safe-text.ts).
 */
import { Composer, CST, type Document, Lexer, LineCounter, type Node, Parser } from "yaml";
import { Converter, type YamlIssue } from "./yaml-convert.ts";

export type { YamlIssue };

import { DEPTH_MESSAGE, MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_TOKENS } from "./yaml-limits.ts";

export {
  MAX_YAML_ALIASES,
  MAX_YAML_DEPTH,
  MAX_YAML_EXPANDED_BYTES,
  MAX_YAML_KEYS,
  MAX_YAML_NODES,
  MAX_YAML_TOKENS,
} from "./yaml-limits.ts";

/** Where a JSON pointer of the value comes from in the text. */
export type Locate = (pointer: string, onKey: boolean) => { line: number | null; col: number | null };

/**
 * The outcome of {@link readYaml}. With `ok: true` the value is usable for
 * further checks, but `issues` (duplicate keys, keys past the key limit,
 * aliases without an anchor, text past the token limit) still make the file
 * invalid. `readTo` is the first line that was not (entirely) read, when the
 * token limit cut the text; problems found by later checks at or after it
 * are artefacts of the cut.
 */
export type YamlRead =
  | { ok: true; value: unknown; locate: Locate; issues: YamlIssue[]; readTo: number | null }
  | { ok: false; issues: YamlIssue[] };

/**
 * Most lexemes, and most characters of text, parsed between two yields to
 * the event loop: a big file is parsed in slices, so that a process reading
 * one (at a fraction of a CPU) keeps answering its health checks. A typical
 * config is parsed in one slice.
 */
const LEXEMES_PER_SLICE = 8192;
const CHARS_PER_SLICE = 64 * 1024;

/** Resolves after the event loop has run pending I/O callbacks. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Reads one YAML document of at most 1 MiB of text; never throws for bad input. */
export async function readYaml(text: string): Promise<YamlRead> {
  const lines = new LineCounter();
  const at = (offset: number | null | undefined) => {
    if (offset === null || offset === undefined) return { line: null, col: null };
    const pos = lines.linePos(offset);
    return { line: pos.line, col: pos.col };
  };
  const issue = (offset: number | null | undefined, message: string, pointer = "", pinned = false): YamlIssue => ({
    pointer,
    message,
    ...at(offset),
    ...(pinned ? { pinned } : {}),
  });

  const scanned = await scan(text, lines);
  // Composing and converting a big file are slices of their own.
  const big = scanned.sliced;
  if (big) await yieldToEventLoop();
  const issues = scanned.notes.map((n) => issue(n.offset, n.message));
  const composer = new Composer({ strict: true, uniqueKeys: false, prettyErrors: false, logLevel: "error" });
  let docs: Document.Parsed[];
  // yaml reports each syntax error as an Error object; a hostile file can
  // hold tens of thousands, and their stack traces (of no use here) would
  // cost most of the memory.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    docs = [...composer.compose(scanned.tokens, true, text.length)];
  } catch (err) {
    // Not expected (the nesting is bounded), but a bad file must never throw.
    return { ok: false, issues: [...issues, issue(null, `YAML: ${firstLine((err as Error).message)}`)] };
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const fatal = scanned.fatal === null ? null : issue(scanned.fatal.offset, scanned.fatal.message, "", true);
  // Past a limit the text was cut: what the parser says at or after the cut is about the cut.
  const beforeCut = (offset: number) => fatal?.line == null || lines.linePos(offset).line < fatal.line;
  const yamlIssues = (doc: Document.Parsed, skipNoted: boolean) => {
    for (const e of [...doc.errors, ...doc.warnings]) {
      // Tags and directives were reported by the scan, with a plainer message.
      if (skipNoted && (e.code === "TAG_RESOLVE_FAILED" || e.code === "BAD_DIRECTIVE")) continue;
      if (beforeCut(e.pos[0])) issues.push(issue(e.pos[0], `YAML: ${yamlMessage(e.message, text, e.pos[0])}`));
    }
  };
  if (fatal !== null && scanned.fatal?.kind === "depth") {
    // The syntax errors before the runaway nesting (often its cause, e.g.
    // `a: b: c` on every line) come first.
    for (const doc of docs) yamlIssues(doc, false);
    // The text read so far is shallow enough to convert: that finds the exact node past the limit.
    const contents = docs[0]?.contents;
    let exact: YamlIssue | undefined;
    if (contents) {
      const probe = new Converter(issue);
      probe.run(contents as Node);
      exact = probe.issues.find((i) => i.message === DEPTH_MESSAGE);
    }
    return { ok: false, issues: [...issues, exact ?? fatal] };
  }
  if (docs.length === 0) return { ok: false, issues: [issue(null, "file is empty; expected a YAML mapping")] };
  if (docs.length > 1) {
    issues.push(issue(docs[1]?.range[0], "multiple YAML documents; a config file holds exactly one"));
    if (fatal !== null) issues.push(fatal);
    return { ok: false, issues };
  }
  if (big) await yieldToEventLoop();
  const doc = docs[0] as Document.Parsed;
  yamlIssues(doc, issues.length > 0);
  if (fatal !== null) issues.push(fatal);
  if (issues.length > 0 && fatal === null) return { ok: false, issues };
  if (doc.contents === null) {
    return { ok: false, issues: [issue(null, "file is empty; expected a YAML mapping with schemaVersion: 1")] };
  }

  const converter = new Converter(issue);
  const value = converter.run(doc.contents as Node);
  if (big) await yieldToEventLoop();
  if (converter.stopped || converter.broken) return { ok: false, issues: [...issues, ...converter.issues] };
  const rootOffset = (doc.contents as Node).range?.[0];
  const locate: Locate = (pointer, onKey) => at(converter.offsetOf(value, rootOffset, pointer, onKey));
  return { ok: true, value, locate, issues: [...issues, ...converter.issues], readTo: fatal?.line ?? null };
}

interface ScanNote {
  offset: number;
  message: string;
}

interface ScanFatal extends ScanNote {
  /** "depth": nothing more is checked; "cut": the text before it is checked, the rest not read. */
  kind: "depth" | "cut";
}

/**
 * What each lexeme costs against MAX_YAML_TOKENS, in quarters of a token:
 * the lexemes that make nodes or items count 1 (flow brackets 3: a flow
 * collection is the costliest parse-tree node), anchors and tags count 1,
 * and any other lexeme (spaces, line breaks, comments, document markers)
 * a quarter, since the parse tree keeps each of them too.
 */
const QUARTERS: Partial<Record<string, number>> = {
  "single-quoted-scalar": 4,
  "double-quoted-scalar": 4,
  "block-scalar-header": 4,
  alias: 4,
  anchor: 4,
  tag: 4,
  "seq-item-ind": 4,
  "explicit-key-ind": 4,
  "map-value-ind": 4,
  comma: 4,
  "flow-seq-start": 12,
  "flow-map-start": 12,
  // Marks the lexer inserts (not source text) cost nothing; the scalar after one counts 4.
  scalar: 0,
  "doc-mode": 0,
  "flow-error-end": 0,
};

/**
 * Pass 1: lexes and parses to CST tokens, stopping at the first lexeme that
 * nests too deeply, exceeds the token budget or is one alias too many.
 * The parser's stack holds the document, each open collection and the node
 * being read (a document of depth 64 peaks at 66 in every shape tried: flow
 * and block, maps and sequences, compact and explicit-key forms); conversion
 * checks the exact depth later, this bound only keeps the parse tree shallow.
 * A big text is parsed in slices of LEXEMES_PER_SLICE lexemes.
 */
async function scan(
  text: string,
  lines: LineCounter,
): Promise<{ tokens: CST.Token[]; notes: ScanNote[]; fatal: ScanFatal | null; sliced: boolean }> {
  const parser = new Parser((offset) => lines.addNewLine(offset));
  lines.addNewLine(0);
  const tokens: CST.Token[] = [];
  const notes: ScanNote[] = [];
  const maxStack = MAX_YAML_DEPTH + 3;
  let quarters = 0;
  let aliases = 0;
  let scalarNext = false;
  let count = 0;
  let slices = 0;
  let sliceStart = 0;
  for (const lexeme of new Lexer().lex(text, false)) {
    if (++count % LEXEMES_PER_SLICE === 0 || parser.offset - sliceStart > CHARS_PER_SLICE) {
      sliceStart = parser.offset;
      slices++;
      await yieldToEventLoop();
    }
    // The parser's offset skips the lexer's control lexemes (e.g. the mark before a plain scalar).
    const start = parser.offset;
    let type: string | null = null;
    if (scalarNext) {
      scalarNext = false;
      quarters += 4;
    } else {
      type = CST.tokenType(lexeme);
      if (type === "scalar") scalarNext = true;
      else if (type === "alias") aliases++;
      else if (type === "tag") notes.push({ offset: start, message: tagMessage(text, start) });
      else if (type === "directive-line") {
        const [name = "", ...args] = lexeme.slice(1).trim().split(/\s+/);
        if (!(name === "YAML" && args.length === 1 && args[0] === "1.2")) {
          notes.push({
            offset: start,
            message: `YAML directive %${name.slice(0, 64)} is not accepted: a config file is plain YAML 1.2 data (only %YAML 1.2 may be given)`,
          });
        }
      }
      quarters += (type === null ? undefined : QUARTERS[type]) ?? 1;
    }
    for (const token of parser.next(lexeme)) tokens.push(token);
    let fatal: ScanFatal | null = null;
    if (parser.stack.length > maxStack) {
      fatal = { kind: "depth", offset: start, message: DEPTH_MESSAGE };
    } else if (quarters > 4 * MAX_YAML_TOKENS) {
      fatal = {
        kind: "cut",
        offset: start,
        message: `YAML: file too large to read: more than ${MAX_YAML_TOKENS} YAML tokens; the rest of the file was not read`,
      };
    } else if (aliases > MAX_YAML_ALIASES) {
      fatal = {
        kind: "cut",
        offset: start,
        message: `YAML: more than ${MAX_YAML_ALIASES} aliases; the rest of the file was not read`,
      };
    }
    if (fatal !== null) {
      // Close what is open (a bounded stack) so that the text so far can be composed.
      for (const token of parser.end()) tokens.push(token);
      return { tokens, notes, fatal, sliced: slices > 0 };
    }
  }
  for (const token of parser.end()) tokens.push(token);
  return { tokens, notes, fatal: null, sliced: slices > 0 };
}

function tagMessage(text: string, offset: number): string {
  const what = inSecretContext(text, offset) ? "a YAML tag" : `YAML tag ${firstWord(text, offset)}`;
  return `${what} is not accepted: a config file is plain data (no tags such as !!str or !custom)`;
}

function firstWord(text: string, offset: number): string {
  const m = /^\S{1,64}/.exec(text.slice(offset, offset + 65));
  return m ? m[0] : "";
}

/** A key holding a secret, then `:`, earlier on the line (block or flow style, quoted or not). */
const SECRET_CONTEXT = /["']?[A-Za-z0-9_.-]*(?:credential|password|passwd|secret|token)[A-Za-z0-9_.-]*["']?\s*:/i;

/** True when the line of `offset`, up to it, has a secret-like key: nothing after it may be quoted. */
function inSecretContext(text: string, offset: number): boolean {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  // A key is short; the line start is enough.
  return SECRET_CONTEXT.test(text.slice(lineStart, Math.min(offset, lineStart + 4096)));
}

/** yaml messages that end with a piece of the source text. */
const QUOTING = /^(Block scalar header includes extra characters: |Not a YAML token: |Invalid escape sequence )(.*)$/s;

/** First line of a yaml error message, with any quoted source text redacted in a secret context. */
function yamlMessage(message: string, text: string, offset: number): string {
  const line = firstLine(message);
  if (/call stack|stack overflow/i.test(line)) return `nested more than ${MAX_YAML_DEPTH} levels deep`;
  const m = QUOTING.exec(line);
  if (m && inSecretContext(text, offset)) return `${m[1]}${redactFragment(m[2] ?? "")}`;
  return line;
}

/** `***`, after the fragment's leading YAML indicator if it has one (`|***`, `*` for an alias). */
function redactFragment(fragment: string): string {
  const lead = /^[|>*&!\\]/.exec(fragment)?.[0] ?? "";
  return `${lead}***`;
}

function firstLine(message: string): string {
  return message.split("\n", 1)[0] ?? message;
}
