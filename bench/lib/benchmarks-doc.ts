/**
 * BENCHMARKS.md as sections: `npm run bench` regenerates the sections of the
 * scripts it ran (`--only` runs some) and keeps every other section as it
 * stands, the ones measured by scripts outside the run (`soak:faults`,
 * `bench:propagation`) included, so a partial run never drops figures.
 */

/** One `## title` section: its heading line's title and its whole text (heading included). */
export interface DocSection {
  title: string;
  text: string;
}

/** The text before the first `## ` heading, and the sections after it, in order. */
export function splitSections(doc: string): { preamble: string; sections: DocSection[] } {
  const lines = doc.split("\n");
  const starts = lines.flatMap((l, i) => (l.startsWith("## ") ? [i] : []));
  if (starts.length === 0) return { preamble: doc, sections: [] };
  const preamble = lines.slice(0, starts[0]).join("\n");
  const sections = starts.map((start, k) => {
    const end = starts[k + 1] ?? lines.length;
    const text = lines.slice(start, end).join("\n").replace(/\n+$/, "");
    return { title: (lines[start] as string).slice(3).trim(), text };
  });
  return { preamble, sections };
}

/**
 * The new document: `preamble`, then the existing sections in their order,
 * each replaced by the regenerated section of the same title, then the
 * regenerated sections the document did not have yet.
 */
export function mergeSections(existing: string, preamble: string, regenerated: readonly DocSection[]): string {
  const fresh = new Map(regenerated.map((s) => [s.title, s.text.replace(/\n+$/, "")]));
  const kept = splitSections(existing).sections.map((s) => {
    const text = fresh.get(s.title) ?? s.text;
    fresh.delete(s.title);
    return text;
  });
  return `${[preamble.replace(/\n+$/, ""), ...kept, ...fresh.values()].join("\n\n")}\n`;
}
