/**
 * A real TURN server on this machine, for the tests and `npm start -- --turn`:
 * Debian's coturn (`turnserver`) on 127.0.0.1, TURN REST API authentication
 * (`use-auth-secret` with one or more `static-auth-secret` lines: two during
 * a rotation's overlap), no TLS/DTLS, relaying on loopback
 * (`allow-loopback-peers`, since every peer here is 127.0.0.1), no CLI,
 * realm `sfu.test`, and its log in a temporary file (allocations, refusals).
 * Its config file (which holds the secrets) is mode 0600 in a temporary
 * directory removed on stop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./processes.ts";

/** The realm of the local TURN server. */
export const COTURN_REALM = "sfu.test";

/** Where Debian installs coturn; `SFU_TEST_TURNSERVER` overrides it. */
export function turnserverPath(): string {
  return process.env.SFU_TEST_TURNSERVER || "/usr/bin/turnserver";
}

/** The command that installs coturn on Debian. */
export const COTURN_INSTALL = "apt-get install -y coturn";

/** True when `turnserver` is installed (an executable file). */
export function coturnInstalled(path = turnserverPath()): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link startCoturn}. */
export interface CoturnOptions {
  /** The TURN REST shared secrets coturn accepts (one, or old and new during a rotation). */
  secrets: string[];
  /** Relay port range (default: 100 ports from a random base in 50000..59900). */
  relayPorts?: [number, number];
  /** Listening port (default: a free one). */
  port?: number;
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
 * an Error naming the install command when `turnserver` is not installed,
 * and one with the log's tail when it does not come up.
 */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  const bin = turnserverPath();
  if (!coturnInstalled(bin)) throw new Error(`coturn (${bin}) is not installed; run: ${COTURN_INSTALL}`);
  const dir = await mkdtemp(join(tmpdir(), "sfu-coturn-"));
  const port = options.port ?? (await freeTcpUdpPort());
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

/** A fresh random TURN REST shared secret (32 bytes, base64url). */
export function randomTurnSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** True when a STUN Binding request to 127.0.0.1:`port` is answered within `timeoutMs` (resent every 100 ms). */
export async function stunBindingAnswered(port: number, timeoutMs = 500): Promise<boolean> {
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
  request.writeUInt32BE(0x2112a442, 4); // magic cookie
  randomBytes(12).copy(request, 8);
  const socket = createSocket("udp4");
  let resend: ReturnType<typeof setInterval> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      socket.on("error", () => resolve(false));
      socket.on("message", (msg) => {
        if (msg.length >= 20 && msg.subarray(8, 20).equals(request.subarray(8, 20))) resolve(true);
      });
      const send = () => socket.send(request, port, "127.0.0.1");
      send();
      resend = setInterval(send, 100);
    });
  } finally {
    clearInterval(resend);
    clearTimeout(timer);
    socket.close();
  }
}
