/**
 * Writes the JSON Schema files under protocol/schemas/ from the TypeScript
 * schema objects (the single source). `npm run schemas`; a unit test fails
 * when the files are out of date.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { publishedSchemas } from "../protocol/published-schemas.ts";

const dir = join(import.meta.dirname, "..", "protocol", "schemas");
for (const [file, schema] of Object.entries(publishedSchemas)) {
  writeFileSync(join(dir, file), `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote protocol/schemas/${file}`);
}
