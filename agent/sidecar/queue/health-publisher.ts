/**
 * Publishes this pod's call health to the status topic while a progressive
 * rollout runs: `{"type":"sfu-config.health", pod, rank, hash, stage,
 * health, at}` (protocol/schemas/health-event.schema.json), at once when a
 * rollout starts running or the pod's stage changes, then every
 * `intervalMs`. The rollout driver compares these figures between the
 * cohort and the pods still on the previous config.
 *
 * `hash` is the rollout's candidate hash (the event belongs to that
 * rollout); `health` is the SFU's latest report as the status tracker holds
 * it, whose own `hash` names the config the counters are about (the
 * candidate on a canary pod, the previous config on a held one). Nothing is
 * published before the SFU's first report, nor while no rollout runs.
 *
 * Best effort like the status events: a failed publish is logged and
 * counted (`sfu_agent_health_events_total{result="failed"}`), never retried;
 * the next tick sends the newer figures. One publish in flight at most.
 * Counts only: never a config value or a credential.
 */
import { PublishCommand, type SNSClient } from "@aws-sdk/client-sns";
import type { Logger } from "pino";
import type { HealthCounters, HealthEvent } from "../../../protocol/messages-schema.ts";
import { describeError } from "../../aws/errors.ts";
import { realTimers, type TimerHandle, type Timers } from "../../shared/timers.ts";
import type { QueueMetrics } from "./metrics.ts";

/** Default interval of health events while a rollout runs (`--health-report-interval`). */
export const HEALTH_REPORT_INTERVAL_MS = 10_000;

/** What the rollout integration tells the publisher about this pod; null = no rollout. */
export interface RolloutHealthContext {
  /** Whether the rollout is running (only then are events published). */
  running: boolean;
  /** The rollout's candidate hash. */
  hash: string;
  /** This pod's cohort rank, in [0, 1). */
  rank: number;
  /** This pod's stage (`canary`, `held`, `applied`, `reverted`). */
  stage: string;
}

/** Builds one health event. */
export function healthEvent(pod: string, ctx: RolloutHealthContext, health: HealthCounters, at: Date): HealthEvent {
  return {
    type: "sfu-config.health",
    pod,
    rank: ctx.rank,
    hash: ctx.hash,
    stage: ctx.stage,
    health: {
      hash: health.hash,
      since: health.since,
      joins: health.joins,
      joinFailures: health.joinFailures,
      iceConnected: health.iceConnected,
      iceFailures: health.iceFailures,
    },
    at: at.toISOString(),
  };
}

/** Dependencies of {@link HealthPublisher}. */
export interface HealthPublisherDeps {
  sns: SNSClient;
  topicArn: string;
  pod: string;
  logger: Logger;
  /** The SFU's latest call-health report (the agent's StatusTracker). */
  health: () => HealthCounters | null;
  metrics?: QueueMetrics;
  timers?: Timers;
  /** Interval between events while a rollout runs (default {@link HEALTH_REPORT_INTERVAL_MS}). */
  intervalMs?: number;
}

/** The periodic `sfu-config.health` publisher; see the module comment. */
export class HealthPublisher {
  readonly #d: HealthPublisherDeps;
  readonly #timers: Timers;
  readonly #intervalMs: number;
  #ctx: RolloutHealthContext | null = null;
  #timer: TimerHandle | null = null;
  #inflight: Promise<void> | null = null;
  #stopped = false;
  /** Events published successfully. */
  published = 0;

  constructor(deps: HealthPublisherDeps) {
    const intervalMs = deps.intervalMs ?? HEALTH_REPORT_INTERVAL_MS;
    if (!(Number.isInteger(intervalMs) && intervalMs >= 100)) {
      throw new TypeError(`HealthPublisher: intervalMs must be an integer >= 100, got ${intervalMs}`);
    }
    this.#d = deps;
    this.#timers = deps.timers ?? realTimers;
    this.#intervalMs = intervalMs;
  }

  /**
   * The rollout context of this pod (null: no rollout). Publishing starts,
   * with one event at once, when it becomes running or its stage or hash
   * changes, and stops when it is not running any more.
   */
  setRollout(ctx: RolloutHealthContext | null): void {
    const before = this.#ctx;
    this.#ctx = ctx === null ? null : { ...ctx };
    if (this.#stopped) return;
    if (ctx === null || !ctx.running) {
      this.#cancel();
      return;
    }
    const changed = before === null || !before.running || before.stage !== ctx.stage || before.hash !== ctx.hash;
    if (changed) {
      this.#cancel();
      this.#tick();
    }
  }

  /** Stops publishing and waits (at most `timeoutMs`) for a publish in flight. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.#stopped = true;
    this.#cancel();
    const inflight = this.#inflight;
    if (inflight === null) return;
    let timer: TimerHandle | undefined;
    await Promise.race([
      inflight,
      new Promise<void>((resolve) => {
        timer = this.#timers.setTimeout(resolve, timeoutMs);
      }),
    ]);
    this.#timers.clearTimeout(timer);
  }

  #cancel(): void {
    if (this.#timer !== null) this.#timers.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #tick(): void {
    this.#timer = null;
    const ctx = this.#ctx;
    if (this.#stopped || ctx === null || !ctx.running) return;
    const health = this.#d.health();
    if (health !== null && this.#inflight === null) {
      const event = healthEvent(this.#d.pod, ctx, health, new Date(this.#timers.now()));
      const p = this.#send(event).finally(() => {
        if (this.#inflight === p) this.#inflight = null;
      });
      this.#inflight = p;
    }
    this.#timer = this.#timers.setTimeout(() => this.#tick(), this.#intervalMs);
  }

  async #send(event: HealthEvent): Promise<void> {
    try {
      await this.#d.sns.send(new PublishCommand({ TopicArn: this.#d.topicArn, Message: JSON.stringify(event) }));
      this.published++;
      this.#d.metrics?.healthEvents.inc({ result: "published" });
    } catch (err) {
      this.#d.metrics?.healthEvents.inc({ result: "failed" });
      this.#d.metrics?.sqsErrors.inc({ operation: "Publish" });
      this.#d.logger.warn({ err: describeError(err), hash: event.hash }, "health event publish failed");
    }
  }
}
