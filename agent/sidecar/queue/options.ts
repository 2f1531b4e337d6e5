/**
 * Options of the SNS/SQS trigger: the contract fields `sfu-agent run` passes
 * plus optional tunables, merged over
 * {@link QUEUE_DEFAULTS} and checked once, with an error naming the option.
 */
import { AgentError } from "../../shared/errors.ts";
import { MAX_QUEUE_NAME } from "./queue-name.ts";

/** Options of `startQueueTrigger`. The tunables are optional; see {@link QUEUE_DEFAULTS}. */
export interface QueueTriggerOptions {
  /** SNS topic: per-pod queue mode. Exactly one of topicArn / queueUrl. */
  topicArn?: string | null;
  /** One given queue (every replica polling it competes: each event reaches one of them). */
  queueUrl?: string | null;
  podName: string;
  /** Name prefix of per-pod queues; also what the orphan sweeper lists. */
  queuePrefix: string;
  region?: string | null;
  endpointUrl?: string | null;
  /** SNS topic a status event is published to per settlement. */
  statusTopicArn?: string | null;
  /** How long a reload event waits for the file swap and the SFU's reply. */
  propagationTimeoutMs: number;
  /** Long-poll wait, 0-20 s. */
  waitTimeSeconds?: number;
  /** Visibility timeout of received messages, seconds; held messages are extended every half of it. */
  visibilityTimeoutSeconds?: number;
  /** Heartbeat TagQueue interval of the per-pod queue. */
  heartbeatIntervalMs?: number;
  /** Heartbeat age after which a queue is an orphan; at least 2 heartbeat intervals. */
  staleAfterMs?: number;
  /** Mean interval of this agent's orphan sweeps, jittered +-50%. */
  sweepIntervalMs?: number;
  /** Most queues one sweep inspects. */
  sweepMaxChecks?: number;
  /** Run the orphan sweeper (per-pod mode only). */
  sweep?: boolean;
  /** Retention of the per-pod queue, seconds (see {@link QUEUE_DEFAULTS}). */
  messageRetentionSeconds?: number;
  /** First back-off after a failed SQS call (`full` jitter). */
  backoffBaseMs?: number;
  /** Longest back-off. */
  backoffMaxMs?: number;
}

/**
 * Defaults of the optional {@link QueueTriggerOptions}: the longest long poll
 * SQS allows (20 s); a 60 s visibility timeout; a heartbeat every 15 min, an
 * orphan after 45 min without one (3 missed heartbeats); a sweep every
 * 15 min inspecting at most 10 queues; back-off 1 s doubling to 30 s. The
 * per-pod queue's retention, not listed, is max(3600 s, 2 x the propagation
 * timeout).
 */
export const QUEUE_DEFAULTS = {
  waitTimeSeconds: 20,
  visibilityTimeoutSeconds: 60,
  heartbeatIntervalMs: 15 * 60_000,
  staleAfterMs: 45 * 60_000,
  sweepIntervalMs: 15 * 60_000,
  sweepMaxChecks: 10,
  sweep: true,
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
} as const;

/** Options after defaults, checked. */
export interface ResolvedQueueOptions {
  mode: "per-pod" | "given";
  topicArn: string | null;
  queueUrl: string | null;
  podName: string;
  queuePrefix: string;
  region: string | null;
  endpointUrl: string | null;
  statusTopicArn: string | null;
  propagationTimeoutMs: number;
  waitTimeSeconds: number;
  visibilityTimeoutSeconds: number;
  heartbeatIntervalMs: number;
  staleAfterMs: number;
  sweepIntervalMs: number;
  sweepMaxChecks: number;
  sweep: boolean;
  messageRetentionSeconds: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Standard (non-FIFO) SNS topic ARN: FIFO topics cannot deliver to the standard per-pod queues. */
export const TOPIC_ARN_PATTERN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/;

/** Returns an error message when `arn` is not a standard SNS topic ARN, else null. */
export function checkTopicArn(arn: string): string | null {
  if (TOPIC_ARN_PATTERN.test(arn)) return null;
  if (/\.fifo$/.test(arn)) return `${arn}: FIFO topics cannot fan out to standard per-pod queues; use a standard topic`;
  return `${arn}: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)`;
}

/** Merges `options` over {@link QUEUE_DEFAULTS} and checks them; throws an AgentError `QUEUE_OPTIONS` naming the problem. */
export function resolveQueueOptions(options: QueueTriggerOptions): ResolvedQueueOptions {
  const errors: string[] = [];
  const topicArn = options.topicArn || null;
  const queueUrl = options.queueUrl || null;
  if ((topicArn === null) === (queueUrl === null))
    errors.push("give exactly one of topicArn (per-pod) or queueUrl (given)");
  if (topicArn !== null) {
    const e = checkTopicArn(topicArn);
    if (e) errors.push(`topicArn: ${e}`);
  }
  if (queueUrl !== null && !/^https?:\/\/[^/]+\/.+/.test(queueUrl))
    errors.push(`queueUrl: ${queueUrl}: not a queue URL`);
  const statusTopicArn = options.statusTopicArn || null;
  if (statusTopicArn !== null) {
    const e = checkTopicArn(statusTopicArn);
    if (e) errors.push(`statusTopicArn: ${e}`);
  }
  if (!options.podName) errors.push("podName: must not be empty");
  if (!/^[A-Za-z0-9_-]{1,60}$/.test(options.queuePrefix)) {
    errors.push(
      `queuePrefix: ${JSON.stringify(options.queuePrefix)}: 1-60 characters from A-Za-z0-9-_ (queue names are at most ${MAX_QUEUE_NAME})`,
    );
  }
  const o = { ...QUEUE_DEFAULTS, ...definedOnly(options) };
  const int = (name: string, v: number, min: number, max: number) => {
    if (!(Number.isInteger(v) && v >= min && v <= max))
      errors.push(`${name}: must be an integer ${min}..${max}, got ${v}`);
  };
  int("propagationTimeoutMs", options.propagationTimeoutMs, 1, 7 * 24 * 3_600_000);
  int("waitTimeSeconds", o.waitTimeSeconds, 0, 20);
  int("visibilityTimeoutSeconds", o.visibilityTimeoutSeconds, 2, 43_200);
  int("heartbeatIntervalMs", o.heartbeatIntervalMs, 100, 24 * 3_600_000);
  int("staleAfterMs", o.staleAfterMs, 200, 7 * 24 * 3_600_000);
  int("sweepIntervalMs", o.sweepIntervalMs, 100, 24 * 3_600_000);
  int("sweepMaxChecks", o.sweepMaxChecks, 1, 1000);
  int("backoffBaseMs", o.backoffBaseMs, 1, 3_600_000);
  int("backoffMaxMs", o.backoffMaxMs, o.backoffBaseMs, 3_600_000);
  if (o.staleAfterMs < 2 * o.heartbeatIntervalMs) {
    errors.push(`staleAfterMs (${o.staleAfterMs}) must be at least 2 x heartbeatIntervalMs (${o.heartbeatIntervalMs})`);
  }
  const retention =
    options.messageRetentionSeconds ??
    Math.min(1_209_600, Math.max(3_600, Math.ceil((2 * options.propagationTimeoutMs) / 1000)));
  int("messageRetentionSeconds", retention, 60, 1_209_600);
  if (errors.length > 0) throw new AgentError("QUEUE_OPTIONS", `invalid queue options: ${errors.join("; ")}`);
  return {
    mode: topicArn !== null ? "per-pod" : "given",
    topicArn,
    queueUrl,
    podName: options.podName,
    queuePrefix: options.queuePrefix,
    region: options.region || null,
    endpointUrl: options.endpointUrl || null,
    statusTopicArn,
    propagationTimeoutMs: options.propagationTimeoutMs,
    waitTimeSeconds: o.waitTimeSeconds,
    visibilityTimeoutSeconds: o.visibilityTimeoutSeconds,
    heartbeatIntervalMs: o.heartbeatIntervalMs,
    staleAfterMs: o.staleAfterMs,
    sweepIntervalMs: o.sweepIntervalMs,
    sweepMaxChecks: o.sweepMaxChecks,
    sweep: o.sweep,
    messageRetentionSeconds: retention,
    backoffBaseMs: o.backoffBaseMs,
    backoffMaxMs: o.backoffMaxMs,
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}
