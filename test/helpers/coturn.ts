/**
 * A real TURN server for tests: Debian's coturn (`turnserver`) on 127.0.0.1,
 * a free port, TURN REST API authentication (`use-auth-secret` with one or
 * more `static-auth-secret` lines: several during a rotation's overlap), no
 * TLS/DTLS, relaying on loopback (`allow-loopback-peers`, since every peer in
 * a test is 127.0.0.1), no CLI, realm `sfu.test`, and its log in a temporary
 * file the test can read (allocations, refusals).
 *
 * Missing `turnserver` fails at once with the install command (`apt-get
 * install -y coturn`) instead of a timeout.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../scripts/local/processes.ts";
import { isExecutable, requireSystemDependency, type SystemDependency } from "./system-deps.ts";
import { stunBindingAnswered } from "./turn-client.ts";

/** The realm the test TURN server uses. */
export const COTURN_REALM = "sfu.test";

/** Debian's coturn, for the TURN tests and `npm start -- --turn`. `SFU_TEST_TURNSERVER` overrides the path. */
export function coturnDependency(path = process.env.SFU_TEST_TURNSERVER || "/usr/bin/turnserver"): SystemDependency {
  return { name: `coturn (${path})`, check: () => isExecutable(path), install: "apt-get install -y coturn" };
}

/** Options of {@link startCoturn}. */
export interface CoturnOptions {
  /** The TURN REST shared secrets coturn accepts (one, or old and new during a rotation). */
  secrets: string[];
  /** Relay port range (default: 100 ports from a random base in 50000..59900). */
  relayPorts?: [number, number];
  /** How long to wait for the server to answer STUN (default 5 s). */
  startTimeoutMs?: number;
}

/** A running coturn. */
export interface Coturn {
  /** The UDP/TCP listening port on 127.0.0.1. */
  port: number;
  /** `turn:127.0.0.1:<port>?transport=udp` */
  url: string;
  /** The log file path. */
  logPath: string;
  /** The log so far. */
  log(): Promise<string>;
  /** Stops the server (SIGTERM, SIGKILL after 2 s) and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/** True when nothing listens on UDP 127.0.0.1:`port` (bound and released). */
async function udpFree(port: number): Promise<boolean> {
  const socket = createSocket("udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, "127.0.0.1", () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      socket.close();
    } catch {
      // never bound
    }
  }
}

/** A port free for both TCP and UDP on 127.0.0.1 (10 tries). */
async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 10; i++) {
    const port = await freePort();
    if (await udpFree(port)) return port;
  }
  throw new Error("no port free for both TCP and UDP on 127.0.0.1 after 10 tries");
}

/** The coturn configuration file text for `port`, `secrets` and `logPath`. */
export function coturnConfig(options: {
  port: number;
  secrets: string[];
  logPath: string;
  pidPath: string;
  dbPath: string;
  relayPorts: [number, number];
}): string {
  if (options.secrets.length === 0) throw new TypeError("coturn needs at least one static-auth-secret");
  for (const s of options.secrets) {
    if (/[\r\n]/.test(s) || s.trim() !== s || s === "") {
      throw new TypeError("a static-auth-secret must be one line without surrounding whitespace");
    }
  }
  return [
    `listening-port=${options.port}`,
    "listening-ip=127.0.0.1",
    "relay-ip=127.0.0.1",
    `min-port=${options.relayPorts[0]}`,
    `max-port=${options.relayPorts[1]}`,
    "use-auth-secret",
    ...options.secrets.map((s) => `static-auth-secret=${s}`),
    `realm=${COTURN_REALM}`,
    "no-tls",
    "no-dtls",
    "no-rfc5780",
    "allow-loopback-peers",
    "no-cli",
    "no-software-attribute",
    "fingerprint",
    "verbose",
    `log-file=${options.logPath}`,
    "simple-log",
    `pidfile=${options.pidPath}`,
    `userdb=${options.dbPath}`,
    "",
  ].join("\n");
}

/**
 * Starts coturn and resolves once it answers a STUN Binding request. Throws
 * MissingSystemDependencyError (with the install command) when `turnserver`
 * is not installed, and an Error with the log's tail when it does not come up.
 */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  const bin = process.env.SFU_TEST_TURNSERVER || "/usr/bin/turnserver";
  requireSystemDependency(coturnDependency(bin));
  const dir = await mkdtemp(join(tmpdir(), "sfu-coturn-"));
  const port = await freeTcpUdpPort();
  const base = 50000 + Math.floor(Math.random() * 99) * 100;
  const relayPorts = options.relayPorts ?? [base, base + 99];
  const logPath = join(dir, "turnserver.log");
  const confPath = join(dir, "turnserver.conf");
  await writeFile(
    confPath,
    coturnConfig({
      port,
      secrets: options.secrets,
      logPath,
      pidPath: join(dir, "turnserver.pid"),
      dbPath: join(dir, "turndb"),
      relayPorts,
    }),
    { mode: 0o600 },
  );
  const child: ChildProcess = spawn(bin, ["-c", confPath, "--no-stdout-log"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const log = async () => {
    try {
      return await readFile(logPath, "utf8");
    } catch {
      return "";
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (running) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = performance.now() + (options.startTimeoutMs ?? 5000);
  while (!(await stunBindingAnswered(port, 200))) {
    if (!running || performance.now() > deadline) {
      const tail = (await log()).split("\n").slice(-15).join("\n");
      await stop();
      throw new Error(`coturn did not answer STUN on 127.0.0.1:${port}\nstderr: ${stderr}\nlog tail:\n${tail}`);
    }
  }
  return { port, url: `turn:127.0.0.1:${port}?transport=udp`, logPath, log, stop };
}
