/**
 * Every relative link in the repository's Markdown resolves: the file or
 * directory exists, and an anchor (`page.md#section`, `#section`) names a
 * heading of that page as GitHub renders it (or an `<a id>`).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";
import { anchors, links, markdownFiles, ROOT, slug } from "../../helpers/markdown.ts";

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(file: string): Set<string> {
  let a = anchorCache.get(file);
  if (!a) {
    a = anchors(readFileSync(file, "utf8"));
    anchorCache.set(file, a);
  }
  return a;
}

/** Why a link does not resolve, or null. */
function broken(from: string, target: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // https:, mailto: ...: not relative
  const [rawPath = "", rawAnchor] = target.split("#", 2) as [string, string | undefined];
  const path = decodeURIComponent(rawPath);
  const file = path === "" ? from : join(path.startsWith("/") ? ROOT : dirname(from), path);
  if (!existsSync(file)) return `${relative(ROOT, file)} does not exist`;
  if (rawAnchor === undefined || rawAnchor === "") return null;
  if (statSync(file).isDirectory() || !file.endsWith(".md")) return `anchor #${rawAnchor} on a non-Markdown target`;
  const anchor = decodeURIComponent(rawAnchor);
  if (anchorsOf(file).has(anchor)) return null;
  return `${relative(ROOT, file)} has no heading #${anchor}`;
}

describe("Markdown links resolve", () => {
  const files = markdownFiles();

  it("finds the docs and their links", () => {
    const all = files.map((f) => relative(ROOT, f));
    for (const f of ["README.md", "docs/troubleshooting.md", "docs/reference/cli.md", "protocol/PROTOCOL.md"]) {
      assert.ok(all.includes(f), f);
    }
    assert.ok(files.flatMap(links).length > 100);
  });

  it("every relative link and anchor points at something that exists", () => {
    const bad: string[] = [];
    for (const file of files) {
      for (const l of links(file)) {
        const why = broken(file, l.target);
        if (why) bad.push(`${l.where}: (${l.target}) ${why}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it("anchors follow GitHub's slugs", () => {
    assert.equal(slug("Progressive rollout (`sfu-agent rollout`)"), "progressive-rollout-sfu-agent-rollout");
    assert.equal(slug("Push modes: WebSocket and HTTP"), "push-modes-websocket-and-http");
    assert.equal(slug("The agent's part"), "the-agents-part");
    assert.deepEqual([...anchors("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
  });

  it("a broken link or anchor is reported", () => {
    const readme = join(ROOT, "README.md");
    assert.match(broken(readme, "docs/nope.md") ?? "", /does not exist/);
    assert.match(broken(readme, "docs/troubleshooting.md#no-such-section") ?? "", /has no heading/);
    assert.equal(broken(readme, "docs/troubleshooting.md#sfuconfignotconverged"), null);
  });
});
