/**
 * The rollout driver's event source: long-polls the status queue and turns its
 * messages (stage reports and call-health reports) into {@link DriverEvent}s.
 * PROTOCOL.md
 * [section 19](../../protocol/PROTOCOL.md#19-progressive-rollout-optional).
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { backoffDelay } from "../../protocol/backoff.ts";
import { healthCountersRefusal } from "../../protocol/health-checks.ts";
import { parseHealthEvent, parseStatusEvent } from "../../protocol/messages.ts";
import { describeError } from "../aws/errors.ts";
import { sleep, type Timers } from "../shared/timers.ts";
import type { DriverEvent } from "./driver.ts";
import { STATUS_QUEUE_BACKOFF } from "./status-collector.ts";

/** Counters of the source, for the summary and the benchmark. */
export interface StatusQueueCounters {
  receives: number;
  deletes: number;
  messages: number;
  dropped: number;
  /** Reports of another rollout, left in the queue. */
  left: number;
  receiveErrors: number;
}

/** Options of {@link StatusQueueSource}. */
export interface StatusQueueSourceOptions {
  sqs: SQSClient;
  queueUrl: string;
  timers: Timers;
  /** Epoch ms: reports stamped earlier belong to an older run (allow for clock skew). */
  notBefore: number;
  /** This rollout's id and candidate hash: recent reports of other rollouts are left in the queue. */
  rolloutId: string;
  hash: string;
  /** Seconds a message left in the queue stays invisible (default 5). */
  visibilityTimeoutSeconds?: number;
  /** Long-poll cap per call, seconds (default 20). */
  waitTimeSeconds?: number;
  onError?: (message: string) => void;
  signal?: AbortSignal;
}

/**
 * Reads the status queue for the driver: `sfu-config.status` stage reports and
 * `sfu-config.health` call-health reports, raw or in an SNS envelope.
 *
 * Messages are deleted once read, except the recent reports of ANOTHER
 * rollout (a stage report with another rollout id, a health report about
 * another candidate hash): while a newer rollout replaces an older one both
 * drivers may read the queue for a moment, and each must leave the other's
 * reports (they come back after a short visibility timeout). Malformed
 * bodies, health reports whose counters cannot be true together
 * (protocol/health-checks.ts), reports older than `notBefore` (a previous
 * run) and the driver's own `halted` event are deleted and dropped. AWS errors never throw: they
 * are reported to `onError` and retried with back-off within the caller's
 * wait.
 */
export class StatusQueueSource {
  readonly counters: StatusQueueCounters = {
    receives: 0,
    deletes: 0,
    messages: 0,
    dropped: 0,
    left: 0,
    receiveErrors: 0,
  };
  readonly #o: StatusQueueSourceOptions;
  #failures = 0;

  constructor(options: StatusQueueSourceOptions) {
    this.#o = options;
  }

  /** Returns the reports that arrived, waiting at most until epoch ms `until`. */
  async next(until: number): Promise<DriverEvent[]> {
    const { sqs, queueUrl, timers, signal } = this.#o;
    const remaining = until - timers.now();
    if (remaining <= 0 || signal?.aborted) return [];
    // SQS waits in whole seconds: under one, an immediate receive, then a
    // sleep for the rest when it was empty (no spinning on empty receives).
    const short = remaining < 1_000;
    let messages: Array<{ ReceiptHandle?: string; Body?: string }>;
    try {
      this.counters.receives++;
      const res = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: short
            ? 0
            : Math.max(1, Math.min(this.#o.waitTimeSeconds ?? 20, Math.floor(remaining / 1000))),
          VisibilityTimeout: this.#o.visibilityTimeoutSeconds ?? 5,
        }),
        signal ? { abortSignal: signal } : {},
      );
      messages = res.Messages ?? [];
      this.#failures = 0;
    } catch (err) {
      if (signal?.aborted) return [];
      this.counters.receiveErrors++;
      this.#o.onError?.(`ReceiveMessage failed: ${describeError(err)}`);
      const delay = backoffDelay(this.#failures++, STATUS_QUEUE_BACKOFF);
      await sleep(timers, Math.min(delay, Math.max(0, until - timers.now())), signal);
      return [];
    }
    const out: DriverEvent[] = [];
    for (const m of messages) {
      this.counters.messages++;
      const event = this.#parse(m.Body ?? "");
      if (event === "other") {
        this.counters.left++;
        continue;
      }
      if (event) out.push(event);
      else this.counters.dropped++;
      if (m.ReceiptHandle) await this.#delete(m.ReceiptHandle);
    }
    // Sleep only when the queue was empty: a receive of junk (dropped, no event) must not cost the rest of
    // the interval, or a backlog of junk holds the real reports back past the step's timeout.
    if (short && messages.length === 0) await sleep(timers, Math.max(0, until - timers.now()), signal);
    return out;
  }

  /** The event; null to drop; "other" for a recent report of another rollout (left in the queue). */
  #parse(body: string): DriverEvent | null | "other" {
    const status = parseStatusEvent(body);
    if (status.ok) {
      const e = status.event as typeof status.event & {
        stage?: unknown;
        rollout?: { id?: unknown; hash?: unknown } | null;
      };
      const at = Date.parse(e.at);
      if (!Number.isFinite(at) || at < this.#o.notBefore || (e.outcome as string) === "halted") return null;
      const rolloutId = typeof e.rollout?.id === "string" ? e.rollout.id : null;
      if (rolloutId !== null ? rolloutId !== this.#o.rolloutId : e.hash !== this.#o.hash) return "other";
      return {
        kind: "status",
        pod: e.pod,
        hash: e.hash,
        stage: typeof e.stage === "string" ? e.stage : null,
        rolloutId,
        outcome: e.outcome,
        error: e.error ? { code: e.error.code, message: e.error.message } : null,
        at,
      };
    }
    const health = parseHealthEvent(body);
    if (health.ok) {
      const e = health.event;
      const at = Date.parse(e.at);
      if (!Number.isFinite(at) || at < this.#o.notBefore) return null;
      if (e.hash !== this.#o.hash) return "other";
      // Counters that cannot be true together are never judged on (protocol/health-checks.ts).
      if (healthCountersRefusal(e.health) !== null) return null;
      return {
        kind: "health",
        pod: e.pod,
        stage: e.stage,
        health: {
          hash: e.health.hash,
          joins: e.health.joins,
          joinFailures: e.health.joinFailures,
          iceConnected: e.health.iceConnected,
          iceFailures: e.health.iceFailures,
        },
        at,
      };
    }
    return null;
  }

  async #delete(receiptHandle: string): Promise<void> {
    try {
      this.counters.deletes++;
      await this.#o.sqs.send(new DeleteMessageCommand({ QueueUrl: this.#o.queueUrl, ReceiptHandle: receiptHandle }));
    } catch (err) {
      this.#o.onError?.(`DeleteMessage failed: ${describeError(err)}`);
    }
  }
}
