/**
 * docs/reference/ is what `npm run docs` writes from the code: the committed
 * pages equal the generated ones (a flag, metric, limit or schema field added
 * without regenerating fails here), the generator is deterministic, and it
 * covers every command `sfu-agent` dispatches to.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { COMMANDS } from "../../../agent/cli.ts";
import { GENERATED_NOTE, limitConstants, referencePages } from "../../../scripts/lib/reference-docs.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");

describe("generated reference (docs/reference/)", async () => {
  const pages = await referencePages();

  it("the committed pages are what `npm run docs` generates", () => {
    assert.ok(pages.size >= 4);
    for (const [path, text] of pages) {
      const file = join(ROOT, path);
      assert.ok(existsSync(file), `${path} is missing: run npm run docs`);
      const committed = readFileSync(file, "utf8");
      if (committed === text) continue;
      const a = committed.split("\n");
      const b = text.split("\n");
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      assert.fail(
        `${path} differs from what the code generates (first at line ${i + 1}: committed ${JSON.stringify(a[i] ?? "<end>")}, generated ${JSON.stringify(b[i] ?? "<end>")}): run npm run docs`,
      );
    }
  });

  it("generating twice gives the same bytes (no dates, no machine facts, stable order)", async () => {
    const again = await referencePages();
    assert.deepEqual([...again.entries()], [...pages.entries()]);
  });

  it("every page starts with the do-not-edit note", () => {
    for (const [path, text] of pages) assert.ok(text.startsWith(`${GENERATED_NOTE}\n# `), path);
  });

  it("the CLI reference has a section for every sfu-agent command, sfu-server and npm start", () => {
    const cli = pages.get("docs/reference/cli.md") ?? "";
    const sections = [...cli.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    for (const name of Object.keys(COMMANDS)) assert.ok(sections.includes(`sfu-agent ${name}`), `sfu-agent ${name}`);
    assert.ok(sections.includes("sfu-server"));
    assert.ok(sections.includes("npm start"));
  });

  it("the limits page lists every exported MAX_ number constant, with its value", async () => {
    const limits = pages.get("docs/reference/limits.md") ?? "";
    const constants = await limitConstants();
    assert.ok(constants.some((c) => c.name === "MAX_CONFIG_BYTES" || c.name.startsWith("MAX_YAML_")));
    for (const c of constants) {
      assert.match(limits, new RegExp(`^\\| \`${c.name}\` \\| ${c.value.toLocaleString("en")}\\b`, "m"), c.name);
      assert.notEqual(c.doc, "", `${c.file}: ${c.name} has no TSDoc (the limits page shows it)`);
    }
  });
});
