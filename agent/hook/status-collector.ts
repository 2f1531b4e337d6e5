/**
 * Collects the `sfu-config.status` events (PROTOCOL.md
 * [section 11.2](../../protocol/PROTOCOL.md#11-sns-events)) of one config hash
 * from a status queue, for `sfu-agent notify --wait`.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { type BackoffOptions, backoffDelay } from "../../protocol/backoff.ts";
import { parseStatusEvent } from "../../protocol/messages.ts";
import type { SettlementOutcome } from "../../protocol/messages-schema.ts";
import { describeError } from "../aws/errors.ts";
import { sleep, type Timers } from "../shared/timers.ts";

/** The latest report of one pod. */
export interface PodReport {
  pod: string;
  outcome: SettlementOutcome;
  version: number | null;
  revision: string | null;
  error: { code: string; message: string } | null;
  at: string;
  /** Seconds from the event's publication to the pod's mounted file having the hash (when the agent said). */
  propagationSeconds: number | null;
  /** Seconds from the event's publication to the SFU's ack (when the agent said). */
  eventToAppliedSeconds: number | null;
}

/** Result of {@link collectStatuses}. */
export interface CollectResult {
  /** `applied`: enough pods applied; `failed`: a pod reported a failure; `timeout`: the deadline passed. */
  result: "applied" | "failed" | "timeout";
  pods: PodReport[];
  /** Failed receive calls (each retried with back-off). */
  receiveErrors: number;
  /** Messages that were not status events (refused by the bounded reader or the schema), deleted. */
  malformed: number;
  /** Why the first of them was refused (capped; never quotes the body); null when none. */
  firstMalformed: string | null;
}

/** Back-off of a failed receive from a status queue (here and in the rollout driver): 500 ms doubling to 10 s, `full` jitter. */
export const STATUS_QUEUE_BACKOFF: Readonly<BackoffOptions> = { baseMs: 500, maxMs: 10_000, jitter: "full" };

/** Outcomes that fail a `notify --wait` at once. */
export const FAILING_OUTCOMES: readonly SettlementOutcome[] = ["rejected", "invalid", "timeout"];

/**
 * Polls `queueUrl` until the condition below; never throws for AWS errors.
 *
 * Events of this hash are recorded per pod (the newest per pod wins) and
 * deleted; events older than `notBefore` (a previous run) and malformed
 * bodies are deleted and ignored; events of other hashes that are recent are
 * left for whoever waits for them. Collection ends when `expect` distinct
 * pods report `applied` (success), as soon as any pod reports `rejected`,
 * `invalid` or `timeout` (failure), or at the deadline.
 */
export async function collectStatuses(deps: {
  sqs: SQSClient;
  queueUrl: string;
  hash: string;
  expect: number;
  /** Epoch ms: events stamped earlier belong to an older run. */
  notBefore: number;
  /** Epoch ms at which to give up. */
  deadline: number;
  timers: Timers;
  /** Long-poll cap per call, seconds (default 20). */
  waitTimeSeconds?: number;
  onError?: (message: string) => void;
  /** Sees each report of this hash as it is recorded. */
  onReport?: (report: PodReport) => void;
  signal?: AbortSignal;
}): Promise<CollectResult> {
  const pods = new Map<string, PodReport>();
  let malformed = 0;
  let firstMalformed: string | null = null;
  let receiveErrors = 0;
  const done = (result: CollectResult["result"]): CollectResult => ({
    result,
    pods: [...pods.values()].sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0)),
    receiveErrors,
    malformed,
    firstMalformed,
  });
  const remove = async (ReceiptHandle: string) => {
    try {
      await deps.sqs.send(new DeleteMessageCommand({ QueueUrl: deps.queueUrl, ReceiptHandle }));
    } catch (err) {
      deps.onError?.(`DeleteMessage failed: ${describeError(err)}`);
    }
  };
  for (;;) {
    const applied = [...pods.values()].filter((p) => p.outcome === "applied").length;
    if ([...pods.values()].some((p) => FAILING_OUTCOMES.includes(p.outcome))) return done("failed");
    if (applied >= deps.expect) return done("applied");
    const remaining = deps.deadline - deps.timers.now();
    if (remaining <= 0 || deps.signal?.aborted) return done("timeout");
    let messages: Array<{ ReceiptHandle?: string; Body?: string }>;
    try {
      const res = await deps.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: deps.queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: Math.max(0, Math.min(deps.waitTimeSeconds ?? 20, Math.floor(remaining / 1000))),
          VisibilityTimeout: 30,
        }),
        deps.signal ? { abortSignal: deps.signal } : {},
      );
      messages = res.Messages ?? [];
    } catch (err) {
      if (deps.signal?.aborted) return done("timeout");
      deps.onError?.(`ReceiveMessage failed: ${describeError(err)}`);
      const delay = backoffDelay(receiveErrors++, STATUS_QUEUE_BACKOFF);
      await sleep(deps.timers, Math.min(delay, Math.max(0, deps.deadline - deps.timers.now())), deps.signal);
      continue;
    }
    for (const m of messages) {
      if (!m.ReceiptHandle) continue;
      const parsed = parseStatusEvent(m.Body ?? "");
      if (!parsed.ok) {
        malformed++;
        firstMalformed ??= parsed.reason.slice(0, 300);
        await remove(m.ReceiptHandle);
        continue;
      }
      const e = parsed.event;
      if (e.outcome === "halted") {
        // The rollout driver's own event: no pod's settlement.
        await remove(m.ReceiptHandle);
        continue;
      }
      const at = Date.parse(e.at);
      const stale = !Number.isFinite(at) || at < deps.notBefore;
      if (e.hash !== deps.hash) {
        if (stale) await remove(m.ReceiptHandle);
        continue;
      }
      await remove(m.ReceiptHandle);
      if (stale) continue;
      const prev = pods.get(e.pod);
      if (prev && Date.parse(prev.at) > at) continue;
      const report: PodReport = {
        pod: e.pod,
        outcome: e.outcome,
        version: e.version ?? null,
        revision: e.revision ?? null,
        error: e.error ? { code: e.error.code, message: e.error.message } : null,
        at: e.at,
        propagationSeconds: seconds((e as { propagationSeconds?: unknown }).propagationSeconds),
        eventToAppliedSeconds: seconds((e as { eventToAppliedSeconds?: unknown }).eventToAppliedSeconds),
      };
      pods.set(e.pod, report);
      deps.onReport?.(report);
    }
  }
}

/** A figure from a report: a finite number of seconds in [0, 1 day], else null. */
function seconds(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 86_400 ? v : null;
}

/** Formats reports as an aligned table (POD OUTCOME VERSION REVISION ERROR). */
export function formatPodTable(pods: PodReport[]): string {
  const rows = [
    ["POD", "OUTCOME", "VERSION", "REVISION", "ERROR"],
    ...pods.map((p) => [
      p.pod,
      p.outcome,
      p.version === null ? "-" : String(p.version),
      p.revision ?? "-",
      p.error ? `${p.error.code}: ${p.error.message}`.replace(/\s+/g, " ") : "-",
    ]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => (i < 4 ? cell.padEnd(widths[i] ?? 0) : cell))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}
