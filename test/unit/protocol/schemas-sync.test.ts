/**
 * protocol/schemas/*.json are generated from the TypeScript schema objects
 * (`npm run schemas`); this test fails when they drift, and checks that every
 * published schema compiles under Ajv's strict draft 2020-12 mode.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { publishedSchemas } from "../../../protocol/published-schemas.ts";

const DIR = join(import.meta.dirname, "..", "..", "..", "protocol", "schemas");
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

describe("published JSON Schemas", () => {
  it("the directory holds exactly the published schemas", () => {
    assert.deepEqual(
      readdirSync(DIR)
        .filter((f) => f.endsWith(".json"))
        .sort(),
      Object.keys(publishedSchemas).sort(),
    );
  });

  for (const [file, schema] of Object.entries(publishedSchemas)) {
    it(`${file} is byte-identical to the TypeScript object (run 'npm run schemas' if not)`, () => {
      const text = readFileSync(join(DIR, file), "utf8");
      assert.equal(text, `${JSON.stringify(schema, null, 2)}\n`);
    });
  }

  it("every schema is strict draft 2020-12 with a unique $id under sfu-config.dev", () => {
    const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
    addFormats(ajv);
    const ids = new Set<string>();
    for (const [file, schema] of Object.entries(publishedSchemas)) {
      const s = schema as { $schema: string; $id: string };
      assert.equal(s.$schema, "https://json-schema.org/draft/2020-12/schema", file);
      assert.equal(s.$id, `https://sfu-config.dev/schemas/${file}`);
      ids.add(s.$id);
      ajv.compile(schema);
    }
    assert.equal(ids.size, Object.keys(publishedSchemas).length);
  });

  it("the example config points editors at the published config schema", () => {
    const example = readFileSync(join(DIR, "..", "..", "k8s", "base", "config.yaml"), "utf8");
    assert.match(
      example.split("\n")[0]!,
      /^# yaml-language-server: \$schema=\.\.\/\.\.\/protocol\/schemas\/config\.v1\.schema\.json$/,
    );
  });
});
