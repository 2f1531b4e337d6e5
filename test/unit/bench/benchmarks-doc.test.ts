import assert from "node:assert/strict";
import { test } from "node:test";
import { mergeSections, splitSections } from "../../../bench/lib/benchmarks-doc.ts";

const DOC = `# Benchmarks

old preamble

## Agent

agent figures (old)

## Soak, measured by its own script

soak figures

## Hostile

hostile figures (old)
`;

test("a partial run replaces its own sections and keeps every other one, in place", () => {
  const out = mergeSections(DOC, "# Benchmarks\n\nnew preamble", [
    { title: "Hostile", text: "## Hostile\n\nhostile figures (new)\n" },
  ]);
  assert.equal(
    out,
    "# Benchmarks\n\nnew preamble\n\n## Agent\n\nagent figures (old)\n\n## Soak, measured by its own script\n\nsoak figures\n\n## Hostile\n\nhostile figures (new)\n",
  );
});

test("a section the document lacks is appended; an empty document gets the preamble and the sections", () => {
  const added = mergeSections(DOC, "# B", [{ title: "New bench", text: "## New bench\n\nx" }]);
  assert.deepEqual(
    splitSections(added).sections.map((s) => s.title),
    ["Agent", "Soak, measured by its own script", "Hostile", "New bench"],
  );
  assert.equal(mergeSections("", "# B", [{ title: "A", text: "## A\n\n1" }]), "# B\n\n## A\n\n1\n");
});

test("the committed BENCHMARKS.md splits into titled sections, none lost by a merge with nothing new", async () => {
  const { readFile } = await import("node:fs/promises");
  const doc = await readFile(new URL("../../../BENCHMARKS.md", import.meta.url), "utf8");
  const before = splitSections(doc);
  const after = splitSections(mergeSections(doc, before.preamble, []));
  assert.deepEqual(
    after.sections.map((s) => s.text),
    before.sections.map((s) => s.text),
  );
  assert.ok(before.sections.length >= 9, `${before.sections.length} sections`);
});
