/**
 * Shared set-up of the agent integration tests: a temp ConfigMap directory
 * written by the AtomicWriter, an in-process {@link Agent} on port 0 with its
 * JSON log lines captured, and config texts that differ by a number.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { Agent, type AgentOptions } from "../../../agent/sidecar/agent.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { configText } from "../../helpers/config-text.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";

export { configHash as hashOf, configText } from "../../helpers/config-text.ts";
export { until } from "../../helpers/until.ts";

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
  const { logger, logs } = capturedLogger(o.logLevel ?? "debug");
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
      ...(o.nackRetry === undefined ? {} : { nackRetry: o.nackRetry }),
      ...(o.httpAllowedHosts === undefined ? {} : { httpAllowedHosts: o.httpAllowedHosts }),
      ...(o.podIp === undefined ? {} : { podIp: o.podIp }),
      ...(o.secretsDir === undefined ? {} : { secretsDir: o.secretsDir }),
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

/**
 * Starters for one test file that remember what they started and, in an
 * `after` hook of the file, close every fake SFU and dispose of every agent.
 */
export function trackedStarters(): {
  agent(o?: TestAgentOptions): Promise<TestAgent>;
  sfu(o: Parameters<typeof FakeSfu.connect>[0]): Promise<FakeSfu>;
} {
  const agents: TestAgent[] = [];
  const sfus: FakeSfu[] = [];
  after(async () => {
    for (const s of sfus) await s.close();
    for (const a of agents) await a.dispose();
  });
  return {
    async agent(o = {}) {
      const a = await startTestAgent(o);
      agents.push(a);
      return a;
    },
    async sfu(o) {
      const s = await FakeSfu.connect(o);
      sfus.push(s);
      return s;
    },
  };
}
