/** `sfu-agent schema`: prints the published JSON Schemas byte for byte. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { schemaNames } from "../../../agent/commands/schema.ts";
import { configSchemaV1 } from "../../../protocol/config-schema.ts";
import { configSchemaV2 } from "../../../protocol/config-schema-v2.ts";
import { rolloutPolicySchemaV1 } from "../../../protocol/rollout-schema.ts";
import { cli } from "../../helpers/cli-run.ts";

const SCHEMAS = join(import.meta.dirname, "..", "..", "..", "protocol", "schemas");

describe("sfu-agent schema", () => {
  it("prints the config schema v1, identical to protocol/schemas/config.v1.schema.json", async () => {
    const run = await cli("schema");
    assert.equal(run.code, 0);
    assert.equal(run.stdout, readFileSync(join(SCHEMAS, "config.v1.schema.json"), "utf8"));
    assert.deepEqual(JSON.parse(run.stdout), configSchemaV1);
  });

  it("--version 2 prints the config schema v2 (config.v2.schema.json); --version 1 the v1", async () => {
    const two = await cli("schema", "--version", "2");
    assert.equal(two.code, 0);
    assert.equal(two.stdout, readFileSync(join(SCHEMAS, "config.v2.schema.json"), "utf8"));
    assert.deepEqual(JSON.parse(two.stdout), configSchemaV2);
    const one = await cli("schema", "--version", "1");
    assert.equal(one.stdout, readFileSync(join(SCHEMAS, "config.v1.schema.json"), "utf8"));
    const three = await cli("schema", "--version", "3");
    assert.equal(three.code, 2);
    assert.match(three.stderr, /--version must be one of 1, 2, got "3"/);
    assert.equal((await cli("schema", "--version", "2", "hello")).code, 2);
  });

  it("--rollout prints the rollout policy schema (rollout.v1), identical to its published file", async () => {
    const run = await cli("schema", "--rollout");
    assert.equal(run.code, 0);
    assert.equal(run.stdout, readFileSync(join(SCHEMAS, "rollout.v1.schema.json"), "utf8"));
    assert.deepEqual(JSON.parse(run.stdout), rolloutPolicySchemaV1);
    const both = await cli("schema", "--rollout", "hello");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give one of NAME, --version or --rollout/);
    assert.equal((await cli("schema", "--rollout", "--version", "2")).code, 2);
  });

  it("prints any published schema by name; --list names them", async () => {
    const list = await cli("schema", "--list");
    assert.equal(list.code, 0);
    assert.deepEqual(list.stdout.trim().split("\n"), schemaNames());
    for (const name of schemaNames()) {
      const run = await cli("schema", name);
      assert.equal(run.code, 0);
      assert.equal(run.stdout, readFileSync(join(SCHEMAS, `${name}.schema.json`), "utf8"));
    }
  });

  it("usage errors exit 2; --help exits 0", async () => {
    assert.equal((await cli("schema", "nope")).code, 2);
    assert.equal((await cli("schema", "a", "b")).code, 2);
    const bad = await cli("schema", "--bad");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown option/);
    const help = await cli("schema", "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: sfu-agent schema/);
  });
});
