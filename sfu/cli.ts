#!/usr/bin/env node
/**
 * `sfu-server` entry point (its flags and exit codes are a contract: the
 * Deployment and the images run it). The only place that reads process.argv,
 * installs signal handlers and calls process.exit, so everything else stays
 * testable in-process.
 *
 *   sfu-server [--agent ws://127.0.0.1:7070 | --config FILE] [--token-file FILE]
 *              [--port N] [--host ADDR] [--log-level LEVEL] [--secrets-dir DIR]
 *
 * `--secrets-dir` may also come from the environment (SFU_SECRETS_DIR); the
 * flag wins.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { type FlagSpecs, formatFlagHelp } from "../protocol/cli-flags.ts";
import { DEFAULT_SECRETS_DIR, LOG_LEVELS } from "../protocol/index.ts";
import { SfuError } from "./errors.ts";
import { SfuServer } from "./server.ts";

/** Default agent URL. */
export const DEFAULT_AGENT_URL = "ws://127.0.0.1:7070";

/** The flags of `sfu-server`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const SFU_FLAGS = {
  agent: { type: "string", arg: "URL", help: `agent to dial for config (default ${DEFAULT_AGENT_URL})` },
  config: { type: "string", arg: "FILE", help: "standalone: load this config file, no agent" },
  "token-file": { type: "string", arg: "FILE", help: "bearer token sent to the agent (Authorization header)" },
  port: { type: "string", arg: "N", help: "HTTP/signalling port; overrides server.port (0 = any free port)" },
  host: { type: "string", arg: "ADDR", help: "interface the HTTP server listens on (default 0.0.0.0)" },
  "log-level": {
    type: "string",
    arg: "LEVEL",
    help: "initial log level until a config sets logging.level (default info)",
  },
  "secrets-dir": {
    type: "string",
    arg: "DIR",
    help: `the only directory TURN secret files (credentialFile, authSecretFile)\nare read from; env SFU_SECRETS_DIR (default ${DEFAULT_SECRETS_DIR})`,
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies FlagSpecs;

/** Usage text. */
export function usage(): string {
  return `Usage: sfu-server [options]

A WebRTC SFU (werift) whose configuration is hot-applied from the sfu-config agent.

Options:
${formatFlagHelp(SFU_FLAGS, 21)}`;
}

/** Parsed command line, or a usage error. */
export type ParsedArgs =
  | { ok: true; help: true }
  | {
      ok: true;
      help: false;
      agentUrl: string | null;
      configFile: string | null;
      tokenFile: string | null;
      port: number | null;
      host: string;
      logLevel: string;
      secretsDir: string;
    }
  | { ok: false; error: string };

/** Parses `argv` (without node and script) over `env` (SFU_SECRETS_DIR). Never throws. */
export function parseCliArgs(argv: string[], env: NodeJS.ProcessEnv = {}): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: SFU_FLAGS,
    }));
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  if (values.help) return { ok: true, help: true };
  const agent = values.agent as string | undefined;
  const config = values.config as string | undefined;
  if (agent !== undefined && config !== undefined) return { ok: false, error: "--agent and --config are exclusive" };
  let port: number | null = null;
  if (values.port !== undefined) {
    const p = Number(values.port);
    if (!/^\d+$/.test(String(values.port)) || p > 65535)
      return { ok: false, error: `--port must be 0..65535, got ${values.port}` };
    port = p;
  }
  const logLevel = (values["log-level"] as string | undefined) ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    return { ok: false, error: `--log-level must be one of ${LOG_LEVELS.join(", ")}` };
  }
  const secretsDir = (values["secrets-dir"] as string | undefined) ?? env.SFU_SECRETS_DIR ?? DEFAULT_SECRETS_DIR;
  if (secretsDir === "") return { ok: false, error: "--secrets-dir (or SFU_SECRETS_DIR) must not be empty" };
  return {
    ok: true,
    help: false,
    secretsDir,
    agentUrl: config !== undefined ? null : (agent ?? DEFAULT_AGENT_URL),
    configFile: config ?? null,
    tokenFile: (values["token-file"] as string | undefined) ?? null,
    port,
    host: (values.host as string | undefined) ?? "0.0.0.0",
    logLevel,
  };
}

/** Runs the server until SIGTERM/SIGINT; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const args = parseCliArgs(argv, process.env);
  if (!args.ok) {
    process.stderr.write(`sfu-server: ${args.error}\n\n${usage()}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(usage());
    return 0;
  }
  const logger = pino({
    level: args.logLevel,
    base: { name: "sfu-server" },
    redact: {
      paths: ["*.credential", "*.*.credential", "iceServers", "authorization", "*.authorization"],
      censor: "[redacted]",
    },
  });
  const server = new SfuServer({
    logger,
    agentUrl: args.agentUrl,
    configFile: args.configFile,
    tokenFile: args.tokenFile,
    port: args.port,
    host: args.host,
    secretsDir: args.secretsDir,
  });
  try {
    await server.start();
  } catch (err) {
    if (err instanceof SfuError) {
      process.stderr.write(`sfu-server: ${err.message}\n`);
      await server.stop();
      return 1;
    }
    throw err;
  }
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        resolve(130);
        return;
      }
      stopping = true;
      logger.info({ signal }, "stopping");
      server.stop().then(
        () => resolve(0),
        (err) => {
          logger.error({ err }, "stop failed");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));
  });
}

function isMain(): boolean {
  try {
    return (
      process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`sfu-server: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
