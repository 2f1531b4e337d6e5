/**
 * The SNS/SQS trigger of `sfu-agent run`: receives the reload events of
 * PROTOCOL.md [section 11](../../protocol/PROTOCOL.md#11-sns-events) on a
 * per-pod or a given queue and settles them against the agent's state.
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { HealthCounters, ReloadEvent } from "../../../protocol/messages-schema.ts";
import type { ReloadRolloutField } from "../../../protocol/rollout-schema.ts";
import { type AwsClients, createAwsClients, regionFromResource } from "../../aws/aws-clients.ts";
import { realTimers, type Timers } from "../../shared/timers.ts";
import { HEALTH_REPORT_INTERVAL_MS, HealthPublisher } from "./health-publisher.ts";
import { createQueueMetrics } from "./metrics.ts";
import { type QueueTriggerOptions, resolveQueueOptions } from "./options.ts";
import { OrphanSweeper } from "./orphan-sweeper.ts";
import { type PerPodDeps, PerPodQueue } from "./per-pod-queue.ts";
import { QueuePoller } from "./poller.ts";
import { perPodQueueName } from "./queue-name.ts";
import { type SettlementStore, Settler } from "./settlement.ts";
import { StatusPublisher } from "./status-publisher.ts";

export { QUEUE_DEFAULTS, type QueueTriggerOptions } from "./options.ts";

/** Snapshot of the trigger for /status `queue` (contract fields first). */
export interface QueueStatus {
  mode: "per-pod" | "given";
  /** The queue polled; null while a per-pod queue is not (yet, or any more) provisioned. */
  url: string | null;
  /** Reload events waiting to settle. */
  pendingEvents: number;
  /** Consecutive failed receive calls (0 when healthy). */
  receiveFailures: number;
}

/** A running trigger. */
export interface QueueTrigger {
  /** For /status `queue`: mode per-pod|given and the queue URL. */
  status(): QueueStatus;
  /** Resolves once the queue is usable (per-pod: created and subscribed; given: at once). */
  ready(): Promise<void>;
  /** Stops polling and timers; in per-pod mode unsubscribes and deletes the queue. Never throws. */
  stop(): Promise<void>;
  /** The call-health publisher (with `statusTopicArn` and a `health` source), else null. */
  readonly health: HealthPublisher | null;
}

/**
 * Starts the trigger. `store` is the agent's settlement engine (config state,
 * settlements; ../settlements.ts); `checkFile` re-reads the mounted file (article-style
 * messages); metrics go to `registry`; log lines carry `component: "queue"`.
 * Optional test seams: `timers`, `random`, and `clients` (AWS clients from
 * {@link createAwsClients}; when given, the caller owns them).
 *
 * - Per-pod mode (`topicArn`): the agent owns a queue `<prefix><pod-name>`
 *   subscribed to the topic (see per-pod-queue.ts), heartbeats it, and sweeps
 *   orphaned queues of dead pods (orphan-sweeper.ts).
 * - Given mode (`queueUrl`): it only polls that queue. A queue shared by
 *   several replicas delivers each event to only ONE of them.
 *
 * Received reload events are settled against the agent's state
 * (settlement.ts); each settlement is recorded in the tracker, counted in
 * metrics and, with `statusTopicArn`, published as a status event. With
 * `statusTopicArn` and a `health` source, the trigger also holds the
 * {@link HealthPublisher} (`trigger.health`) that the rollout integration
 * drives with `setRollout` while a progressive rollout runs.
 *
 * `startQueueTrigger` returns at once: provisioning and polling run in the
 * background and retry with back-off, so an unreachable SQS never delays or
 * fails the agent's start and never affects /readyz. Options are checked
 * synchronously: bad options reject with an AgentError `QUEUE_OPTIONS`.
 */
export async function startQueueTrigger(deps: {
  store: SettlementStore;
  checkFile?: () => Promise<void>;
  logger: Logger;
  registry: Registry;
  options: QueueTriggerOptions;
  timers?: Timers;
  random?: () => number;
  clients?: AwsClients;
  /** Takes reload events carrying a `rollout` field: re-read the rollout state (they are not settled then). */
  onRolloutEvent?: (rollout: ReloadRolloutField | "malformed", event: ReloadEvent) => void;
  /** The SFU's latest call-health report (the StatusTracker's `health()`), for health events during a rollout. */
  health?: () => HealthCounters | null;
  /** Interval of health events while a rollout runs (`--health-report-interval`; default {@link HEALTH_REPORT_INTERVAL_MS}). */
  healthReportIntervalMs?: number;
}): Promise<QueueTrigger> {
  const o = resolveQueueOptions(deps.options);
  const timers = deps.timers ?? realTimers;
  const random = deps.random ?? Math.random;
  const logger = deps.logger.child({ component: "queue" });
  const metrics = createQueueMetrics(deps.registry);
  const clients =
    deps.clients ??
    createAwsClients({ region: o.region ?? regionFromResource(o.topicArn ?? o.queueUrl), endpointUrl: o.endpointUrl });
  const store = deps.store;

  const perPodDeps: PerPodDeps = { sqs: clients.sqs, sns: clients.sns, logger, metrics, timers };
  const perPod =
    o.topicArn !== null
      ? new PerPodQueue({
          ...perPodDeps,
          topicArn: o.topicArn,
          queueName: perPodQueueName(o.queuePrefix, o.podName),
          podName: o.podName,
          options: {
            messageRetentionSeconds: o.messageRetentionSeconds,
            visibilityTimeoutSeconds: o.visibilityTimeoutSeconds,
            heartbeatIntervalMs: o.heartbeatIntervalMs,
          },
        })
      : null;
  const statusPublisher = o.statusTopicArn
    ? new StatusPublisher({
        sns: clients.sns,
        topicArn: o.statusTopicArn,
        pod: o.podName,
        logger,
        metrics,
        retryBackoff: { baseMs: o.backoffBaseMs, maxMs: o.backoffMaxMs },
      })
    : null;

  const healthPublisher =
    o.statusTopicArn && deps.health
      ? new HealthPublisher({
          sns: clients.sns,
          topicArn: o.statusTopicArn,
          pod: o.podName,
          logger,
          metrics,
          timers,
          health: deps.health,
          ...(deps.healthReportIntervalMs !== undefined ? { intervalMs: deps.healthReportIntervalMs } : {}),
        })
      : null;

  let settler: Settler | null = null;
  const poller = new QueuePoller({
    sqs: clients.sqs,
    queueUrl: () => (perPod ? perPod.url : o.queueUrl),
    logger,
    metrics,
    timers,
    random,
    onMessage: (m) => settler?.handle(m),
    ...(perPod
      ? {
          onQueueMissing: async () => {
            perPod.forget();
            await perPod.ensure();
          },
        }
      : {}),
    options: {
      waitTimeSeconds: o.waitTimeSeconds,
      visibilityTimeoutSeconds: o.visibilityTimeoutSeconds,
      backoff: { baseMs: o.backoffBaseMs, maxMs: o.backoffMaxMs },
    },
  });
  settler = new Settler({
    store,
    timers,
    logger,
    metrics,
    actions: poller,
    ...(deps.checkFile ? { checkFile: deps.checkFile } : {}),
    ...(deps.onRolloutEvent ? { onRolloutEvent: deps.onRolloutEvent } : {}),
    options: { propagationTimeoutMs: o.propagationTimeoutMs, visibilityTimeoutSeconds: o.visibilityTimeoutSeconds },
  });
  const sweeper =
    perPod && o.sweep
      ? new OrphanSweeper({
          ...perPodDeps,
          random,
          prefix: o.queuePrefix,
          ownName: perPod.name,
          options: { intervalMs: o.sweepIntervalMs, staleAfterMs: o.staleAfterMs, maxChecks: o.sweepMaxChecks },
        })
      : null;

  // Every settlement recorded for this pod is published: the queue's own, and
  // those the settlement engine adds (a rejected config applied later settles again).
  const unsubscribeSettled = statusPublisher
    ? store.subscribe((e) => {
        if (e.type === "settled" && e.settlement) statusPublisher.publish(e.settlement);
      })
    : null;
  settler.start();
  poller.start();
  sweeper?.start();
  logger.info(
    { mode: o.mode, queue: perPod?.name ?? o.queueUrl, statusTopic: o.statusTopicArn !== null },
    "queue trigger started",
  );
  if (o.mode === "given") {
    logger.info("given-queue mode: replicas sharing this queue each receive only some events (competing consumers)");
  }

  let stopping: Promise<void> | null = null;
  return {
    status: () => ({
      mode: o.mode,
      url: perPod ? perPod.url : o.queueUrl,
      pendingEvents: settler.pendingHashes().length,
      receiveFailures: poller.consecutiveFailures,
    }),
    ready: () => (perPod ? perPod.ready() : Promise.resolve()),
    health: healthPublisher,
    stop() {
      stopping ??= (async () => {
        perPod?.halt();
        await poller.stop();
        settler.stop();
        unsubscribeSettled?.();
        await sweeper?.stop();
        statusPublisher?.stop();
        await statusPublisher?.flush(5_000);
        await healthPublisher?.stop(5_000);
        await perPod?.stop();
        if (!deps.clients) clients.destroy();
        logger.info("queue trigger stopped");
      })();
      return stopping;
    },
  };
}
