/**
 * The per-pod SQS queue of `--topic-arn` mode: created, subscribed to the
 * topic, heartbeated, and removed on shutdown. It carries the reload events of
 * PROTOCOL.md [section 11](../../protocol/PROTOCOL.md#11-sns-events).
 */

import { type SNSClient, SubscribeCommand, UnsubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  SetQueueAttributesCommand,
  type SQSClient,
  TagQueueCommand,
} from "@aws-sdk/client-sqs";
import type { Logger } from "pino";
import { jittered } from "../../../protocol/backoff.ts";
import { describeError, isNotFound, isQueueMissing, stopped } from "../../aws/errors.ts";
import { AgentError } from "../../shared/errors.ts";
import type { TimerHandle, Timers } from "../../shared/timers.ts";
import type { QueueMetrics } from "./metrics.ts";

/** Tag holding the epoch second of the owner's last heartbeat. */
export const TAG_HEARTBEAT = "sfu-config:heartbeat";
/** Tag holding the ARN of the queue's SNS subscription (so a sweeper can unsubscribe an orphan). */
export const TAG_SUBSCRIPTION = "sfu-config:subscription";
/** Tag holding the topic the queue is subscribed to. */
export const TAG_TOPIC = "sfu-config:topic";
/** Tag holding the owning pod's name. */
export const TAG_POD = "sfu-config:pod";

/** Tunables of {@link PerPodQueue}. */
export interface PerPodQueueOptions {
  /** How long SQS keeps an unreceived message, seconds (60..1209600). */
  messageRetentionSeconds: number;
  /** Default visibility timeout of the queue, seconds. */
  visibilityTimeoutSeconds: number;
  /** Interval of the heartbeat TagQueue call. */
  heartbeatIntervalMs: number;
}

/** What the per-pod queue and the orphan sweeper both take: the AWS clients and the trigger's logger, metrics and timers. */
export interface PerPodDeps {
  sqs: SQSClient;
  sns: SNSClient;
  logger: Logger;
  metrics: QueueMetrics;
  timers: Timers;
}

/** The queue policy letting only `topicArn` send to `queueArn`. */
export function queuePolicy(queueArn: string, topicArn: string): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Id: "sfu-config-per-pod-queue",
    Statement: [
      {
        Sid: "AllowOnlyTheReloadTopic",
        Effect: "Allow",
        Principal: { Service: "sns.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: queueArn,
        Condition: { ArnEquals: { "aws:SourceArn": topicArn } },
      },
    ],
  });
}

/**
 * Owns one per-pod queue: creates it, lets only the topic send to it,
 * subscribes it with raw delivery, keeps its heartbeat tag fresh, and removes
 * queue and subscription on shutdown.
 *
 * One queue per pod is what makes SNS a broadcast: a queue shared by several
 * replicas delivers each message to only one of them (competing consumers).
 *
 * Calls at start (5): CreateQueue (born tagged with heartbeat, topic, pod) ->
 * GetQueueAttributes(QueueArn) -> SetQueueAttributes(Policy with an
 * `aws:SourceArn` condition on the topic, retention, visibility) ->
 * sns:Subscribe(RawMessageDelivery=true) -> TagQueue(subscription ARN,
 * heartbeat). Every heartbeat interval: one TagQueue. At stop: sns:Unsubscribe
 * and DeleteQueue. All steps are idempotent, so a restarted container (same
 * pod name) adopts its queue and subscription again.
 */
export class PerPodQueue {
  readonly #sqs: SQSClient;
  readonly #sns: SNSClient;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #timers: Timers;
  readonly #topicArn: string;
  readonly #queueName: string;
  readonly #podName: string;
  readonly #options: PerPodQueueOptions;
  #url: string | null = null;
  #subscriptionArn: string | null = null;
  #ensuring: Promise<string> | null = null;
  #heartbeat: TimerHandle = null;
  #stopped = false;
  /** Aborts provisioning calls in flight when the agent stops. */
  readonly #abort = new AbortController();
  readonly #readyWaiters: Array<() => void> = [];

  constructor(
    deps: PerPodDeps & {
      topicArn: string;
      queueName: string;
      podName: string;
      options: PerPodQueueOptions;
    },
  ) {
    this.#sqs = deps.sqs;
    this.#sns = deps.sns;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#timers = deps.timers;
    this.#topicArn = deps.topicArn;
    this.#queueName = deps.queueName;
    this.#podName = deps.podName;
    this.#options = deps.options;
  }

  /** The queue's name. */
  get name(): string {
    return this.#queueName;
  }

  /** The queue URL once provisioned; null before, and after the queue was found missing. */
  get url(): string | null {
    return this.#url;
  }

  /** Resolves once the queue and its subscription exist (at once if they do). */
  ready(): Promise<void> {
    if (this.#url !== null) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /**
   * Creates (or adopts) the queue, its policy and subscription. Single-flight:
   * concurrent callers share one attempt. Throws the AWS error of a failed
   * step (the caller backs off and retries).
   */
  ensure(): Promise<string> {
    if (this.#stopped) return Promise.reject(stopped("the per-pod queue was stopped"));
    this.#ensuring ??= this.#provision().finally(() => {
      this.#ensuring = null;
    });
    return this.#ensuring;
  }

  async #provision(): Promise<string> {
    const signal = { abortSignal: this.#abort.signal };
    const step = async <T>(operation: string, fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        if (!this.#abort.signal.aborted) this.#metrics.sqsErrors.inc({ operation });
        throw err;
      }
    };
    const now = String(Math.floor(this.#timers.now() / 1000));
    const created = await step("CreateQueue", () =>
      this.#sqs.send(
        new CreateQueueCommand({
          QueueName: this.#queueName,
          tags: { [TAG_HEARTBEAT]: now, [TAG_TOPIC]: this.#topicArn, [TAG_POD]: this.#podName.slice(0, 256) },
        }),
        signal,
      ),
    );
    const url = created.QueueUrl;
    if (!url) throw new AgentError("QUEUE_AWS", "CreateQueue returned no QueueUrl");
    const attrs = await step("GetQueueAttributes", () =>
      this.#sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }), signal),
    );
    const arn = attrs.Attributes?.QueueArn;
    if (!arn) throw new AgentError("QUEUE_AWS", "GetQueueAttributes returned no QueueArn");
    await step("SetQueueAttributes", () =>
      this.#sqs.send(
        new SetQueueAttributesCommand({
          QueueUrl: url,
          Attributes: {
            Policy: queuePolicy(arn, this.#topicArn),
            MessageRetentionPeriod: String(this.#options.messageRetentionSeconds),
            VisibilityTimeout: String(this.#options.visibilityTimeoutSeconds),
          },
        }),
        signal,
      ),
    );
    const sub = await step("Subscribe", () =>
      this.#sns.send(
        new SubscribeCommand({
          TopicArn: this.#topicArn,
          Protocol: "sqs",
          Endpoint: arn,
          Attributes: { RawMessageDelivery: "true" },
          ReturnSubscriptionArn: true,
        }),
        signal,
      ),
    );
    this.#subscriptionArn = sub.SubscriptionArn ?? null;
    await step("TagQueue", () =>
      this.#sqs.send(
        new TagQueueCommand({
          QueueUrl: url,
          Tags: {
            [TAG_HEARTBEAT]: String(Math.floor(this.#timers.now() / 1000)),
            ...(this.#subscriptionArn ? { [TAG_SUBSCRIPTION]: this.#subscriptionArn } : {}),
          },
        }),
        signal,
      ),
    );
    if (this.#stopped) {
      // stop() raced with provisioning: do not leave the queue behind.
      this.#url = url;
      await this.#teardown();
      throw stopped("the per-pod queue was stopped while provisioning");
    }
    this.#url = url;
    this.#logger.info({ queueUrl: url, subscriptionArn: this.#subscriptionArn }, "per-pod queue ready");
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
    this.#scheduleHeartbeat();
    return url;
  }

  #scheduleHeartbeat(): void {
    this.#timers.clearTimeout(this.#heartbeat);
    if (this.#stopped) return;
    // A little jitter keeps a fleet started together from tagging in lockstep.
    this.#heartbeat = this.#timers.setTimeout(
      () => {
        void this.heartbeat().finally(() => this.#scheduleHeartbeat());
      },
      jittered(this.#options.heartbeatIntervalMs, 0.1),
    );
  }

  /** Refreshes the heartbeat tag now. A missing queue clears `url` (the poller then re-provisions). Never throws. */
  async heartbeat(): Promise<void> {
    const url = this.#url;
    if (url === null || this.#stopped) return;
    try {
      await this.#sqs.send(
        new TagQueueCommand({
          QueueUrl: url,
          Tags: { [TAG_HEARTBEAT]: String(Math.floor(this.#timers.now() / 1000)) },
        }),
      );
    } catch (err) {
      this.#metrics.sqsErrors.inc({ operation: "TagQueue" });
      if (isQueueMissing(err)) {
        this.#logger.warn({ queueUrl: url }, "per-pod queue disappeared; it will be re-created");
        if (this.#url === url) this.#url = null;
      } else {
        this.#logger.warn({ err: describeError(err) }, "heartbeat TagQueue failed");
      }
    }
  }

  /** Marks the queue as gone (e.g. after ReceiveMessage said so); the next ensure() re-creates it. */
  forget(): void {
    this.#url = null;
  }

  /** Stops the heartbeat and aborts provisioning in flight (first step of shutdown; stop() includes it). */
  halt(): void {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#heartbeat);
    this.#abort.abort();
  }

  /** Halts, then unsubscribes and deletes the queue. Never throws; failures are logged and counted. */
  async stop(): Promise<void> {
    this.halt();
    await this.#ensuring?.catch(() => {});
    await this.#teardown();
  }

  async #teardown(): Promise<void> {
    if (this.#subscriptionArn) {
      try {
        await this.#sns.send(new UnsubscribeCommand({ SubscriptionArn: this.#subscriptionArn }));
      } catch (err) {
        if (!isNotFound(err)) {
          this.#metrics.sqsErrors.inc({ operation: "Unsubscribe" });
          this.#logger.warn({ err: describeError(err) }, "Unsubscribe failed; the sweeper of another pod will retry");
        }
      }
      this.#subscriptionArn = null;
    }
    const url = this.#url;
    if (url) {
      try {
        await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
        this.#logger.info({ queueUrl: url }, "per-pod queue deleted");
      } catch (err) {
        if (!isQueueMissing(err)) {
          this.#metrics.sqsErrors.inc({ operation: "DeleteQueue" });
          this.#logger.warn({ err: describeError(err) }, "DeleteQueue failed; the sweeper of another pod will retry");
        }
      }
      this.#url = null;
    }
  }
}
