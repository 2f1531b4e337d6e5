/**
 * The SQS long-poll loop: receives the reload events of PROTOCOL.md
 * [section 11](../../protocol/PROTOCOL.md#11-sns-events), hands each to a
 * handler, and deletes or extends them for the settlement.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Logger } from "pino";
import { type BackoffOptions, backoffDelay } from "../../../protocol/backoff.ts";
import { describeError, isAbort, isQueueMissing } from "../../aws/errors.ts";
import { sleep, type Timers } from "../../shared/timers.ts";
import type { QueueMetrics } from "./metrics.ts";
import type { MessageActions, ReceivedMessage } from "./settlement.ts";

/** Most DeleteMessage / ChangeMessageVisibility calls in flight before receiving pauses. */
export const MAX_CALLS_IN_FLIGHT = 32;
/** Most receipts per DeleteMessageBatch (the SQS maximum). */
const DELETE_BATCH = 10;

/** Tunables of {@link QueuePoller}. */
export interface PollerOptions {
  /** Long-poll wait per ReceiveMessage, 0-20 s. */
  waitTimeSeconds: number;
  /** Visibility timeout requested on receive, seconds. */
  visibilityTimeoutSeconds: number;
  /** Back-off after failed calls (`full` jitter unless it says otherwise). */
  backoff: BackoffOptions;
}

/**
 * Long-polls one queue. Receives up to 10 messages per call (long poll,
 * `waitTimeSeconds`), hands each to a handler, and implements the
 * {@link MessageActions} settlement uses (delete, extend visibility).
 *
 * Failures never end the loop: every failed call is counted in
 * `sfu_agent_sqs_errors_total{operation}`, logged, and retried after an
 * exponential back-off with full jitter. When the queue no longer exists
 * (deleted by a sweeper after a long outage, or an emulator restart) the
 * `onQueueMissing` hook re-provisions it. Nothing here touches /readyz: the
 * agent stays ready on its file watch whatever SQS does.
 *
 * A burst costs bounded memory: while more than {@link MAX_CALLS_IN_FLIGHT}
 * delete and visibility calls are in flight, no more messages are received,
 * so settled messages are deleted before more arrive. Deletes asked for in
 * the same turn (a received batch settling at once) go out together, up to
 * 10 per `DeleteMessageBatch` call (authorised by `sqs:DeleteMessage`), which
 * cuts a burst's CPU per message.
 */
export class QueuePoller implements MessageActions {
  readonly #sqs: SQSClient;
  readonly #queueUrl: () => string | null;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #onMessage: (m: ReceivedMessage) => void;
  readonly #onQueueMissing: (() => Promise<void>) | null;
  readonly #options: PollerOptions;
  #abort: AbortController | null = null;
  #loop: Promise<void> | null = null;
  #failures = 0;
  /** Delete and visibility calls in flight. */
  readonly #calls = new Set<Promise<void>>();
  /** Deletes asked for this turn, sent together at its end. */
  #deletes: { handle: string; done: () => void }[] = [];

  constructor(deps: {
    sqs: SQSClient;
    /** The queue URL to poll (may change after re-provisioning); null while unknown. */
    queueUrl: () => string | null;
    logger: Logger;
    metrics: QueueMetrics;
    timers: Timers;
    random?: () => number;
    onMessage: (m: ReceivedMessage) => void;
    onQueueMissing?: () => Promise<void>;
    options: PollerOptions;
  }) {
    const o = deps.options;
    if (!(Number.isInteger(o.waitTimeSeconds) && o.waitTimeSeconds >= 0 && o.waitTimeSeconds <= 20)) {
      throw new RangeError(`waitTimeSeconds must be an integer 0..20, got ${o.waitTimeSeconds}`);
    }
    if (!(o.backoff.baseMs > 0 && o.backoff.maxMs >= o.backoff.baseMs)) {
      throw new RangeError(`backoff needs 0 < baseMs <= maxMs, got ${o.backoff.baseMs}/${o.backoff.maxMs}`);
    }
    this.#sqs = deps.sqs;
    this.#queueUrl = deps.queueUrl;
    this.#logger = deps.logger;
    this.#metrics = deps.metrics;
    this.#timers = deps.timers;
    this.#random = deps.random ?? Math.random;
    this.#onMessage = deps.onMessage;
    this.#onQueueMissing = deps.onQueueMissing ?? null;
    this.#options = o;
  }

  /** Consecutive failed receive calls (0 when the last one succeeded). */
  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Starts the loop. Idempotent. */
  start(): void {
    if (this.#loop) return;
    this.#abort = new AbortController();
    this.#loop = this.#run(this.#abort.signal);
  }

  /** Aborts the in-flight long poll and any back-off sleep; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    this.#loop = null;
    this.#abort = null;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let lost = false;
    const stopped = aborted(signal);
    while (!signal.aborted) {
      const url = this.#queueUrl();
      if (url === null || lost) {
        if (this.#onQueueMissing) {
          try {
            await this.#onQueueMissing();
            lost = false;
            continue;
          } catch (err) {
            if (signal.aborted) break;
            await this.#backOff(signal, err, "provisioning the queue failed");
            continue;
          }
        }
        if (url === null) {
          await this.#backOff(signal, null, "no queue URL");
          continue;
        }
      }
      while (this.#calls.size > MAX_CALLS_IN_FLIGHT && !signal.aborted) {
        await Promise.race([...this.#calls, stopped]);
      }
      if (signal.aborted) break;
      try {
        const res = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: this.#options.waitTimeSeconds,
            VisibilityTimeout: this.#options.visibilityTimeoutSeconds,
          }),
          { abortSignal: signal },
        );
        if (this.#failures > 0) this.#logger.info({ failures: this.#failures }, "SQS receive recovered");
        this.#failures = 0;
        for (const m of res.Messages ?? []) {
          if (!m.ReceiptHandle) continue;
          this.#onMessage({
            messageId: m.MessageId ?? m.ReceiptHandle,
            receiptHandle: m.ReceiptHandle,
            body: m.Body ?? "",
          });
        }
      } catch (err) {
        if (signal.aborted || isAbort(err)) break;
        this.#metrics.sqsErrors.inc({ operation: "ReceiveMessage" });
        if (isQueueMissing(err)) lost = true;
        await this.#backOff(signal, err, "SQS receive failed");
      }
    }
  }

  async #backOff(signal: AbortSignal, err: unknown, what: string): Promise<void> {
    const attempt = this.#failures++;
    const delay = backoffDelay(attempt, { jitter: "full", ...this.#options.backoff }, this.#random);
    // Log the first failure and then every 10th, so an outage does not flood the log.
    const quiet = isAbort(err); // shutting down
    const level = quiet ? "debug" : attempt === 0 || attempt % 10 === 0 ? "warn" : "debug";
    this.#logger[level]({ err: err ? describeError(err) : null, attempt, delayMs: delay }, `${what}; backing off`);
    await sleep(this.#timers, delay, signal);
  }

  /** Runs one delete or visibility call, tracked in {@link MAX_CALLS_IN_FLIGHT}'s count. */
  #track(call: () => Promise<void>): Promise<void> {
    const p: Promise<void> = call().finally(() => this.#calls.delete(p));
    this.#calls.add(p);
    return p;
  }

  /**
   * Deletes messages (with the other deletes of this turn, 10 a call);
   * failures are counted and logged (the message then reappears and is
   * deduplicated). Resolves when its receipts' calls ended.
   */
  async delete(receiptHandles: string[]): Promise<void> {
    if (this.#queueUrl() === null || receiptHandles.length === 0) return;
    const waits = receiptHandles.map((handle) => new Promise<void>((done) => this.#deletes.push({ handle, done })));
    if (this.#deletes.length === waits.length) queueMicrotask(() => this.#flushDeletes());
    await Promise.all(waits);
  }

  #flushDeletes(): void {
    const all = this.#deletes;
    this.#deletes = [];
    const url = this.#queueUrl();
    for (let i = 0; i < all.length; i += DELETE_BATCH) {
      const batch = all.slice(i, i + DELETE_BATCH);
      const finish = () => {
        for (const b of batch) b.done();
      };
      if (url === null) {
        finish();
        continue;
      }
      void this.#track(async () => {
        try {
          const r = await this.#sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: url,
              Entries: batch.map((b, k) => ({ Id: String(k), ReceiptHandle: b.handle })),
            }),
          );
          const failed = r.Failed ?? [];
          if (failed.length > 0) {
            this.#metrics.sqsErrors.inc({ operation: "DeleteMessage" }, failed.length);
            const f = failed[0];
            this.#logger.warn(
              { failed: failed.length, of: batch.length, code: f?.Code, message: f?.Message?.slice(0, 200) },
              "SQS DeleteMessage failed",
            );
          }
        } catch (err) {
          this.#metrics.sqsErrors.inc({ operation: "DeleteMessage" }, batch.length);
          this.#logger.warn({ err: describeError(err), of: batch.length }, "SQS DeleteMessage failed");
        } finally {
          finish();
        }
      });
    }
  }

  /** Extends the visibility of held messages; failures are counted and logged. */
  async extend(receiptHandles: string[], seconds: number): Promise<void> {
    const url = this.#queueUrl();
    if (url === null) return;
    await Promise.all(
      receiptHandles.map((ReceiptHandle) =>
        this.#track(async () => {
          try {
            await this.#sqs.send(
              new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle, VisibilityTimeout: seconds }),
            );
          } catch (err) {
            this.#metrics.sqsErrors.inc({ operation: "ChangeMessageVisibility" });
            this.#logger.warn({ err: describeError(err) }, "SQS ChangeMessageVisibility failed");
          }
        }),
      ),
    );
  }
}

/** Resolves when `signal` aborts (at once when it has). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
