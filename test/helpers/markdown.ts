/**
 * Reading the repository's Markdown as GitHub renders it, for the docs
 * checks (test/unit/docs/): the files, their fenced blocks, their links
 * (outside code) and their heading anchors (GitHub's slugs).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/** The repository root. */
export const ROOT = join(import.meta.dirname, "..", "..");

const SKIP_DIRS = new Set(["node_modules", ".git", "dist", ".tmp", "test-results"]);

/** Every Markdown file under `dir` (default: the whole repository), sorted, as absolute paths. */
export function markdownFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !SKIP_DIRS.has(e.name) && !e.name.startsWith("."))
      out.push(...markdownFiles(join(dir, e.name)));
    else if (e.isFile() && e.name.endsWith(".md")) out.push(join(dir, e.name));
  }
  return out.sort();
}

/** One fenced code block: its info string, its first line number (1-based) and its lines. */
export interface FencedBlock {
  lang: string;
  line: number;
  lines: string[];
}

/** The file's lines with each fenced block's lines, and each inline code span, blanked out. */
export function proseLines(text: string): string[] {
  let fence: string | null = null;
  return text.split("\n").map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === null) fence = m[1]!;
      else if (m[1]!.startsWith(fence)) fence = null;
      return "";
    }
    return fence === null ? line.replace(/(`+)[^`]*?\1/g, "") : "";
  });
}

/** The fenced code blocks of a Markdown text. */
export function fencedBlocks(text: string): FencedBlock[] {
  const out: FencedBlock[] = [];
  let open: FencedBlock | null = null;
  let fence = "";
  text.split("\n").forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(line);
    if (open === null && m) {
      fence = m[1]!;
      open = { lang: m[2] ?? "", line: i + 2, lines: [] };
    } else if (open !== null && m && m[1]!.startsWith(fence) && m[2] === "") {
      out.push(open);
      open = null;
    } else if (open !== null) open.lines.push(line);
  });
  return out;
}

/** GitHub's anchor for a heading text: lower case, markup and punctuation dropped, spaces to `-`. */
export function slug(heading: string): string {
  return heading
    .replace(/<[^>]+>/g, "")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Every anchor a Markdown text defines: heading slugs (repeats get `-1`, `-2`) and `<a id|name>`. */
export function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLinesKeepingHeadings(text)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = slug(h[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(a[1]!);
  }
  return out;
}

/** Lines outside fenced blocks, inline code kept (headings contain code spans). */
function proseLinesKeepingHeadings(text: string): string[] {
  let fence: string | null = null;
  return text.split("\n").map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === null) fence = m[1]!;
      else if (m[1]!.startsWith(fence)) fence = null;
      return "";
    }
    return fence === null ? line : "";
  });
}

/** A link found in prose: where (file:line) and its target as written. */
export interface MarkdownLink {
  where: string;
  target: string;
}

/** Every inline link and image target outside code, with its file:line. */
export function links(file: string): MarkdownLink[] {
  const out: MarkdownLink[] = [];
  proseLines(readFileSync(file, "utf8")).forEach((line, i) => {
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ where: `${relative(ROOT, file)}:${i + 1}`, target: m[1]! });
    }
  });
  return out;
}
