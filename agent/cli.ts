#!/usr/bin/env node
/**
 * `sfu-agent` entry point: dispatches to one module per subcommand under
 * agent/commands/. Each exports `main(argv, io): Promise<number>` returning the
 * exit code, which this file sets as `process.exitCode`. The one exception is
 * `run`'s second-signal handler, which must force an exit while work is
 * still pending (agent/commands/run.ts).
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CommandIo } from "./shared/command-io.ts";

export type { CommandIo } from "./shared/command-io.ts";

/** One subcommand: its one-line summary and a lazy loader for its module. */
interface CommandEntry {
  summary: string;
  load: () => Promise<{ main: (argv: string[], io: CommandIo) => Promise<number> }>;
}

/** The subcommands of `sfu-agent`. */
export const COMMANDS: Record<string, CommandEntry> = {
  run: {
    summary: "run the sidecar: watch, validate, push to the SFU, report",
    load: () => import("./commands/run.ts"),
  },
  validate: {
    summary: "validate config files (exit 0 valid, 1 invalid, 2 usage)",
    load: () => import("./commands/validate.ts"),
  },
  schema: { summary: "print the config JSON Schema", load: () => import("./commands/schema.ts") },
  notify: { summary: "publish a reload event for a config file to SNS", load: () => import("./commands/notify.ts") },
  rollout: {
    summary: "roll a config change out in steps, judged by call health (the PostSync hook)",
    load: () => import("./commands/rollout.ts"),
  },
  status: {
    summary: "show a table of the fleet's agents from their /status",
    load: () => import("./commands/status.ts"),
  },
  admission: {
    summary: "serve the validating admission webhook that refuses an invalid sfu-config ConfigMap",
    load: () => import("./commands/admission.ts"),
  },
  conformance: {
    summary: "play the agent side and test an SFU against sfu-config/1",
    load: () => import("./commands/conformance.ts"),
  },
};

/** Usage text of `sfu-agent` itself. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: sfu-agent <command> [options]\n\nCommands:\n${lines.join("\n")}\n\nRun 'sfu-agent <command> --help' for a command's options.\n`;
}

/** Runs `sfu-agent` with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.stderr : io.stdout)(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") {
    io.stdout("0.1.0\n");
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr(`sfu-agent: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.main(rest, io);
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const io: CommandIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };
  runCli(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`sfu-agent: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
