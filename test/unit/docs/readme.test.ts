/**
 * The README stays a short entry point: at most 150 lines, starting with the
 * two command lines, with its flow diagram; every page of docs/ is reachable
 * from the docs index (a page added on another branch and not linked fails).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fencedBlocks, links, markdownFiles, ROOT } from "../../helpers/markdown.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");

describe("README.md and the docs index", () => {
  it("the README is at most 150 lines and starts with the two command lines", () => {
    const lines = README.split("\n");
    assert.ok(lines.length <= 151, `README.md has ${lines.length} lines`);
    assert.equal(lines[0], "# sfu-config");
    assert.equal(lines[2], "```sh");
    assert.match(lines[3]!, /^npm ci && npm start\s+# /);
    assert.match(lines[4]!, /^npm ci && npm run setup && npm test\s+# /);
    assert.equal(lines[5], "```");
  });

  it("the README has a Mermaid flow diagram", () => {
    const mermaid = fencedBlocks(README).filter((b) => b.lang === "mermaid");
    assert.equal(mermaid.length, 1);
    assert.match(mermaid[0]!.lines[0]!, /^flowchart /);
  });

  it("every page of docs/ is linked from docs/README.md (the index)", () => {
    const index = join(ROOT, "docs", "README.md");
    const linked = new Set(links(index).map((l) => join(ROOT, "docs", l.target.split("#")[0]!)));
    const pages = markdownFiles(join(ROOT, "docs")).filter((f) => f !== index);
    const unlinked = pages.filter((p) => !linked.has(p)).map((p) => relative(ROOT, p));
    assert.deepEqual(unlinked, []);
  });
});
