/**
 * Removes the per-pod queues of pods that died without cleaning up (kill -9,
 * node loss), each agent sweeping the stretch of the queue ring that follows
 * its own queue. The queues carry the reload events of PROTOCOL.md
 * [section 11](../../protocol/PROTOCOL.md#11-sns-events).
 */
import { type SNSClient, UnsubscribeCommand } from "@aws-sdk/client-sns";
import {
  DeleteQueueCommand,
  ListQueuesCommand,
  type ListQueuesCommandOutput,
  ListQueueTagsCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Logger } from "pino";
import { jittered } from "../../../protocol/backoff.ts";
import { describeError, isNotFound, isQueueMissing } from "../../aws/errors.ts";
import type { TimerHandle, Timers } from "../../shared/timers.ts";
import type { QueueMetrics } from "./metrics.ts";
import { type PerPodDeps, TAG_HEARTBEAT, TAG_SUBSCRIPTION } from "./per-pod-queue.ts";
import { queueNameFromUrl } from "./queue-name.ts";

/** Tunables of {@link OrphanSweeper}. */
export interface SweeperOptions {
  /** Mean interval between this agent's sweeps (each is jittered by +-50%). */
  intervalMs: number;
  /** A heartbeat older than this marks a queue as orphaned. Must exceed the heartbeat interval several times. */
  staleAfterMs: number;
  /** Most queues whose tags one sweep reads (bounds a sweep's cost). */
  maxChecks: number;
}

/** What one sweep did. */
export interface SweepResult {
  listed: number;
  checked: number;
  deleted: string[];
}

/**
 * Sweeps orphaned per-pod queues, in the spirit of the SQS temporary queue
 * client's idle-queue sweeper.
 *
 * Every agent sweeps on its own jittered timer (interval x U[0.5, 1.5]). A
 * sweep lists the queues with the prefix (one ListQueues per 1,000 queues),
 * sorts them by name into a ring and walks forward from its own queue: each
 * successor's tags are read (ListQueueTags); a queue whose heartbeat tag is
 * older than `staleAfterMs` is unsubscribed from SNS (the subscription ARN is
 * in a tag) and deleted; the walk stops at the first live managed queue (or
 * after `maxChecks`). Queues without the heartbeat tag are not ours and are
 * never touched.
 *
 * So every dead queue lies between a live agent and that agent's next live
 * successor, and is removed by the first sweep of that agent after it turned
 * stale: an orphan is gone within `staleAfter + 1.5 x interval` of its
 * owner's last heartbeat (for runs of up to `maxChecks` consecutive dead
 * queues), while each agent reads about one queue's tags per sweep whatever
 * the fleet size: the fleet's tagging call rate grows linearly with the
 * number of pods, not quadratically.
 */
export class OrphanSweeper {
  readonly #sqs: SQSClient;
  readonly #sns: SNSClient;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #prefix: string;
  readonly #ownName: string;
  readonly #options: SweeperOptions;
  #timer: TimerHandle = null;
  #running = false;
  #current: Promise<unknown> | null = null;

  constructor(
    deps: PerPodDeps & {
      random?: () => number;
      prefix: string;
      ownName: string;
      options: SweeperOptions;
    },
  ) {
    const o = deps.options;
    if (!(o.intervalMs > 0 && o.staleAfterMs > 0 && Number.isInteger(o.maxChecks) && o.maxChecks >= 1)) {
      throw new RangeError("sweeper needs intervalMs > 0, staleAfterMs > 0 and integer maxChecks >= 1");
    }
    this.#sqs = deps.sqs;
    this.#sns = deps.sns;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#timers = deps.timers;
    this.#random = deps.random ?? Math.random;
    this.#prefix = deps.prefix;
    this.#ownName = deps.ownName;
    this.#options = o;
  }

  /** Schedules sweeps. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  /** Cancels future sweeps and waits for one in progress. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#timers.clearTimeout(this.#timer);
    await this.#current?.catch(() => {});
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.#timers.setTimeout(
      () => {
        this.#current = this.sweepOnce()
          .catch((err) => this.#logger.warn({ err: describeError(err) }, "orphan sweep failed"))
          .finally(() => {
            this.#current = null;
            this.#schedule();
          });
      },
      jittered(this.#options.intervalMs, 0.5, this.#random),
    );
  }

  /** One sweep now. Throws only when listing fails (counted); per-queue failures are logged and skipped. */
  async sweepOnce(): Promise<SweepResult> {
    const urls: string[] = [];
    let token: string | undefined;
    do {
      let res: ListQueuesCommandOutput;
      try {
        res = await this.#sqs.send(
          new ListQueuesCommand({ QueueNamePrefix: this.#prefix, MaxResults: 1000, NextToken: token }),
        );
      } catch (err) {
        this.#metrics.sqsErrors.inc({ operation: "ListQueues" });
        throw err;
      }
      urls.push(...(res.QueueUrls ?? []));
      token = res.NextToken;
    } while (token);
    const entries = urls
      .map((url) => ({ url, name: queueNameFromUrl(url) }))
      .filter((e) => e.name.startsWith(this.#prefix) && e.name !== this.#ownName)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const ring = [...entries.filter((e) => e.name > this.#ownName), ...entries.filter((e) => e.name < this.#ownName)];
    const result: SweepResult = { listed: urls.length, checked: 0, deleted: [] };
    const now = this.#timers.now();
    for (const entry of ring.slice(0, this.#options.maxChecks)) {
      result.checked++;
      let tags: Record<string, string>;
      try {
        tags = (await this.#sqs.send(new ListQueueTagsCommand({ QueueUrl: entry.url }))).Tags ?? {};
      } catch (err) {
        if (isQueueMissing(err)) continue;
        this.#metrics.sqsErrors.inc({ operation: "ListQueueTags" });
        this.#logger.warn({ err: describeError(err), queue: entry.name }, "ListQueueTags failed; sweep cut short");
        break;
      }
      const beat = tags[TAG_HEARTBEAT];
      const seconds = beat === undefined ? Number.NaN : Number(beat);
      if (!Number.isFinite(seconds)) continue; // not a managed queue: never touched
      if (now - seconds * 1000 <= this.#options.staleAfterMs) break; // the next live agent: the rest is its job
      if (await this.#reap(entry, tags, now - seconds * 1000)) result.deleted.push(entry.name);
    }
    return result;
  }

  async #reap(entry: { url: string; name: string }, tags: Record<string, string>, ageMs: number): Promise<boolean> {
    const sub = tags[TAG_SUBSCRIPTION];
    if (sub) {
      try {
        await this.#sns.send(new UnsubscribeCommand({ SubscriptionArn: sub }));
      } catch (err) {
        if (!isNotFound(err)) {
          this.#metrics.sqsErrors.inc({ operation: "Unsubscribe" });
          this.#logger.warn({ err: describeError(err), queue: entry.name }, "Unsubscribe of an orphan failed");
          return false;
        }
      }
    }
    try {
      await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: entry.url }));
    } catch (err) {
      if (isQueueMissing(err)) return false;
      this.#metrics.sqsErrors.inc({ operation: "DeleteQueue" });
      this.#logger.warn({ err: describeError(err), queue: entry.name }, "DeleteQueue of an orphan failed");
      return false;
    }
    this.#metrics.orphansDeleted.inc();
    this.#logger.info({ queue: entry.name, heartbeatAgeS: Math.round(ageMs / 1000) }, "orphaned per-pod queue deleted");
    return true;
  }
}
