/**
 * `sfu-agent validate FILE...` (flags, output lines and exit codes are a
 * contract: CI jobs parse them): runs each file through the one config pipeline (protocol/config-loader.ts) and reports.
 * A rollout policy (a file named `rollout.yaml`/`.yml`/`.json`, or any file
 * whose mapping has `steps` and no `server`/`webrtc`) goes through the rollout
 * policy loader instead (protocol/rollout-policy.ts) and prints
 * `FILE: ok rollout policy: 10% for 5m, 50% for 10m, 100% for 5m`.
 *
 * Exit status: 0 when every file is valid, 1 when any is invalid (or cannot be
 * read), 2 on a usage error. Text output goes to stdout, one line per problem
 * (`FILE:LINE:COL: <json-pointer>: <message>`), warnings as
 * `FILE:LINE:COL: <json-pointer>: warning: <message>`, and `FILE: ok sha256:...`
 * per valid file; usage errors go to stderr. Bad input never produces a stack
 * trace: the loader returns every failure as a value.
 */

import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { type LoadResult, loadConfigFile, parseYamlDocument } from "../../protocol/config-loader.ts";
import { loadRolloutPolicyFile, looksLikeRolloutPolicy, MAX_POLICY_BYTES } from "../../protocol/rollout-policy.ts";
import { escapeControlChars } from "../../protocol/safe-text.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import type { CommandIo } from "../shared/command-io.ts";
import { problemLines, toPolicyReport, toReport, type ValidateReport } from "../shared/validate-report.ts";

/** The flags of sfu-agent validate: parsed, listed by --help and in docs/reference/cli.md from here. */
export const VALIDATE_FLAGS = {
  format: {
    type: "string",
    default: "text",
    arg: "text|json",
    help: 'output format (default: text). json prints an array of\n{file, valid, code, hash, problems, warnings}\n(rollout policies add kind: "rollout-policy", steps)',
  },
  "secrets-dir": {
    type: "string",
    arg: "DIR",
    help: `the directory secret files must live under (default\n$SFU_AGENT_SECRETS_DIR, else ${DEFAULT_SECRETS_DIR}); a path\noutside it, with a '..' segment, or a symlink out of it is\nan error`,
  },
  "check-files": {
    type: "boolean",
    default: true,
    label: "--no-check-files",
    help: "do not check that secret files exist and are readable\n(e.g. in CI, where the Secret is not mounted); their\npaths are still checked to be under --secrets-dir",
  },
  quiet: { type: "boolean", short: "q", default: false, help: "text format: print problems and warnings only" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent validate`. */
export const VALIDATE_USAGE = `Usage: sfu-agent validate [options] FILE...

Validates sfu-config files (YAML or JSON, config schemaVersion 1 or 2):
syntax, schema, and the semantic checks (ICE port range order, audio + video
codecs, TURN URIs, secret files: credentialFile and authSecretFile under the
secrets directory and readable). Prints one line per problem:

  FILE:LINE:COL: <json-pointer>: <message>

and 'FILE: ok sha256:<hex>' for each valid file (the hash the agent pushes).
Warnings (e.g. an inline TURN credential) are printed but do not fail.
At most 20 problems (and 20 warnings) are listed per file, then one line
'and N more problem(s) not shown'. Control characters are shown escaped
(\\x1b), and secrets (credentials, URL passwords) are never quoted.

Rollout policies (rollout.yaml, schema rollout.v1: a file named rollout.yaml,
.yml or .json, or any mapping with 'steps' and no 'server'/'webrtc') are
validated as policies and print 'FILE: ok rollout policy: <steps>'.

Options:
${formatFlagHelp(VALIDATE_FLAGS, 23)}
Exit status: 0 all files valid, 1 any file invalid or unreadable, 2 usage error.
`;

/** Entry point of `sfu-agent validate`; returns the exit code. `env` supplies SFU_AGENT_SECRETS_DIR. */
export async function main(argv: string[], io: CommandIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.stderr(`sfu-agent validate: ${(err as Error).message}\nTry 'sfu-agent validate --help'.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(VALIDATE_USAGE);
    return 0;
  }
  const format = values.format;
  if (format !== "text" && format !== "json") {
    io.stderr(`sfu-agent validate: --format must be text or json, got ${JSON.stringify(format)}\n`);
    return 2;
  }
  if (positionals.length === 0) {
    io.stderr(`sfu-agent validate: no FILE given\n\n${VALIDATE_USAGE}`);
    return 2;
  }
  const secretsDir = values["secrets-dir"] ?? (env["SFU_AGENT_SECRETS_DIR"] || DEFAULT_SECRETS_DIR);
  if (secretsDir === "") {
    io.stderr("sfu-agent validate: --secrets-dir must not be empty\n");
    return 2;
  }
  const reports: ValidateReport[] = [];
  for (const file of positionals) {
    const report = isRolloutPolicy(file)
      ? policyReport(file)
      : toReport(file, await load(file, values["check-files"], secretsDir));
    reports.push(report);
    if (format === "text") io.stdout(textLines(report, values.quiet));
  }
  if (format === "json") io.stdout(`${JSON.stringify(reports, null, 2)}\n`);
  return reports.every((r) => r.valid) ? 0 : 1;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    allowNegative: true,
    options: VALIDATE_FLAGS,
  });
}

/** Loads one file; a loader bug becomes a reported failure, never a stack trace. */
async function load(file: string, checkFiles: boolean, secretsDir: string): Promise<LoadResult> {
  try {
    return await loadConfigFile(file, { source: file, checkFiles, secretsDir });
  } catch (err) {
    const message = `internal error while validating: ${err instanceof Error ? err.message : String(err)}`;
    return {
      ok: false,
      source: file,
      code: "READ_FAILED",
      warnings: [],
      problems: [{ severity: "error", pointer: "", message, line: null, col: null }],
    };
  }
}

/** Problems and warnings by position (each summary line after its list), then the verdict. */
function textLines(report: ValidateReport, quiet: boolean): string {
  const lines = problemLines(report).all;
  if (report.valid && !quiet) {
    const file = escapeControlChars(report.file);
    lines.push(
      report.kind === undefined ? `${file}: ok ${report.hash}` : `${file}: ok rollout policy: ${report.steps}`,
    );
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

/** A rollout policy by name (`rollout.yaml`, `.yml`, `.json`), or by shape: a mapping with `steps` and no config keys. */
function isRolloutPolicy(file: string): boolean {
  if (/^rollout\.(ya?ml|json)$/i.test(basename(file))) return true;
  let fd: number | undefined;
  try {
    // O_NONBLOCK: a FIFO must not block here waiting for a writer (the config loader refuses it).
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return false;
    const buf = Buffer.alloc(MAX_POLICY_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_POLICY_BYTES) return false;
    const parsed = parseYamlDocument(buf.subarray(0, n).toString("utf8"), MAX_POLICY_BYTES);
    return parsed.ok && looksLikeRolloutPolicy(parsed.value);
  } catch {
    return false; // the config loader reports what is wrong with the file
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function policyReport(file: string): ValidateReport {
  return toPolicyReport(file, loadRolloutPolicyFile(file, { source: file }));
}
