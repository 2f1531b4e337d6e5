/**
 * `sfu-agent conformance`: plays the agent's side of sfu-config/1 so that an
 * SFU author, in any language, can check an SFU against PROTOCOL.md
 * ([section 1](../../protocol/PROTOCOL.md#1-overview) on) without running the
 * agent. Exit 0 when no case failed (skips allowed), 1 when any failed or the
 * kit could not listen, 2 on a usage error (bad flag, unreadable token file,
 * unusable base config).
 */
import { parseArgs } from "node:util";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { readTokenFile } from "../../protocol/secret-paths.ts";
import { CASES } from "../conformance/cases.ts";
import { ConformanceServer } from "../conformance/kit-server.ts";
import { runSuite } from "../conformance/suite.ts";
import { DEFAULT_BASE_CONFIG_PATH, loadBaseConfig } from "../conformance/test-configs.ts";
import type { CommandIo } from "../shared/command-io.ts";
import { AgentError, exitCodeOf } from "../shared/errors.ts";

/** The flags of `sfu-agent conformance`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const CONFORMANCE_FLAGS = {
  listen: {
    type: "string",
    default: "127.0.0.1:7070",
    arg: "HOST:PORT",
    help: "address to listen on (default 127.0.0.1:7070; port 0\npicks a free port; the first output line names it)",
  },
  timeout: {
    type: "string",
    default: "10",
    arg: "S",
    help: "seconds to wait for each reply, close and re-dial\n(default 10)",
  },
  wait: { type: "string", default: "120", arg: "S", help: "seconds to wait for the SFU's first dial-in (default 120)" },
  "token-file": {
    type: "string",
    arg: "F",
    help: "require 'Authorization: Bearer <token>' with the token\nin F (trimmed)",
  },
  config: {
    type: "string",
    arg: "FILE",
    help: "base config to push (default: the example\nk8s/base/config.yaml); webrtc.listenIp is set to\n127.0.0.1 and server.port is kept",
  },
  list: { type: "boolean", default: false, help: "print the cases and exit" },
  help: { type: "boolean", short: "h", default: false, help: "show this help" },
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent conformance`. */
export const CONFORMANCE_USAGE = `Usage: sfu-agent conformance [options]

Plays the agent side of the sfu-config/1 protocol and checks an SFU against
it. Start this, then start your SFU pointed at the printed address (it must
dial in with subprotocol sfu-config.v1). Prints 'PASS name',
'FAIL name: reason' or 'SKIP name: not applicable: reason' (an optional
capability the SFU's hello does not advertise: schemaVersion 2, the
secrets-reload feature) per case and a summary line 'N passed, N failed'
(plus ', N skipped (not applicable)').

Options:
${formatFlagHelp(CONFORMANCE_FLAGS, 23)}
Start the SFU fresh (nothing applied) and without a port override: one case
pushes a server.port change and expects a nack (RESTART_REQUIRED).

Exit status: 0 no case failed (skips allowed), 1 any failed, 2 usage error.
`;

/** Parsed options of the command. */
interface ConformanceArgs {
  host: string;
  port: number;
  stepTimeoutMs: number;
  firstDialTimeoutMs: number;
  tokenFile: string | null;
  configPath: string;
  list: boolean;
  help: boolean;
}

/**
 * Entry point of `sfu-agent conformance`; returns the exit code. It listens,
 * prints `listening on ws://HOST:PORT` as its first stdout line, waits for one
 * SFU to dial in, runs the scripted cases (agent/conformance/cases.ts) and
 * prints one line per case and the summary line `N passed, N failed` (plus `,
 * N skipped (not applicable)` when a case about an optional capability the SFU
 * does not advertise was skipped). Progress and refused dial-ins go to stderr;
 * the token is never printed.
 */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  let args: ConformanceArgs;
  try {
    args = parse(argv);
  } catch (err) {
    io.stderr(`sfu-agent conformance: ${(err as Error).message}\nTry 'sfu-agent conformance --help'.\n`);
    return 2;
  }
  if (args.help) {
    io.stdout(CONFORMANCE_USAGE);
    return 0;
  }
  if (args.list) {
    for (const c of CASES) io.stdout(`${c.name}: ${c.summary}\n`);
    return 0;
  }
  let token: string | null = null;
  let server: ConformanceServer;
  try {
    if (args.tokenFile !== null) token = await readToken(args.tokenFile);
    const base = await loadBaseConfig(args.configPath);
    const clock = () => performance.now();
    server = new ConformanceServer(
      { host: args.host, port: args.port, token },
      { clock, log: (line) => io.stderr(`conformance: ${line}\n`) },
    );
    const url = await server.start();
    io.stdout(`listening on ${url}\n`);
    io.stderr(`conformance: waiting up to ${args.firstDialTimeoutMs / 1000} s for an SFU to dial ${url}\n`);
    try {
      const summary = await runSuite(CASES, {
        server,
        base,
        stepTimeoutMs: args.stepTimeoutMs,
        firstDialTimeoutMs: args.firstDialTimeoutMs,
        clock,
        report: (line) => io.stdout(`${line}\n`),
      });
      return summary.failed === 0 ? 0 : 1;
    } finally {
      await server.stop();
    }
  } catch (err) {
    if (err instanceof AgentError) {
      io.stderr(`sfu-agent conformance: ${err.message}\n`);
      return exitCodeOf(err);
    }
    throw err;
  }
}

function parse(argv: string[]): ConformanceArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: CONFORMANCE_FLAGS,
  });
  if (positionals.length > 0)
    throw new AgentError("CONFORMANCE_OPTIONS", `unexpected argument ${JSON.stringify(positionals[0])}`);
  const { host, port } = parseListen(values.listen);
  return {
    host,
    port,
    stepTimeoutMs: seconds("--timeout", values.timeout),
    firstDialTimeoutMs: seconds("--wait", values.wait),
    tokenFile: values["token-file"] ?? null,
    configPath: values.config ?? DEFAULT_BASE_CONFIG_PATH,
    list: values.list,
    help: values.help,
  };
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6); port 0 means any free port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new AgentError(
      "CONFORMANCE_OPTIONS",
      `--listen must be HOST:PORT with a port 0..65535, got ${JSON.stringify(text)}`,
    );
  return { host: (m[1] ?? m[2])!, port };
}

function seconds(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0 || value > 3600) {
    throw new AgentError(
      "CONFORMANCE_OPTIONS",
      `${flag} must be a number of seconds in (0, 3600], got ${JSON.stringify(text)}`,
    );
  }
  return Math.round(value * 1000);
}

async function readToken(path: string): Promise<string> {
  const r = await readTokenFile(path);
  if (!r.ok) throw new AgentError("CONFORMANCE_OPTIONS", `--token-file ${r.message}`);
  return r.value;
}
