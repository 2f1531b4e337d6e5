/**
 * Shared set-up of the SFU integration tests: a config on loopback, an SFU
 * server on port 0 (standalone or dialing a {@link FakeAgent}), and a pino
 * logger whose lines are captured for assertions.
 */

import { Writable } from "node:stream";
import { pino } from "pino";
import { SfuServer } from "../../../sfu/server.ts";
import { FakeAgent } from "../../helpers/fake-agent.ts";
import { until } from "../../helpers/until.ts";

export { freePort } from "../../../scripts/local/processes.ts";

/** A valid v1 config for tests: ICE on 127.0.0.1, VP8 + Opus. */
export function testConfig(
  patch: {
    codecs?: string[];
    logLevel?: string;
    port?: number;
    portRange?: [number, number];
    turn?: unknown[];
    limits?: unknown;
  } = {},
): Record<string, unknown> {
  const config: Record<string, unknown> = {
    schemaVersion: 1,
    server: { port: patch.port ?? 8080 },
    webrtc: {
      icePortRange: patch.portRange ?? [42000, 42999],
      codecs: patch.codecs ?? ["vp8", "opus"],
      listenIp: "127.0.0.1",
      ...(patch.turn ? { turnServers: patch.turn } : {}),
    },
    logging: { level: patch.logLevel ?? "warn" },
  };
  if (patch.limits) config.limits = patch.limits;
  return config;
}

/** Captured log lines (parsed JSON). */
export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      for (const line of chunk.toString().split("\n")) {
        if (!line) continue;
        this.raw.push(line);
        try {
          this.lines.push(JSON.parse(line));
        } catch {}
      }
      cb();
    },
  });
}

/** A running SFU under test. */
export interface SfuUnderTest {
  server: SfuServer;
  agent: FakeAgent | null;
  logs: LogCapture;
  /** `ws://127.0.0.1:<port>/ws` */
  wsUrl: string;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts an SFU dialing a fresh FakeAgent (port override 0) and, unless
 * `initialConfig` is null, pushes it and waits for the ack.
 */
export async function startWithAgent(
  initialConfig: Record<string, unknown> | null = testConfig(),
  options: { token?: string; tokenFile?: string; portOverride?: number | null; secretsDir?: string } = {},
): Promise<SfuUnderTest> {
  const agent = await FakeAgent.start(options.token ? { token: options.token } : {});
  const logs = new LogCapture();
  const logger = pino({ level: "info" }, logs.stream);
  const server = new SfuServer({
    logger,
    agentUrl: agent.url,
    port: options.portOverride === undefined ? 0 : options.portOverride,
    host: "127.0.0.1",
    initialBackoffMs: 100,
    maxBackoffMs: 400,
    tokenFile: options.tokenFile ?? null,
    ...(options.secretsDir !== undefined ? { secretsDir: options.secretsDir } : {}),
  });
  await server.start();
  if (!options.token || options.tokenFile) {
    await agent.waitForHello(0);
    if (initialConfig) {
      const reply = await agent.pushAndWait(initialConfig);
      if (reply.type !== "ack") throw new Error(`initial config refused: ${JSON.stringify(reply)}`);
    }
  }
  await until(() => server.port !== null, 5000, "the SFU to listen");
  const port = server.port!;
  return {
    server,
    agent,
    logs,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    stop: async () => {
      await server.stop();
      await agent.stop();
    },
  };
}

/** Sleeps `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
