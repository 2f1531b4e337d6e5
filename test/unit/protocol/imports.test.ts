/**
 * protocol/ imports nothing from agent/ or sfu/, so a non-Node SFU (or any other consumer) needs only protocol/. Every import
 * specifier of every protocol/ module is checked: relative ones must stay
 * inside protocol/, bare ones must be node: builtins or the few allowed
 * packages.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import { importSpecifiers } from "../../helpers/import-specifiers.ts";

const PROTOCOL = join(import.meta.dirname, "..", "..", "..", "protocol");
const ALLOWED_PACKAGES = ["ajv", "ajv-formats", "yaml", "json-schema-to-ts"];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("protocol/ dependencies", () => {
  const files = tsFiles(PROTOCOL);

  it("the scanner finds imports in all their forms", () => {
    const src = `import a from "x";\nimport type { B } from './b.ts';\nexport * from "../agent/c.ts";\nimport "side";\nconst d = await import("../sfu/d.ts");\nimport {\n  e,\n} from "node:fs";`;
    assert.deepEqual(
      importSpecifiers(src).sort(),
      ["../agent/c.ts", "../sfu/d.ts", "./b.ts", "node:fs", "side", "x"].sort(),
    );
  });

  it("finds the protocol modules", () => {
    assert.ok(files.length >= 8, files.join(", "));
  });

  for (const file of files) {
    it(`${relative(PROTOCOL, file)} imports only protocol/, node: builtins and ${ALLOWED_PACKAGES.join(", ")}`, () => {
      for (const spec of importSpecifiers(readFileSync(file, "utf8"))) {
        if (spec.startsWith(".")) {
          const target = resolve(dirname(file), spec);
          assert.ok(target.startsWith(PROTOCOL + sep), `${spec} leaves protocol/`);
        } else if (!spec.startsWith("node:")) {
          const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
          assert.ok(ALLOWED_PACKAGES.includes(pkg), `${spec} is not an allowed package`);
        }
      }
    });
  }
});
