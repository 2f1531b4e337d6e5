/**
 * Shared set-up of the SNS/SQS integration tests: fauxqs on 127.0.0.1, the
 * reload topic, a status topic with a status queue (as the hook uses), and
 * in-process agents (the real {@link Agent}) in per-pod mode, each with a
 * fake SFU and a ConfigMap directory written the kubelet's way. Every AWS
 * action any of them makes is recorded in `actions`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CreateTopicCommand, PublishCommand, SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
} from "@aws-sdk/client-sqs";
import { Registry } from "prom-client";
import { Agent } from "../../../agent/agent.ts";
import { createLogger } from "../../../agent/logger.ts";
import { type AwsClients, createAwsClients } from "../../../agent/queue/aws-clients.ts";
import { type QueueTrigger, type QueueTriggerOptions, startQueueTrigger } from "../../../agent/queue/index.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { AtomicWriter } from "../../helpers/atomic-writer.ts";
import { FakeSfu, type FakeSfuReply } from "../../helpers/fake-sfu.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../helpers/fauxqs.ts";

export const PREFIX = "sfu-config-";

/** A valid config text; `n` changes `limits.maxRooms` and so the hash. */
export function configText(n: number): string {
  return `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1
logging:
  level: info
limits:
  maxRooms: ${n}
`;
}

/** The config hash of `configText(n)`. */
export async function hashOf(n: number): Promise<string> {
  const r = await loadConfigText(configText(n), { checkFiles: false });
  if (!r.ok) throw new Error("invalid fixture");
  return r.hash;
}

/** Polls `fn` until it returns a truthy value; rejects after `timeoutMs`. */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
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
  const clients = createAwsClients({
    endpointUrl: fx.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
  });
  const topicArn = fx.topicArn("sfu-config-reload");
  const statusTopicArn = fx.topicArn("sfu-config-status");
  let statusQueueUrl = "";
  const pods: TestPod[] = [];
  const dirs: string[] = [];

  const createTopics = async () => {
    await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }));
    await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-status" }));
    // The status queue is not under the per-pod prefix.
    const q = await clients.sqs.send(new CreateQueueCommand({ QueueName: "hook-status" }));
    statusQueueUrl = q.QueueUrl!;
    const arn = (
      await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: statusQueueUrl, AttributeNames: ["QueueArn"] }))
    ).Attributes!.QueueArn!;
    await clients.sns.send(
      new SubscribeCommand({
        TopicArn: statusTopicArn,
        Protocol: "sqs",
        Endpoint: arn,
        Attributes: { RawMessageDelivery: "true" },
      }),
    );
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
      const dir = await mkdtemp(join(tmpdir(), "sfu-queue-test-"));
      dirs.push(dir);
      const writer = new AtomicWriter(dir);
      await writer.write({ "config.yaml": configText(options.initial ?? 1) });
      const logs: string[] = [];
      const destination = new Writable({
        write(chunk, _enc, cb) {
          for (const line of String(chunk).split("\n")) if (line) logs.push(line);
          cb();
        },
      });
      const logger = createLogger({ level: "debug", destination });
      const podClients = createAwsClients({
        endpointUrl: fx.endpoint,
        region: FAUXQS_REGION,
        credentials: FAUXQS_CREDENTIALS,
        callLogFile: null,
        onCall: (a) => actions.add(a),
      });
      let trigger: QueueTrigger | null = null;
      const registry = new Registry();
      const agent = new Agent(
        {
          logger,
          clock: () => new Date(),
          registry,
          startQueueTrigger: async (deps) => {
            trigger = await startQueueTrigger({ ...deps, clients: podClients });
            return trigger;
          },
        },
        {
          configDir: dir,
          configKey: "config.yaml",
          listen: { host: "127.0.0.1", port: 0 },
          http: { host: "127.0.0.1", port: 0 },
          podName: name,
          tokenFile: null,
          ackTimeoutMs: 5_000,
          resyncIntervalMs: 60_000,
          defaultMetrics: false,
          source: { debounceMs: 20 },
          queue: {
            topicArn,
            statusTopicArn,
            podName: name,
            queuePrefix: PREFIX,
            propagationTimeoutMs: 60_000,
            backoffBaseMs: 200,
            backoffMaxMs: 2_000,
            ...options.queue,
          },
        },
      );
      await agent.start();
      const t = trigger as QueueTrigger | null;
      if (!t) throw new Error("the agent did not start the queue trigger");
      await t.ready();
      const sfu = await FakeSfu.connect({ url: agent.pushUrl, name, reply: options.reply ?? { kind: "ack" } });
      let stopped = false;
      const pod: TestPod = {
        name,
        agent,
        trigger: t,
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
