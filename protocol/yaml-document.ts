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
 * 3. Convert the Document into a plain value in one walk that counts nodes
 *    after alias expansion (each anchor's size memoised, so a thousand
 *    aliases of a big list cost a thousand additions) against
 *    {@link MAX_YAML_NODES}, counts mapping keys against
 *    {@link MAX_YAML_KEYS}, refuses duplicate and non-scalar keys, and
 *    records where each key and value starts, so that any JSON pointer is
 *    located in O(depth).
 *
 * Messages never quote text under a secret-like key (see safe-text.ts).
 */
import {
  Composer,
  CST,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  Parser,
} from "yaml";
import { isSecretKey } from "./safe-text.ts";

/** Deepest nesting of lists and mappings accepted. */
export const MAX_YAML_DEPTH = 64;
/** Most YAML nodes (keys, values, list items; aliases counted at their expanded size) accepted. */
export const MAX_YAML_NODES = 100_000;
/** Most mapping keys in one file; keys past it are not read (and the file is refused). */
export const MAX_YAML_KEYS = 10_000;
/** Most alias uses (`*name`) in one file. */
export const MAX_YAML_ALIASES = 100;
/**
 * Most YAML tokens parsed (scalars, aliases, indicators `-` `?` `:` `,` and
 * flow brackets, which count 3): bounds the parse tree held in memory before
 * the node count can be known.
 */
export const MAX_YAML_TOKENS = 60_000;

const DEPTH_MESSAGE = `YAML: nested more than ${MAX_YAML_DEPTH} levels deep`;

/** One problem found while reading YAML; `line`/`col` 1-based, null when unknown. */
export interface YamlIssue {
  pointer: string;
  message: string;
  line: number | null;
  col: number | null;
  /** A limit was reached: always among the problems listed, however many there are. */
  pinned?: boolean;
}

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
 * Source offsets of the children of one converted list or mapping: for a
 * list, the start of each item; for a mapping, the start of each key and of
 * its value.
 */
type Offsets = number[] | Map<string, [key: number, value: number]>;

/** Reads one YAML document of at most 1 MiB of text; never throws for bad input. */
export function readYaml(text: string): YamlRead {
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

  const scanned = scan(text, lines);
  const issues = scanned.notes.map((n) => issue(n.offset, n.message));
  const composer = new Composer({ strict: true, uniqueKeys: false, prettyErrors: false, logLevel: "error" });
  let docs: Document.Parsed[];
  try {
    docs = [...composer.compose(scanned.tokens, true, text.length)];
  } catch (err) {
    // Not expected (the nesting is bounded), but a bad file must never throw.
    return { ok: false, issues: [...issues, issue(null, `YAML: ${firstLine((err as Error).message)}`)] };
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
  const doc = docs[0] as Document.Parsed;
  yamlIssues(doc, issues.length > 0);
  if (fatal !== null) issues.push(fatal);
  if (issues.length > 0 && fatal === null) return { ok: false, issues };
  if (doc.contents === null) {
    return { ok: false, issues: [issue(null, "file is empty; expected a YAML mapping with schemaVersion: 1")] };
  }

  const converter = new Converter(issue);
  const value = converter.run(doc.contents as Node);
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
  kind: "depth" | "tokens";
}

/** Tokens counted by the scan; flow brackets weigh more (see MAX_YAML_TOKENS). */
const TOKEN_WEIGHT: Partial<Record<string, number>> = {
  "single-quoted-scalar": 1,
  "double-quoted-scalar": 1,
  "block-scalar-header": 1,
  alias: 1,
  "seq-item-ind": 1,
  "explicit-key-ind": 1,
  "map-value-ind": 1,
  comma: 1,
  "flow-seq-start": 3,
  "flow-map-start": 3,
};

/**
 * Pass 1: lexes and parses to CST tokens, stopping at the first lexeme that
 * nests too deeply or exceeds the token budget. The parser's stack holds the
 * document, each open collection and the node being read (a document of
 * depth 64 peaks at 66 in every shape tried: flow and block, maps and
 * sequences, compact and explicit-key forms); conversion checks the exact
 * depth later, this bound only keeps the parse tree shallow.
 */
function scan(text: string, lines: LineCounter): { tokens: CST.Token[]; notes: ScanNote[]; fatal: ScanFatal | null } {
  const parser = new Parser((offset) => lines.addNewLine(offset));
  lines.addNewLine(0);
  const tokens: CST.Token[] = [];
  const notes: ScanNote[] = [];
  const maxStack = MAX_YAML_DEPTH + 3;
  let weight = 0;
  let scalarNext = false;
  for (const lexeme of new Lexer().lex(text, false)) {
    // The parser's offset skips the lexer's control lexemes (e.g. the mark before a plain scalar).
    const start = parser.offset;
    if (scalarNext) {
      scalarNext = false;
      weight++;
    } else {
      const type = CST.tokenType(lexeme);
      if (type === "scalar") scalarNext = true;
      else if (type === "tag") notes.push({ offset: start, message: tagMessage(text, start) });
      else if (type === "directive-line") {
        const [name = "", ...args] = lexeme.slice(1).trim().split(/\s+/);
        if (!(name === "YAML" && args.length === 1 && args[0] === "1.2")) {
          notes.push({
            offset: start,
            message: `YAML directive %${name.slice(0, 64)} is not accepted: a config file is plain YAML 1.2 data (only %YAML 1.2 may be given)`,
          });
        }
      } else weight += (type && TOKEN_WEIGHT[type]) ?? 0;
    }
    for (const token of parser.next(lexeme)) tokens.push(token);
    let fatal: ScanFatal | null = null;
    if (parser.stack.length > maxStack) {
      fatal = { kind: "depth", offset: start, message: DEPTH_MESSAGE };
    } else if (weight > MAX_YAML_TOKENS) {
      fatal = {
        kind: "tokens",
        offset: start,
        message: `YAML: file too large to read: more than ${MAX_YAML_TOKENS} YAML tokens (keys, values, list items, indicators); the rest of the file was not read`,
      };
    }
    if (fatal !== null) {
      // Close what is open (a bounded stack) so that the text so far can be composed.
      for (const token of parser.end()) tokens.push(token);
      return { tokens, notes, fatal };
    }
  }
  for (const token of parser.end()) tokens.push(token);
  return { tokens, notes, fatal: null };
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

function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Thrown inside the Converter to stop at a limit; never escapes it. */
class Stop extends Error {}

/** Pass 3: Document -> plain value (see the module comment). */
class Converter {
  readonly issues: YamlIssue[] = [];
  readonly #issue: (
    offset: number | null | undefined,
    message: string,
    pointer?: string,
    pinned?: boolean,
  ) => YamlIssue;
  /** Offsets of the children of every converted list and mapping. */
  readonly #offsets = new WeakMap<object, Offsets>();
  /** Anchor name -> its node's value and expanded size (null while the anchored node is being converted). */
  readonly #anchors = new Map<string, { value: unknown; size: number | null }>();
  /** Path of the node being converted (keys and indexes), for messages. */
  readonly #path: (string | number)[] = [];
  #nodes = 0;
  #keys = 0;
  #aliases = 0;
  /** True once the key limit was reached: no further key is read. */
  #keysFull = false;
  /** True when a limit stopped the conversion (the value is unusable). */
  stopped = false;
  /**
   * True when an alias could not be resolved: the value holds null in its
   * place, so checking it further would only report artefacts of that.
   */
  broken = false;

  constructor(
    issue: (offset: number | null | undefined, message: string, pointer?: string, pinned?: boolean) => YamlIssue,
  ) {
    this.#issue = issue;
  }

  run(root: Node): unknown {
    try {
      return this.#convert(root, 0).value;
    } catch (err) {
      if (err instanceof Stop) {
        this.stopped = true;
        return undefined;
      }
      throw err;
    }
  }

  #pointer(): string {
    return this.#path.map((s) => `/${escapePointer(String(s))}`).join("");
  }

  #secretPath(): boolean {
    return this.#path.some((s) => typeof s === "string" && isSecretKey(s));
  }

  #fail(node: Node | undefined, message: string, stop: boolean, pinned = stop): void {
    this.issues.push(this.#issue(node?.range?.[0], message, this.#pointer(), pinned));
    if (stop) throw new Stop();
  }

  #count(node: Node, n: number): void {
    this.#nodes += n;
    if (this.#nodes > MAX_YAML_NODES) {
      this.#fail(node, `YAML: more than ${MAX_YAML_NODES} nodes (counting aliases at their expanded size)`, true);
    }
  }

  /** Converts `node`; returns its value and its expanded size in nodes. */
  #convert(node: Node, depth: number): { value: unknown; size: number } {
    if (isAlias(node)) {
      if (++this.#aliases > MAX_YAML_ALIASES) this.#fail(node, `YAML: more than ${MAX_YAML_ALIASES} aliases`, true);
      // Under a secret key an unquoted `*...` may be the secret itself.
      const secret = this.#secretPath();
      const alias = secret ? "*(name not shown: under a secret key)" : `*${node.source}`;
      const anchor = this.#anchors.get(node.source);
      if (!anchor) {
        this.#fail(node, `YAML: alias ${alias} has no anchor ${secret ? "" : `&${node.source} `}before it`, false);
      } else if (anchor.size === null) this.#fail(node, `YAML: alias ${alias} is inside its own anchor`, false);
      if (!anchor || anchor.size === null) {
        this.broken = true;
        return { value: null, size: 1 };
      }
      this.#count(node, anchor.size);
      return { value: anchor.value, size: anchor.size };
    }
    const anchorName = node.anchor;
    if (anchorName) this.#anchors.set(anchorName, { value: undefined, size: null });
    const done = isMap(node) || isSeq(node) ? this.#collection(node, depth + 1) : this.#scalar(node);
    if (anchorName) this.#anchors.set(anchorName, { value: done.value, size: done.size });
    return done;
  }

  #scalar(node: Node): { value: unknown; size: number } {
    this.#count(node, 1);
    const v = isScalar(node) ? node.value : undefined;
    if (v === null || typeof v === "string" || typeof v === "boolean" || typeof v === "number") {
      return { value: v, size: 1 };
    }
    this.#fail(node, "YAML: not a plain value (expected a string, number, boolean or null)", false);
    return { value: null, size: 1 };
  }

  #collection(node: Node, depth: number): { value: unknown; size: number } {
    if (depth > MAX_YAML_DEPTH) this.#fail(node, DEPTH_MESSAGE, true);
    this.#count(node, 1);
    let size = 1;
    if (isSeq(node)) {
      const out: unknown[] = [];
      const offsets: number[] = [];
      for (let i = 0; i < node.items.length; i++) {
        const item = node.items[i] as Node;
        this.#path.push(i);
        const child = this.#convert(item, depth);
        this.#path.pop();
        out.push(child.value);
        offsets.push(item.range?.[0] ?? node.range?.[0] ?? 0);
        size += child.size;
      }
      this.#offsets.set(out, offsets);
      return { value: out, size };
    }
    const out: Record<string, unknown> = {};
    const offsets = new Map<string, [number, number]>();
    if (!isMap(node)) return { value: out, size };
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key as Node | null;
      const keyAt = keyNode?.range?.[0] ?? node.range?.[0] ?? 0;
      if (keyNode !== null && (!isScalar(keyNode) || keyNode.value === undefined)) {
        this.#fail(keyNode, "YAML: a mapping key must be a plain value, not a list, mapping or alias", false);
        continue;
      }
      if (this.#keysFull) break;
      if (++this.#keys > MAX_YAML_KEYS) {
        this.#keysFull = true;
        this.#path.push(keyNode === null || keyNode.value === null ? "" : String(keyNode.value));
        this.#fail(
          keyNode ?? node,
          `YAML: more than ${MAX_YAML_KEYS} mapping keys; the keys from here on were not read`,
          false,
          true,
        );
        this.#path.pop();
        break;
      }
      this.#count(keyNode ?? node, 1);
      size++;
      const raw = keyNode === null ? null : keyNode.value;
      const key = raw === null ? "" : String(raw);
      if (offsets.has(key)) {
        this.#path.push(key);
        this.#fail(keyNode ?? node, `YAML: duplicate key ${JSON.stringify(key)}; map keys must be unique`, false);
        this.#path.pop();
        continue;
      }
      const valueNode = pair.value as Node | null;
      this.#path.push(key);
      const child = valueNode === null ? { value: null, size: 0 } : this.#convert(valueNode, depth);
      this.#path.pop();
      if (valueNode === null) this.#count(keyNode ?? node, 1);
      size += child.size || 1;
      // A key named __proto__ is data, not the object's prototype.
      if (key === "__proto__") {
        Object.defineProperty(out, key, { value: child.value, enumerable: true, writable: true, configurable: true });
      } else out[key] = child.value;
      offsets.set(key, [keyAt, valueNode?.range?.[0] ?? keyAt]);
    }
    this.#offsets.set(out, offsets);
    return { value: out, size };
  }

  /** Offset of the value (or key) at `pointer` in `root`, else of its nearest located ancestor. O(depth). */
  offsetOf(root: unknown, rootOffset: number | undefined, pointer: string, onKey: boolean): number | undefined {
    if (pointer === "") return rootOffset;
    const segments = pointer
      .slice(1)
      .split("/")
      .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
    let node: unknown = root;
    let offset = rootOffset;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i] as string;
      const offsets = typeof node === "object" && node !== null ? this.#offsets.get(node) : undefined;
      if (offsets === undefined) break;
      if (Array.isArray(offsets)) {
        const index = Number(seg);
        const at = Number.isInteger(index) ? offsets[index] : undefined;
        if (at === undefined) break;
        offset = at;
        node = (node as unknown[])[index];
      } else {
        const entry = offsets.get(seg);
        if (entry === undefined) break;
        if (onKey && i === segments.length - 1) return entry[0];
        offset = entry[1];
        node = (node as Record<string, unknown>)[seg];
      }
    }
    return offset;
  }
}
