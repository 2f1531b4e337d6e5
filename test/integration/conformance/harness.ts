/**
 * Shared set-up of the conformance-kit tests: the kit run in-process through
 * its command's main() on port 0, and SFUs under test (the Python reference
 * client, our werift SFU) run as child processes against it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { main } from "../../../agent/commands/conformance.ts";
import { pythonWebsocketsDependency, requireSystemDependency } from "../../helpers/system-deps.ts";

export const ROOT = join(import.meta.dirname, "..", "..", "..");
export const PYTHON_DIR = join(ROOT, "protocol", "examples", "python");
/** Debian's interpreter, which sees python3-websockets (the `python3` on PATH may not). */
export const PYTHON = "/usr/bin/python3";

/**
 * Fails at once, naming `apt-get install -y python3-websockets`, when Debian's
 * Python cannot import websockets (instead of every case timing out).
 */
export function requirePythonWebsockets(): void {
  requireSystemDependency(pythonWebsocketsDependency(PYTHON));
}

/** A kit run in-process. */
export interface KitRun {
  /** `ws://127.0.0.1:PORT` from the first output line. */
  url: string;
  /** Resolves with main()'s exit code. */
  exit: Promise<number>;
  stdout(): string;
  stderr(): string;
}

/** Starts `sfu-agent conformance --listen 127.0.0.1:0 ...args` and waits for its `listening on` line. */
export async function startKit(args: string[]): Promise<KitRun> {
  let out = "";
  let err = "";
  let onLine: (() => void) | null = null;
  const exit = main(["--listen", "127.0.0.1:0", ...args], {
    stdout: (t) => {
      out += t;
      onLine?.();
    },
    stderr: (t) => {
      err += t;
    },
  });
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /^listening on (ws:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    };
    onLine = check;
    check();
    void exit.then((code) => reject(new Error(`kit exited ${code} before listening: ${err}`)));
  });
  return { url, exit, stdout: () => out, stderr: () => err };
}

/** A child process under test. */
export interface Child {
  process: ChildProcess;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  output(): string;
  /** SIGTERM, then SIGKILL after 3 s; resolves when it exited. */
  stop(): Promise<number | string>;
}

/** Spawns `command args` with stdout+stderr captured. */
export function spawnChild(command: string, args: string[], cwd: string): Child {
  // No __pycache__ in the source tree when the child is Python.
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: "1" };
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  return {
    process: child,
    exited,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

/** Starts the Python example SFU against `url`. */
export function spawnPythonSfu(url: string, extra: string[] = []): Child {
  requirePythonWebsockets();
  return spawnChild(PYTHON, ["example_sfu.py", "--agent", url, ...extra], PYTHON_DIR);
}

/** `PASS`/`FAIL`/`SKIP` per case name, from the kit's output. */
export function caseOutcomes(stdout: string): Map<string, "PASS" | "FAIL" | "SKIP"> {
  const outcomes = new Map<string, "PASS" | "FAIL" | "SKIP">();
  for (const m of stdout.matchAll(/^(PASS|FAIL|SKIP) ([a-z0-9-]+)/gm)) {
    outcomes.set(m[2]!, m[1] as "PASS" | "FAIL" | "SKIP");
  }
  return outcomes;
}

/** The cases the Python reference client (schemaVersions [1], no features) is not asked: printed as SKIP. */
export const PYTHON_SKIPPED = ["v2-config-acked", "secrets-reload-acked"];

/** Names of the failed cases, in order. */
export function failedCases(stdout: string): string[] {
  return [...caseOutcomes(stdout)].filter(([, o]) => o === "FAIL").map(([name]) => name);
}

/** The last line of the kit's stdout (the summary). */
export function summaryLine(stdout: string): string {
  return stdout.trimEnd().split("\n").at(-1) ?? "";
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
