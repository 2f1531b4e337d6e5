/**
 * Writes the generated reference pages of docs/reference/ from the code
 * (scripts/lib/reference-docs.ts). `npm run docs`; a unit test fails when the
 * committed pages differ from what this writes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { referencePages } from "./lib/reference-docs.ts";

const root = join(import.meta.dirname, "..");
for (const [path, text] of await referencePages()) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
  console.log(`wrote ${path}`);
}
