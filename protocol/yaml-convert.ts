/**
 * A composed YAML Document -> plain value, in one walk (pass 3 of
 * yaml-document.ts): counts nodes after alias expansion (each anchor's size
 * memoised) against MAX_YAML_NODES, the bytes of scalar text after expansion
 * against MAX_YAML_EXPANDED_BYTES, mapping keys against MAX_YAML_KEYS and
 * nesting against MAX_YAML_DEPTH; refuses duplicate and non-scalar keys; and
 * records where each key and value starts, so that a JSON pointer is located
 * in O(depth). Never quotes an alias name under a secret-like key.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, type Node } from "yaml";
import { isSecretKey } from "./safe-text.ts";
import {
  DEPTH_MESSAGE,
  MAX_YAML_DEPTH,
  MAX_YAML_EXPANDED_BYTES,
  MAX_YAML_KEYS,
  MAX_YAML_NODES,
} from "./yaml-limits.ts";

/** One problem found while reading YAML; `line`/`col` 1-based, null when unknown. */
export interface YamlIssue {
  pointer: string;
  message: string;
  line: number | null;
  col: number | null;
  /** A limit was reached: always among the problems listed, however many there are. */
  pinned?: boolean;
}

/**
 * Source offsets of the children of one converted list or mapping: for a
 * list, the start of each item; for a mapping, the start of each key and of
 * its value.
 */
type Offsets = number[] | Map<string, [key: number, value: number]>;

/** Makes a located issue from a source offset (null: unknown). */
export type IssueAt = (
  offset: number | null | undefined,
  message: string,
  pointer?: string,
  pinned?: boolean,
) => YamlIssue;

function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Thrown inside the Converter to stop at a limit; never escapes it. */
class Stop extends Error {}

/** Converts one Document's contents; see the module comment. */
export class Converter {
  readonly issues: YamlIssue[] = [];
  readonly #issue: (
    offset: number | null | undefined,
    message: string,
    pointer?: string,
    pinned?: boolean,
  ) => YamlIssue;
  /** Offsets of the children of every converted list and mapping. */
  readonly #offsets = new WeakMap<object, Offsets>();
  /**
   * Anchor name -> its node's value, expanded size in nodes and in bytes of
   * scalar text (size null while the anchored node is being converted).
   */
  readonly #anchors = new Map<string, { value: unknown; size: number | null; bytes: number }>();
  /** Path of the node being converted (keys and indexes), for messages. */
  readonly #path: (string | number)[] = [];
  #nodes = 0;
  /** Bytes of scalar text converted so far, aliases at their expanded size. */
  #bytes = 0;
  #keys = 0;
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

  #countBytes(node: Node, n: number): void {
    this.#bytes += n;
    if (this.#bytes > MAX_YAML_EXPANDED_BYTES) {
      this.#fail(
        node,
        `YAML: more than ${MAX_YAML_EXPANDED_BYTES} bytes of text once aliases are expanded (each alias counts its anchor's text again)`,
        true,
      );
    }
  }

  /** Converts `node`; returns its value and its expanded size in nodes. */
  #convert(node: Node, depth: number): { value: unknown; size: number } {
    if (isAlias(node)) {
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
      this.#countBytes(node, anchor.bytes);
      return { value: anchor.value, size: anchor.size };
    }
    const anchorName = node.anchor;
    if (anchorName) this.#anchors.set(anchorName, { value: undefined, size: null, bytes: 0 });
    const bytesBefore = this.#bytes;
    const done = isMap(node) || isSeq(node) ? this.#collection(node, depth + 1) : this.#scalar(node);
    if (anchorName) {
      this.#anchors.set(anchorName, { value: done.value, size: done.size, bytes: this.#bytes - bytesBefore });
    }
    return done;
  }

  #scalar(node: Node): { value: unknown; size: number } {
    this.#count(node, 1);
    const v = isScalar(node) ? node.value : undefined;
    if (v === null || typeof v === "string" || typeof v === "boolean" || typeof v === "number") {
      this.#countBytes(node, typeof v === "string" ? Buffer.byteLength(v, "utf8") : String(v).length);
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
      this.#countBytes(keyNode ?? node, Buffer.byteLength(key, "utf8"));
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
