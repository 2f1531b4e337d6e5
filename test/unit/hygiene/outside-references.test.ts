/**
 * Comments and docs state their reasons instead of pointing at documents
 * that are not in the repository (a design document kept elsewhere, an
 * issue tracker's "issue N"): a reader of the code has only the code.
 * Checked in every source and doc file.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SKIP_DIRS = new Set(["node_modules", ".git", "dist", ".tmp", "test-results"]);
const EXTENSIONS = /\.(ts|js|py|md|ya?ml|sh|json)$|^Dockerfile|^run$/;
const OUTSIDE = /DESIGN\.md|\bissue ?#?\d+/i;

function files(dir = ROOT): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...files(join(dir, e.name)));
    } else if (EXTENSIONS.test(e.name) && e.name !== "package-lock.json") out.push(join(dir, e.name));
  }
  return out;
}

describe("references to documents outside the repository", () => {
  it("none in comments or docs", () => {
    const hits: string[] = [];
    for (const file of files()) {
      const rel = relative(ROOT, file);
      if (rel === "test/unit/hygiene/outside-references.test.ts") continue;
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, i) => {
          if (OUTSIDE.test(line)) hits.push(`${rel}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(hits, []);
  });

  it("the pattern catches what it is meant to", () => {
    for (const s of ["(DESIGN.md section 6)", "issue 5's cases", "(issue 8)", "see issue #12"])
      assert.match(s, OUTSIDE);
    for (const s of ["issuedAt", "PROTOCOL.md section 6", "the OIDC issuer"]) assert.doesNotMatch(s, OUTSIDE);
  });
});
