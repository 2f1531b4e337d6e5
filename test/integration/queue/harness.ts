/**
 * Shared set-up of the SNS/SQS integration tests: fauxqs on 127.0.0.1, the
 * reload topic, a status topic with a status queue (as the hook uses), and
 * in-process agents (the real {@link Agent}) in per-pod mode, each with a
 * fake SFU and a ConfigMap directory written the kubelet's way. Every AWS
 * action any of them makes is recorded in `actions`.
 */
import { rm } from "node:fs/promises";
import { PublishCommand } from "@aws-sdk/client-sns";
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
} from "@aws-sdk/client-sqs";
import type { Registry } from "prom-client";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { runNotify } from "../../../agent/commands/notify.ts";
import type { Agent, AgentDeps, AgentOptions } from "../../../agent/sidecar/agent.ts";
import type { QueueTrigger, QueueTriggerOptions } from "../../../agent/sidecar/queue/index.ts";
import type { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { createHookTopics, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { type CliRun, captureRun } from "../../helpers/cli-run.ts";
import { configHash, configText } from "../../helpers/config-text.ts";
import type { FakeSfu, FakeSfuReply } from "../../helpers/fake-sfu.ts";
import { startQueuePod, TEST_QUEUE_PREFIX, testPodQueue } from "../../helpers/queue-pod.ts";

export { configText } from "../../helpers/config-text.ts";
export { until } from "../../helpers/until.ts";

export const PREFIX = TEST_QUEUE_PREFIX;

/** The config hash of `configText(n)`. */
export function hashOf(n: number): Promise<string> {
  return configHash(configText(n));
}

/** One in-process pod: agent + queue trigger + fake SFU. */
export interface TestPod {
  name: string;
  agent: Agent;
  trigger: QueueTrigger;
  sfu: FakeSfu;
  writer: AtomicWriter;
  registry: Registry;
  logs: string[];
  /** Writes config `n` into the pod's directory (a kubelet swap). */
  swap(n: number): Promise<void>;
  /** A metric's value (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Stops the SFU and the agent (SIGTERM path). */
  stop(): Promise<void>;
}

/** Options of {@link QueueFixture.startPod}. */
export interface PodOptions {
  /** Config number initially in the directory (default 1). */
  initial?: number;
  reply?: FakeSfuReply;
  queue?: Partial<QueueTriggerOptions>;
  /** More files of the ConfigMap (e.g. `rollout.yaml`). */
  files?: Record<string, string>;
  /** Agent options and dependencies over the defaults (e.g. the rollout state). */
  agentOptions?: Partial<AgentOptions>;
  agentDeps?: Partial<AgentDeps>;
}

/** fauxqs plus topics and pods. */
export interface QueueFixture {
  fx: FauxqsHandle;
  clients: AwsClients;
  topicArn: string;
  statusTopicArn: string;
  statusQueueUrl: string;
  /** Every AWS action made by any pod (and by the fixture's own set-up, which is excluded). */
  actions: Set<string>;
  startPod(name: string, options?: PodOptions): Promise<TestPod>;
  /** Publishes a reload event for config `n` (or a raw body). */
  publish(n: number | string, extra?: Record<string, unknown>): Promise<Record<string, unknown> | string>;
  /** (Re-)creates the topics and the status queue + subscription. */
  createTopics(): Promise<void>;
  /** Queue names with the per-pod prefix. */
  listQueues(): Promise<string[]>;
  /** The approximate numbers of visible and in-flight messages of a queue. */
  depth(queueUrl: string): Promise<{ visible: number; inflight: number }>;
  /** Pods started, for disposal. */
  pods: TestPod[];
  dispose(): Promise<void>;
}

/** Starts fauxqs and creates the topics. */
export async function startQueueFixture(): Promise<QueueFixture> {
  const fx = await startFauxqs();
  const actions = new Set<string>();
  // The fixture's own client (topics, publishing, inspection) is not recorded.
  const clients = fx.clients();
  const topicArn = fx.topicArn("sfu-config-reload");
  const statusTopicArn = fx.topicArn("sfu-config-status");
  let statusQueueUrl = "";
  const pods: TestPod[] = [];
  const dirs: string[] = [];

  // The status queue is not under the per-pod prefix.
  const createTopics = async () => {
    ({ statusQueueUrl } = await createHookTopics(clients, {
      reload: "sfu-config-reload",
      status: "sfu-config-status",
      statusQueue: "hook-status",
    }));
  };
  await createTopics();

  const fixture: QueueFixture = {
    fx,
    clients,
    topicArn,
    statusTopicArn,
    get statusQueueUrl() {
      return statusQueueUrl;
    },
    actions,
    pods,
    createTopics,
    async startPod(name, options = {}) {
      const { logger, logs } = capturedLogger("debug");
      const podClients = fx.clients({ onCall: (a) => actions.add(a) });
      const { dir, writer, agent, trigger, sfu } = await startQueuePod({
        name,
        tmpPrefix: "sfu-queue-test-",
        initialConfig: configText(options.initial ?? 1),
        logger,
        clients: podClients,
        resyncIntervalMs: 60_000,
        queue: { ...testPodQueue({ topicArn, statusTopicArn }), ...options.queue },
        ...(options.reply ? { reply: options.reply } : {}),
        ...(options.files ? { files: options.files } : {}),
        ...(options.agentOptions ? { agentOptions: options.agentOptions } : {}),
        ...(options.agentDeps ? { agentDeps: options.agentDeps } : {}),
      });
      dirs.push(dir);
      const registry = agent.registry;
      let stopped = false;
      const pod: TestPod = {
        name,
        agent,
        trigger,
        sfu,
        writer,
        registry,
        logs,
        swap: async (n) => {
          await writer.write({ "config.yaml": configText(n) });
        },
        metric: async (metricName, labels = {}) => {
          const m = (await registry.getMetricsAsJSON()).find((x) => x.name === metricName);
          const v = (m?.values as Array<{ labels: Record<string, string>; value: number }> | undefined)?.find((x) =>
            Object.entries(labels).every(([k, val]) => x.labels[k] === val),
          );
          return v?.value ?? 0;
        },
        stop: async () => {
          if (stopped) return;
          stopped = true;
          await sfu.close();
          await agent.stop(500);
          podClients.destroy();
        },
      };
      pods.push(pod);
      return pod;
    },
    async publish(n, extra = {}) {
      const body =
        typeof n === "string"
          ? n
          : {
              type: "sfu-config.reload",
              revision: `rev-${n}`,
              hash: await hashOf(n),
              configMap: "sfu/sfu-config",
              issuedAt: new Date().toISOString(),
              ...extra,
            };
      await clients.sns.send(
        new PublishCommand({ TopicArn: topicArn, Message: typeof body === "string" ? body : JSON.stringify(body) }),
      );
      return body;
    },
    async listQueues() {
      const res = await clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: PREFIX, MaxResults: 1000 }));
      return (res.QueueUrls ?? []).map((u) => u.slice(u.lastIndexOf("/") + 1)).sort();
    },
    async depth(queueUrl) {
      const a = await clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      return {
        visible: Number(a.Attributes?.ApproximateNumberOfMessages ?? 0),
        inflight: Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
      };
    },
    async dispose() {
      for (const p of pods) await p.stop().catch(() => {});
      clients.destroy();
      await fx.stop();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** Receives and deletes status events from the status queue (`rounds` long polls of 1 s). */
export async function drainStatus(f: QueueFixture, rounds = 1): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < rounds; i++) {
    const res = await f.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: f.statusQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    for (const m of res.Messages ?? []) {
      out.push(JSON.parse(m.Body ?? "{}"));
      await f.clients.sqs.send(
        new DeleteMessageCommand({ QueueUrl: f.statusQueueUrl, ReceiptHandle: m.ReceiptHandle }),
      );
    }
  }
  return out;
}

/** Runs `sfu-agent notify argv` in-process on `clients` (no environment), capturing its output. */
export function runNotifyCaptured(argv: string[], clients: AwsClients): Promise<CliRun> {
  return captureRun((io) => runNotify(argv, io, { env: {}, clients }));
}

/**
 * The argv of `sfu-agent notify --wait` publishing `file` to the fixture's
 * reload topic and waiting on its status queue for `expect` pods at most
 * `timeout`; `extra` flags go before `--wait`.
 */
export function notifyWaitArgv(
  f: QueueFixture,
  file: string,
  o: { expect: number; timeout: string; extra?: string[] },
): string[] {
  return [
    "--topic-arn",
    f.topicArn,
    "--config",
    file,
    ...(o.extra ?? []),
    "--wait",
    "--expect",
    String(o.expect),
    "--status-queue-url",
    f.statusQueueUrl,
    "--timeout",
    o.timeout,
  ];
}
