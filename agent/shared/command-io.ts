/**
 * The standard streams a `sfu-agent` subcommand writes to. In its own module
 * so that the subcommands (agent/commands/*) and the dispatcher
 * (agent/cli.ts, which loads them) both import it without importing each
 * other.
 */
import { parseArgs } from "node:util";
import { envName } from "./cli-values.ts";

/** Standard streams a command writes to; injectable for tests. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** The parsed flags of a command whose flags may also come from `SFU_AGENT_<FLAG>` variables. */
export interface ParsedFlags<F extends string> {
  /** The flag values as parseArgs gives them. */
  values: Record<string, string | boolean | undefined>;
  /** A string flag, else its non-empty environment variable, else null. */
  str: (flag: F) => string | null;
  /** Writes a usage error (with the `--help` hint) and returns exit code 2. */
  usage: (message: string) => number;
}

/**
 * The prologue shared by `sfu-agent notify` and `rollout`: parses `argv`
 * (no positionals), answers `--help` with `help`, and reports a bad flag as a
 * usage error. Returns the exit code when the command is done already
 * (0 after `--help`, 2 on a usage error), else the parsed flags.
 */
export function parseCommandFlags<F extends string>(
  command: string,
  argv: string[],
  io: CommandIo,
  options: {
    flags: Record<F, { type: "string" | "boolean"; short?: string; default?: string | boolean }>;
    help: string;
    env: NodeJS.ProcessEnv;
  },
): ParsedFlags<F> | number {
  const usage = (message: string) => {
    io.stderr(`sfu-agent ${command}: ${message}\nTry 'sfu-agent ${command} --help'.\n`);
    return 2;
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: options.flags, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) {
    io.stdout(options.help);
    return 0;
  }
  const str = (flag: F): string | null => {
    const v = values[flag];
    if (typeof v === "string") return v;
    const e = options.env[envName(flag)];
    return e !== undefined && e !== "" ? e : null;
  };
  return { values, str, usage };
}
