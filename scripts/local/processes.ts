/**
 * Child processes of the local stack (`npm start`) and the benchmarks: spawn
 * `node <script>` with its output in a log file, wait for an HTTP readiness
 * endpoint, stop with SIGTERM (SIGKILL after a bound), and find a free
 * loopback port.
 *
 * Every {@link NodeProcess} is registered in the {@link ProcessGroup} that
 * spawned it, so a script's `finally` can stop whatever is still running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..", "..");
/** The agent's CLI entry point (`sfu-agent`), as a source path `node` runs. */
export const AGENT_CLI = join(ROOT, "agent", "cli.ts");
/** The SFU's CLI entry point (`sfu-server`), as a source path `node` runs. */
export const SFU_CLI = join(ROOT, "sfu", "cli.ts");

/**
 * The `node` arguments of `sfu-agent run` watching `configDir`, with the push
 * server on `listen` and the HTTP server on `http` (each `host:port`), then
 * `flags`.
 */
export function agentRunArgs(configDir: string, listen: string, http: string, ...flags: string[]): string[] {
  return [AGENT_CLI, "run", "--config-dir", configDir, "--listen", listen, "--http", http, ...flags];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bound, read, released; a small race is accepted). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("freePort: no TCP address");
  return address.port;
}

/** One `node` child process whose stdout and stderr go to `logPath`. */
export class NodeProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  /** performance.now() at spawn. */
  readonly spawnedAt: number;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** performance.now() at exit, null while running. */
  exitedAt: number | null = null;
  #exit: number | string | null = null;

  /**
   * Spawns `node ...args`; `env` replaces the child's environment (default:
   * this process's); `cwd` is its working directory (default: this process's).
   */
  constructor(name: string, args: string[], logDir: string, env?: NodeJS.ProcessEnv, cwd?: string) {
    this.name = name;
    this.logPath = join(logDir, `${name}.log`);
    this.spawnedAt = performance.now();
    this.child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(env ? { env } : {}),
      ...(cwd ? { cwd } : {}),
    });
    const out = createWriteStream(this.logPath);
    this.child.stdout?.pipe(out);
    this.child.stderr?.pipe(out);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.#exit = code ?? signal ?? "unknown";
        this.exitedAt = performance.now();
        resolve(this.#exit);
      });
    });
  }

  /** True while the process has not exited. */
  get running(): boolean {
    return this.#exit === null;
  }

  /** The last `lines` lines of the process's log (for error messages). */
  async logTail(lines = 15): Promise<string> {
    const text = await readFile(this.logPath, "utf8").catch(() => "");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /**
   * Polls `url` every 50 ms (each request bounded to 1 s) until it answers
   * 200. Rejects if the process exits first or after `timeoutMs`, with the
   * log tail in the message.
   */
  async waitHttpOk(url: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (!this.running)
        throw new Error(`${this.name} exited (${this.#exit}) before ${url} was ready:\n${await this.logTail()}`);
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) }).catch(() => null);
      if (res) {
        await res.arrayBuffer().catch(() => undefined);
        if (res.status === 200) return;
      }
      await sleep(50);
    }
    throw new Error(`${this.name}: ${url} not ready after ${timeoutMs} ms:\n${await this.logTail()}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once exited. Idempotent. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The processes a script spawned, so they can all be stopped on the way out. */
export class ProcessGroup {
  readonly #logDir: string;
  readonly #env: NodeJS.ProcessEnv | undefined;
  readonly #all: NodeProcess[] = [];
  #closed = false;

  /** `logDir`: where each process's `<name>.log` is written; `env`: the children's environment (default: this process's). */
  constructor(logDir: string, options: { env?: NodeJS.ProcessEnv } = {}) {
    this.#logDir = logDir;
    this.#env = options.env;
  }

  /**
   * Spawns `node ...args` as `name` (the log file name), in `cwd` when given.
   * Throws once {@link stopAll} was called.
   */
  spawn(name: string, args: string[], cwd?: string): NodeProcess {
    if (this.#closed) throw new Error(`ProcessGroup: stopped; not spawning ${name}`);
    const p = new NodeProcess(name, args, this.#logDir, this.#env, cwd);
    this.#all.push(p);
    return p;
  }

  /** Stops every process still running, in parallel, and refuses further spawns. */
  async stopAll(graceMs = 5_000): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#all.map((p) => p.stop(graceMs)));
  }
}
