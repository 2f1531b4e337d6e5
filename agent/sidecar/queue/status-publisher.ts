/**
 * Publishes one `sfu-config.status` event (PROTOCOL.md
 * [section 11.2](../../protocol/PROTOCOL.md#11-sns-events)) per settlement to
 * `--status-topic-arn`, best effort except for rollout stage reports.
 */
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { Logger } from "pino";
import { type BackoffOptions, backoffDelay } from "../../../protocol/backoff.ts";
import type { StatusEvent } from "../../../protocol/messages-schema.ts";
import { describeError } from "../../aws/errors.ts";
import type { Settlement } from "../snapshot-store.ts";
import type { QueueMetrics } from "./metrics.ts";

/** Builds the status event of a settlement. */
export function statusEvent(pod: string, s: Settlement): StatusEvent {
  return {
    type: "sfu-config.status",
    pod,
    revision: s.revision,
    hash: s.hash,
    version: s.version,
    outcome: s.outcome,
    error: s.error ? { code: s.error.code, message: s.error.message } : null,
    at: s.at,
    ...(s.propagationSeconds === undefined ? {} : { propagationSeconds: s.propagationSeconds }),
    ...(s.eventToAppliedSeconds === undefined ? {} : { eventToAppliedSeconds: s.eventToAppliedSeconds }),
    // Rollout stage reports (see agent/sidecar/rollout/agent-rollout.ts) carry their stage, rank and rollout.
    ...(s.stage === undefined ? {} : { stage: s.stage, rank: s.rank ?? null, rollout: s.rollout ?? null }),
  };
}

/** Most status publishes in flight at once, and most waiting behind them. */
export const MAX_PUBLISHES_IN_FLIGHT = 16;

/** Back-off of a failed stage report's re-publish: 1 s doubling to 30 s, `full` jitter. */
export const STAGE_REPORT_BACKOFF: Readonly<Required<BackoffOptions>> = {
  baseMs: 1_000,
  maxMs: 30_000,
  jitter: "full",
};

/**
 * Sends status events to one topic, for `sfu-agent notify --wait` and
 * dashboards.
 *
 * Bounded in a burst: at most {@link MAX_PUBLISHES_IN_FLIGHT} publishes run
 * at once and as many wait; past that the oldest waiting event is dropped
 * (`result="dropped"`), so the newest outcomes are the ones sent.
 *
 * Rollout stage reports (a settlement with `stage`) are the exception to
 * "best effort": the rollout driver waits for them, and an agent reports a
 * stage only when it changes, so a report lost to an SNS outage would leave
 * the driver waiting until its timeout. The newest failed stage report is
 * kept (one, bounded) and retried with back-off until it is published or a
 * newer stage report supersedes it.
 */
export class StatusPublisher {
  readonly #sns: SNSClient;
  readonly #topicArn: string;
  readonly #pod: string;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #inflight = new Set<Promise<void>>();
  readonly #waiting: Settlement[] = [];
  readonly #retryBackoff: BackoffOptions;
  /** The newest stage report, until it is published (then null). */
  #stage: Settlement | null = null;
  #stageAttempt = 0;
  #stageTimer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(deps: {
    sns: SNSClient;
    topicArn: string;
    pod: string;
    logger: Logger;
    metrics: QueueMetrics;
    /** Back-off between retries of a failed stage report (default {@link STAGE_REPORT_BACKOFF}). */
    retryBackoff?: BackoffOptions;
  }) {
    this.#retryBackoff = { ...STAGE_REPORT_BACKOFF, ...deps.retryBackoff };
    this.#sns = deps.sns;
    this.#topicArn = deps.topicArn;
    this.#pod = deps.pod;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
  }

  /** Publishes the status event of `s` in the background. */
  publish(s: Settlement): void {
    if (this.#stopped) return;
    if (s.stage !== undefined) {
      // A newer stage report supersedes one waiting for its retry.
      this.#stage = s;
      this.#stageAttempt = 0;
      if (this.#stageTimer) clearTimeout(this.#stageTimer);
      this.#stageTimer = null;
    }
    if (this.#inflight.size < MAX_PUBLISHES_IN_FLIGHT) {
      this.#start(s);
      return;
    }
    this.#waiting.push(s);
    if (this.#waiting.length > MAX_PUBLISHES_IN_FLIGHT) {
      const dropped = this.#waiting.shift() as Settlement;
      this.#metrics.statusEvents.inc({ result: "dropped" });
      this.#logger.debug({ hash: dropped.hash, outcome: dropped.outcome }, "status event dropped: too many in flight");
    }
  }

  #start(s: Settlement): void {
    const p = this.#send(s).finally(() => {
      this.#inflight.delete(p);
      const next = this.#waiting.shift();
      if (next !== undefined) this.#start(next);
    });
    this.#inflight.add(p);
  }

  async #send(s: Settlement): Promise<void> {
    try {
      await this.#sns.send(
        new PublishCommand({ TopicArn: this.#topicArn, Message: JSON.stringify(statusEvent(this.#pod, s)) }),
      );
      this.#metrics.statusEvents.inc({ result: "published" });
      if (this.#stage === s) this.#stage = null;
    } catch (err) {
      this.#metrics.statusEvents.inc({ result: "failed" });
      this.#metrics.sqsErrors.inc({ operation: "Publish" });
      const retry = this.#stage === s && !this.#stopped;
      this.#logger.warn(
        { err: describeError(err), hash: s.hash, stage: s.stage ?? null },
        retry ? "stage report publish failed (retried until published or superseded)" : "status event publish failed",
      );
      if (retry && this.#stageTimer === null) {
        this.#stageTimer = setTimeout(
          () => {
            this.#stageTimer = null;
            if (this.#stage === s && !this.#stopped) this.#start(s);
          },
          backoffDelay(this.#stageAttempt++, this.#retryBackoff),
        );
        this.#stageTimer.unref();
      }
    }
  }

  /** Stops retrying the stage report (publishes in flight finish; see {@link flush}). */
  stop(): void {
    this.#stopped = true;
    if (this.#stageTimer) clearTimeout(this.#stageTimer);
    this.#stageTimer = null;
  }

  /** Waits (at most `timeoutMs`) for publishes in flight: called on stop, so the last outcome is not lost. */
  async flush(timeoutMs = 5_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      (async () => {
        while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
      })(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
