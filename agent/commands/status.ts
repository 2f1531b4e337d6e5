/**
 * `sfu-agent status [--format table|json] [--watch SECONDS] URL...`: a table
 * of the fleet's agents (desired and applied version, hash, revision, last
 * outcome; with a rollout policy mounted, each pod's STAGE and a line on the
 * rollout's state) read from each agent's `/status`. Targets come from the arguments
 * or from SFU_AGENT_STATUS_TARGETS (comma-separated); use port-forwarded pods
 * (`kubectl port-forward pod/X 9090`) against a cluster.
 *
 * Exit codes: 0 all reachable and converged, 1 otherwise, 2 usage error.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { converged, fetchFleet, renderFleetTable } from "../fleet/fleet-status.ts";
import type { CommandIo } from "../shared/command-io.ts";

/** The flags of `sfu-agent status`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const STATUS_FLAGS = {
  format: { type: "string", arg: "table|json", help: "output format (default table)" },
  watch: { type: "string", arg: "SECONDS", help: "refresh every SECONDS until interrupted" },
  timeout: { type: "string", arg: "MS", help: "per-request timeout in milliseconds (default 3000)" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies FlagSpecs;

const HELP = `Usage: sfu-agent status [options] URL...

Show every agent's desired/applied config from its /status endpoint. When a
rollout policy is mounted, a STAGE column (canary, held, applied, reverted)
and one line per rollout (id, hash, running|halted|complete, step, cohort
threshold, and the halt reason) follow.

Arguments:
  URL                  agent HTTP base URL, e.g. http://127.0.0.1:9090
                       (default: $SFU_AGENT_STATUS_TARGETS, comma-separated)
Options:
${formatFlagHelp(STATUS_FLAGS, 23)}
Exit status: 0 when every agent answered and applied its desired config,
1 otherwise, 2 on usage errors.
`;

/** Runs `sfu-agent status`. */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.stderr(`sfu-agent status: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  const targets = positionals.length > 0 ? positionals : splitTargets(process.env.SFU_AGENT_STATUS_TARGETS);
  const format = values.format ?? "table";
  const timeout = Number(values.timeout ?? 3000);
  const watch = values.watch === undefined ? null : Number(values.watch);
  const problems = [
    targets.length === 0 ? "no targets: give agent URLs or set SFU_AGENT_STATUS_TARGETS" : null,
    format !== "table" && format !== "json" ? `--format must be table or json, got ${JSON.stringify(format)}` : null,
    !Number.isInteger(timeout) || timeout <= 0 ? "--timeout must be a positive integer (milliseconds)" : null,
    watch !== null && !(watch > 0) ? "--watch must be a positive number of seconds" : null,
    ...targets.map((t) => (/^https?:\/\/[^/]+/.test(t) ? null : `not an http(s) URL: ${JSON.stringify(t)}`)),
  ].filter((p): p is string => p !== null);
  if (problems.length > 0) {
    io.stderr(`sfu-agent status: ${problems.join("; ")}\n`);
    return 2;
  }
  for (;;) {
    const rows = await fetchFleet(targets, timeout);
    io.stdout(format === "json" ? `${JSON.stringify(rows, null, 2)}\n` : `${renderFleetTable(rows)}\n`);
    if (watch === null) return converged(rows) ? 0 : 1;
    await sleep(watch * 1000);
    if (format === "table") io.stdout("\n");
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: STATUS_FLAGS,
  });
}

function splitTargets(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}
