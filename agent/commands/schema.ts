/**
 * `sfu-agent schema [NAME]` (flags and output are a contract: editors and CI
 * pipelines consume it): prints the config JSON Schema (draft 2020-12) for editors and CI: schemaVersion 1 by
 * default (what existing tooling expects), `--version 2` for schemaVersion 2. With NAME, prints another
 * published schema of protocol/schemas/ (e.g. `hello`, `config.v2`); `--list` names them.
 * `--rollout` prints the rollout policy schema (rollout.v1). The output is
 * byte-identical to the file under protocol/schemas/.
 */

import { parseArgs } from "node:util";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { SUPPORTED_SCHEMA_VERSIONS } from "../../protocol/config-schema.ts";
import { publishedSchemas } from "../../protocol/published-schemas.ts";
import type { CommandIo } from "../shared/command-io.ts";

const DEFAULT_SCHEMA = "config.v1";

/** The flags of sfu-agent schema: parsed, listed by --help and in docs/reference/cli.md from here. */
export const SCHEMA_FLAGS = {
  version: {
    type: "string",
    arg: "N",
    help: `print the config schema of schemaVersion N (${SUPPORTED_SCHEMA_VERSIONS.join(" or ")});\nnot together with NAME`,
  },
  rollout: {
    type: "boolean",
    default: false,
    help: "print the rollout policy schema (rollout.v1, for rollout.yaml)",
  },
  list: { type: "boolean", default: false, help: "print the names of the published schemas, one a line" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent schema`. */
export const SCHEMA_USAGE = `Usage: sfu-agent schema [options] [NAME]

Prints the sfu-config JSON Schema (draft 2020-12) to stdout, by default the
config schema v1 (${DEFAULT_SCHEMA}). NAME selects another published schema of
protocol/schemas/ (config.v2, a wire message or an SNS event); --list names them.

Options:
${formatFlagHelp(SCHEMA_FLAGS, 15)}
Exit status: 0 printed, 2 usage error (unknown NAME or option).
`;

/** Names accepted by `sfu-agent schema NAME`: the published file names without `.schema.json`. */
export function schemaNames(): string[] {
  return Object.keys(publishedSchemas).map((f) => f.replace(/\.schema\.json$/, ""));
}

/** Entry point of `sfu-agent schema`; returns the exit code. */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.stderr(`sfu-agent schema: ${(err as Error).message}\nTry 'sfu-agent schema --help'.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(SCHEMA_USAGE);
    return 0;
  }
  if (values.list) {
    io.stdout(`${schemaNames().join("\n")}\n`);
    return 0;
  }
  if (positionals.length > 1) {
    io.stderr("sfu-agent schema: at most one NAME\n");
    return 2;
  }
  const version = values.version;
  if ([version !== undefined, values.rollout, positionals.length > 0].filter(Boolean).length > 1) {
    io.stderr("sfu-agent schema: give one of NAME, --version or --rollout\n");
    return 2;
  }
  if (version !== undefined && !SUPPORTED_SCHEMA_VERSIONS.map(String).includes(version)) {
    io.stderr(
      `sfu-agent schema: --version must be one of ${SUPPORTED_SCHEMA_VERSIONS.join(", ")}, got ${JSON.stringify(version)}\n`,
    );
    return 2;
  }
  const name =
    version !== undefined ? `config.v${version}` : values.rollout ? "rollout.v1" : (positionals[0] ?? DEFAULT_SCHEMA);
  const schema = publishedSchemas[`${name}.schema.json`];
  if (!schema) {
    io.stderr(`sfu-agent schema: unknown schema ${JSON.stringify(name)}; one of: ${schemaNames().join(", ")}\n`);
    return 2;
  }
  io.stdout(`${JSON.stringify(schema, null, 2)}\n`);
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: SCHEMA_FLAGS,
  });
}
