/**
 * One in-process pod in per-pod queue mode, as the SNS/SQS tests and the
 * queue benchmark run it: a temp ConfigMap directory written by the
 * {@link AtomicWriter}, the real {@link Agent} on 127.0.0.1 port 0 with its
 * queue trigger on caller-owned AWS clients, and a {@link FakeSfu} connected
 * to its push server.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { AwsClients } from "../../agent/aws/aws-clients.ts";
import { Agent, type AgentDeps, type AgentOptions } from "../../agent/sidecar/agent.ts";
import { type QueueTrigger, type QueueTriggerOptions, startQueueTrigger } from "../../agent/sidecar/queue/index.ts";
import type { ConfigMessage } from "../../protocol/messages-schema.ts";
import { AtomicWriter } from "../../scripts/local/atomic-writer.ts";
import { FakeSfu, type FakeSfuReply } from "./fake-sfu.ts";

/** Options of {@link startQueuePod}. */
export interface QueuePodOptions {
  /** Pod name (also the queue trigger's `podName`). */
  name: string;
  /** Prefix of the temp directory's name. */
  tmpPrefix: string;
  /** Initial content of `config.yaml`. */
  initialConfig: string;
  logger: Logger;
  /** The trigger's AWS clients; the caller owns (destroys) them. */
  clients: AwsClients;
  /** The agent's ack timeout (default {@link TEST_POD_DEFAULTS}). */
  ackTimeoutMs?: number;
  resyncIntervalMs: number;
  /** Debounce of the file watch (default {@link TEST_POD_DEFAULTS}). */
  debounceMs?: number;
  /** Queue trigger options; `podName` is `name`. */
  queue: Omit<QueueTriggerOptions, "podName">;
  /** How the fake SFU answers configs (default: ack), or a function choosing per config. */
  reply?: FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply);
  /** More files of the ConfigMap written with the config (e.g. `rollout.yaml`). */
  files?: Record<string, string>;
  /** An existing ConfigMap directory to use (an agent restart); a fresh temp directory when absent. */
  dir?: string;
  /** Agent options over the ones above (e.g. the rollout settings). */
  agentOptions?: Partial<AgentOptions>;
  /** Agent dependencies over the ones above (e.g. `rolloutState`). */
  agentDeps?: Partial<AgentDeps>;
  /** What the fake SFU reports in its hello as applied (default null). */
  sfuApplied?: { version: number; hash: string } | null;
}

/** The agent timings of the tests' pods unless a test sets its own: a 5 s ack timeout, a 20 ms debounce. */
export const TEST_POD_DEFAULTS = { ackTimeoutMs: 5_000, debounceMs: 20 } as const;

/** Prefix of the per-pod queues of the tests' pods. */
export const TEST_QUEUE_PREFIX = "sfu-config-";

/**
 * The queue options the SNS/SQS tests run a pod with: per-pod mode on the
 * fixture's topics, {@link TEST_QUEUE_PREFIX}, a 60 s propagation timeout
 * and a short back-off (200 ms doubling to 2 s).
 */
export function testPodQueue(topics: { topicArn: string; statusTopicArn: string | null }): QueuePodOptions["queue"] {
  return {
    topicArn: topics.topicArn,
    statusTopicArn: topics.statusTopicArn,
    queuePrefix: TEST_QUEUE_PREFIX,
    propagationTimeoutMs: 60_000,
    backoffBaseMs: 200,
    backoffMaxMs: 2_000,
  };
}

/** A started pod. The caller removes `dir`. */
export interface QueuePod {
  dir: string;
  writer: AtomicWriter;
  agent: Agent;
  trigger: QueueTrigger;
  sfu: FakeSfu;
}

/**
 * Starts the agent, waits until its per-pod queue is provisioned
 * (`trigger.ready()`), then connects the fake SFU. Stop with `sfu.close()`
 * then `agent.stop(grace)`.
 */
export async function startQueuePod(o: QueuePodOptions): Promise<QueuePod> {
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), o.tmpPrefix)));
  const writer = new AtomicWriter(dir);
  if (o.dir === undefined) await writer.write({ "config.yaml": o.initialConfig, ...o.files });
  let trigger: QueueTrigger | null = null;
  const agent = new Agent(
    {
      logger: o.logger,
      clock: () => new Date(),
      startQueueTrigger: async (deps) => {
        trigger = await startQueueTrigger({ ...deps, clients: o.clients });
        return trigger;
      },
      ...o.agentDeps,
    },
    {
      configDir: dir,
      configKey: "config.yaml",
      listen: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      podName: o.name,
      tokenFile: null,
      ackTimeoutMs: o.ackTimeoutMs ?? TEST_POD_DEFAULTS.ackTimeoutMs,
      resyncIntervalMs: o.resyncIntervalMs,
      defaultMetrics: false,
      source: { debounceMs: o.debounceMs ?? TEST_POD_DEFAULTS.debounceMs },
      queue: { ...o.queue, podName: o.name },
      ...o.agentOptions,
    },
  );
  await agent.start();
  const t = trigger as QueueTrigger | null;
  if (!t) throw new Error("the agent did not start the queue trigger");
  await t.ready();
  const sfu = await FakeSfu.connect({
    url: agent.pushUrl,
    name: o.name,
    reply: o.reply ?? { kind: "ack" },
    ...(o.sfuApplied === undefined ? {} : { applied: o.sfuApplied }),
  });
  return { dir, writer, agent, trigger: t, sfu };
}
