/**
 * Prometheus metrics of the SNS/SQS trigger, registered in the agent's
 * Registry (prefix `sfu_agent_`). Labels are small closed sets: outcomes,
 * message results and AWS action names; never a hash, pod or message body.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Result label of `sfu_agent_queue_messages_total`. */
/**
 * What became of a received message: `legacy` is the article-style
 * `{"event":"configReload","commit"}` message, taken as "check the mounted
 * file now" (see legacy-event.ts).
 */
export type MessageResult = "accepted" | "joined" | "duplicate" | "malformed" | "legacy";

/** The metric objects the queue module updates. */
export interface QueueMetrics {
  /** `sfu_agent_settlements_total{outcome}`: reload events settled, by outcome. */
  settlements: Counter<"outcome">;
  /** `sfu_agent_settlement_duration_seconds{outcome}`: receive-to-settle time. */
  settlementDuration: Histogram<"outcome">;
  /** `sfu_agent_propagation_seconds`: a reload event's publication (`issuedAt`) to the mounted file having its hash. */
  propagation: Histogram;
  /** `sfu_agent_event_to_applied_seconds`: a reload event's publication to the SFU's ack of its hash. */
  eventToApplied: Histogram;
  /** `sfu_agent_queue_messages_total{result}`: messages received, by what became of them. */
  messages: Counter<"result">;
  /** `sfu_agent_sqs_errors_total{operation}`: failed SQS/SNS calls, by API action. */
  sqsErrors: Counter<"operation">;
  /** `sfu_agent_queue_pending_settlements`: reload events waiting for the file, the SFU or the timeout. */
  pending: Gauge;
  /** `sfu_agent_queue_orphans_deleted_total`: queues of dead pods removed by this agent's sweeper. */
  orphansDeleted: Counter;
  /** `sfu_agent_status_events_total{result}`: status events published (`published`), lost (`failed`) or dropped in a burst (`dropped`). */
  statusEvents: Counter<"result">;
  /** `sfu_agent_health_events_total{result}`: call-health events published during a rollout (`published`) or lost (`failed`). */
  healthEvents: Counter<"result">;
}

/** Buckets of the propagation histograms: seconds with the kubelet nudge, 60-90 s on the periodic sync. */
const PROPAGATION_BUCKETS = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 45, 60, 75, 90, 120, 180, 300, 600];

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Creates (or reuses, when already registered) the queue metrics in `registry`. */
export function createQueueMetrics(registry: Registry): QueueMetrics {
  const registers = [registry];
  return {
    settlements: once(
      registry,
      "sfu_agent_settlements_total",
      () =>
        new Counter({
          name: "sfu_agent_settlements_total",
          help: "Reload events settled, by outcome (applied|rejected|invalid|timeout|superseded)",
          labelNames: ["outcome"],
          registers,
        }),
    ),
    settlementDuration: once(
      registry,
      "sfu_agent_settlement_duration_seconds",
      () =>
        new Histogram({
          name: "sfu_agent_settlement_duration_seconds",
          help: "Time from receiving a reload event to settling it, by outcome",
          labelNames: ["outcome"],
          buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30, 60, 120, 300, 600],
          registers,
        }),
    ),
    propagation: once(
      registry,
      "sfu_agent_propagation_seconds",
      () =>
        new Histogram({
          name: "sfu_agent_propagation_seconds",
          help: "Time from a reload event's publication (issuedAt) to the mounted file having its hash",
          buckets: PROPAGATION_BUCKETS,
          registers,
        }),
    ),
    eventToApplied: once(
      registry,
      "sfu_agent_event_to_applied_seconds",
      () =>
        new Histogram({
          name: "sfu_agent_event_to_applied_seconds",
          help: "Time from a reload event's publication (issuedAt) to the SFU's ack of its hash",
          buckets: PROPAGATION_BUCKETS,
          registers,
        }),
    ),
    messages: once(
      registry,
      "sfu_agent_queue_messages_total",
      () =>
        new Counter({
          name: "sfu_agent_queue_messages_total",
          help: "SQS messages received, by result (accepted|joined|duplicate|malformed|legacy)",
          labelNames: ["result"],
          registers,
        }),
    ),
    sqsErrors: once(
      registry,
      "sfu_agent_sqs_errors_total",
      () =>
        new Counter({
          name: "sfu_agent_sqs_errors_total",
          help: "Failed SQS/SNS API calls, by action",
          labelNames: ["operation"],
          registers,
        }),
    ),
    pending: once(
      registry,
      "sfu_agent_queue_pending_settlements",
      () =>
        new Gauge({
          name: "sfu_agent_queue_pending_settlements",
          help: "Reload events waiting for the file swap, the SFU's reply or the propagation timeout",
          registers,
        }),
    ),
    orphansDeleted: once(
      registry,
      "sfu_agent_queue_orphans_deleted_total",
      () =>
        new Counter({
          name: "sfu_agent_queue_orphans_deleted_total",
          help: "Per-pod queues of dead pods deleted by this agent's sweeper",
          registers,
        }),
    ),
    statusEvents: once(
      registry,
      "sfu_agent_status_events_total",
      () =>
        new Counter({
          name: "sfu_agent_status_events_total",
          help: "Status events sent to --status-topic-arn, by result (published|failed|dropped)",
          labelNames: ["result"],
          registers,
        }),
    ),
    healthEvents: once(
      registry,
      "sfu_agent_health_events_total",
      () =>
        new Counter({
          name: "sfu_agent_health_events_total",
          help: "Call-health events sent to --status-topic-arn while a rollout runs, by result (published|failed)",
          labelNames: ["result"],
          registers,
        }),
    ),
  };
}
