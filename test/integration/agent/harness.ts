/**
 * Shared set-up of the agent integration tests: a temp ConfigMap directory
 * written by the AtomicWriter, an in-process {@link Agent} on port 0 with its
 * JSON log lines captured, and config texts that differ by a number.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Agent, type AgentOptions } from "../../../agent/agent.ts";
import { createLogger } from "../../../agent/logger.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { AtomicWriter } from "../../helpers/atomic-writer.ts";

/** A valid config text; `n` (1..100000) changes `limits.maxRooms` and so the hash. */
export function configText(n: number, extra: { credential?: string; level?: string } = {}): string {
  const turn = extra.credential
    ? `\n  turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: user1\n      credential: ${extra.credential}`
    : "";
  return `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1${turn}
logging:
  level: ${extra.level ?? "info"}
limits:
  maxRooms: ${n}
`;
}

/** The config hash of a config text (throws when invalid). */
export async function hashOf(text: string): Promise<string> {
  const r = await loadConfigText(text, { checkFiles: false });
  if (!r.ok) throw new Error(`hashOf: invalid config: ${JSON.stringify(r.problems)}`);
  return r.hash;
}

/** A running in-process agent and its surroundings. */
export interface TestAgent {
  agent: Agent;
  dir: string;
  writer: AtomicWriter;
  /** Captured JSON log lines, raw. */
  logs: string[];
  /** GET a path of the HTTP server. */
  get(path: string): Promise<{ status: number; text: string }>;
  /** GET /status as JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read /status loosely
  status(): Promise<Record<string, any>>;
  /** Stops the agent (not the directory). */
  stop(): Promise<void>;
  /** Stops the agent and removes the directory. */
  dispose(): Promise<void>;
}

/** Options of {@link startTestAgent}. */
export interface TestAgentOptions extends Partial<Omit<AgentOptions, "configDir">> {
  /** Reuse a directory (agent restart tests); a fresh one is made otherwise. */
  dir?: string;
  /** Initial content of config.yaml (written atomically); none when null. */
  initial?: string | null;
  /** Token written to a token file (sets tokenFile). */
  token?: string;
  logLevel?: "trace" | "debug" | "info";
}

/** Starts an agent in-process on 127.0.0.1 port 0. */
export async function startTestAgent(o: TestAgentOptions = {}): Promise<TestAgent> {
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), "sfu-agent-test-")));
  const writer = new AtomicWriter(dir);
  const initial = o.initial === undefined ? configText(1) : o.initial;
  if (initial !== null) await writer.write({ "config.yaml": initial });
  let tokenFile = o.tokenFile ?? null;
  if (o.token !== undefined) {
    tokenFile = join(dir, "..token");
    await writeFile(tokenFile, `${o.token}\n`);
  }
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(line);
      cb();
    },
  });
  const logger = createLogger({ level: o.logLevel ?? "debug", destination });
  const agent = new Agent(
    { logger, clock: () => new Date() },
    {
      configDir: dir,
      configKey: "config.yaml",
      listen: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      podName: "test-pod",
      tokenFile,
      ackTimeoutMs: o.ackTimeoutMs ?? 10_000,
      resyncIntervalMs: o.resyncIntervalMs ?? 60_000,
      queue: null,
      defaultMetrics: false,
      ...(o.helloTimeoutMs === undefined ? {} : { helloTimeoutMs: o.helloTimeoutMs }),
      ...(o.push === undefined ? {} : { push: o.push }),
      ...(o.pushRetry === undefined ? {} : { pushRetry: o.pushRetry }),
      ...(o.source === undefined ? {} : { source: o.source }),
    },
  );
  await agent.start();
  const get = async (path: string) => {
    const res = await fetch(`${agent.httpUrl}${path}`);
    return { status: res.status, text: await res.text() };
  };
  return {
    agent,
    dir,
    writer,
    logs,
    get,
    status: async () => JSON.parse((await get("/status")).text),
    stop: () => agent.stop(1_000),
    dispose: async () => {
      await agent.stop(1_000);
      if (o.dir === undefined) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it returns a truthy value; rejects after `timeoutMs`. */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
