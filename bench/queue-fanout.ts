/**
 * Benchmark of the SNS/SQS reload path (per-pod queues, notify, settlement)
 * over fauxqs. Prints figures; asserts nothing.
 *
 * 1. Fan-out latency: N in-process agents (real Agent: file watch, store,
 *    push server, queue trigger in per-pod mode) each with a fake SFU. For
 *    each of 50 events the config is first swapped into every pod's
 *    directory and applied (the "file already swapped" case); then one
 *    reload event is published and the time until all N pods have settled
 *    it `applied` is measured. p50/p99/max for N = 10 and N = 30.
 * 2. Idle request rate: SQS/SNS calls per pod over an idle window, by
 *    action, extrapolated to one hour at the default tunables (long polls
 *    measured at their real 20 s; heartbeat and sweep run on intervals
 *    scaled down for the window and are scaled back).
 *
 * Run: `npm run bench:queue` (or `node bench/queue-fanout.ts [--events 50] [--idle-seconds 60]`).
 */

import { rm } from "node:fs/promises";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { CreateTopicCommand, PublishCommand } from "@aws-sdk/client-sns";
import type { AwsClients } from "../agent/aws/aws-clients.ts";
import { createLogger } from "../agent/shared/logger.ts";
import { QUEUE_DEFAULTS, type QueueTriggerOptions } from "../agent/sidecar/queue/index.ts";
import type { Settlement } from "../agent/sidecar/snapshot-store.ts";
import { type FauxqsHandle, startFauxqs } from "../scripts/local/fauxqs.ts";
import { configHash, configText } from "../test/helpers/config-text.ts";
import { type QueuePod, startQueuePod } from "../test/helpers/queue-pod.ts";
import { until } from "../test/helpers/until.ts";
import { emitFigures } from "./figures.ts";

const { values } = parseArgs({
  options: { events: { type: "string", default: "50" }, "idle-seconds": { type: "string", default: "60" } },
});
const EVENTS = Number(values.events);
const IDLE_SECONDS = Number(values["idle-seconds"]);

interface Pod extends QueuePod {
  calls: Map<string, number>;
  onSettled: ((s: Settlement) => void) | null;
  close(): Promise<void>;
}

const silent = new Writable({ write: (_c, _e, cb) => cb() });

/** fauxqs with the reload topic, and the pods started on it. */
class Bench {
  readonly fx: FauxqsHandle;
  /** Topic creation and publishing; not counted. */
  readonly admin: AwsClients;
  readonly topicArn: string;
  readonly pods: Pod[] = [];

  private constructor(fx: FauxqsHandle, admin: AwsClients, topicArn: string) {
    this.fx = fx;
    this.admin = admin;
    this.topicArn = topicArn;
  }

  static async start(): Promise<Bench> {
    const fx = await startFauxqs();
    const admin = fx.clients();
    const topicArn = (await admin.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn!;
    return new Bench(fx, admin, topicArn);
  }

  /** Starts `n` pods named `<prefix>000`... one after the other. */
  async startPods(n: number, prefix: string, queue: Partial<QueueTriggerOptions>): Promise<Pod[]> {
    for (let i = 0; i < n; i++) this.pods.push(await this.#startPod(`${prefix}${String(i).padStart(3, "0")}`, queue));
    return this.pods;
  }

  async #startPod(name: string, queue: Partial<QueueTriggerOptions>): Promise<Pod> {
    const calls = new Map<string, number>();
    const clients = this.fx.clients({ onCall: (a) => calls.set(a, (calls.get(a) ?? 0) + 1) });
    const started = await startQueuePod({
      name,
      tmpPrefix: "sfu-bench-",
      initialConfig: configText(1),
      logger: createLogger({ level: "fatal", destination: silent }),
      clients,
      ackTimeoutMs: 10_000,
      resyncIntervalMs: 600_000,
      debounceMs: 10,
      queue: { topicArn: this.topicArn, queuePrefix: "sfu-config-", propagationTimeoutMs: 300_000, ...queue },
    });
    const pod: Pod = {
      ...started,
      calls,
      onSettled: null,
      async close() {
        await started.sfu.close();
        await started.agent.stop(200);
        clients.destroy();
        await rm(started.dir, { recursive: true, force: true });
      },
    };
    // Observe settlements as they are recorded.
    started.agent.tracker.subscribe((e) => {
      if (e.type === "settled") pod.onSettled?.(e.settlement);
    });
    return pod;
  }

  async stop(): Promise<void> {
    for (const p of this.pods) await p.close();
    this.admin.destroy();
    await this.fx.stop();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function fanout(n: number): Promise<{ p50: number; p99: number }> {
  const bench = await Bench.start();
  const pods = await bench.startPods(n, "sfu-", {});
  const latencies: number[] = [];
  for (let e = 0; e < EVENTS; e++) {
    const cfg = 2 + e;
    const hash = await configHash(configText(cfg));
    await Promise.all(pods.map((p) => p.writer.write({ "config.yaml": configText(cfg) })));
    await until(() => pods.every((p) => p.agent.store.applied()?.hash === hash), 30_000, "all SFUs to apply", 5);
    let settled = 0;
    let resolveAll: () => void = () => {};
    const all = new Promise<void>((r) => {
      resolveAll = r;
    });
    for (const p of pods) {
      p.onSettled = (s) => {
        if (s.hash === hash && s.outcome === "applied" && ++settled === n) resolveAll();
      };
    }
    const start = performance.now();
    await bench.admin.sns.send(
      new PublishCommand({
        TopicArn: bench.topicArn,
        Message: JSON.stringify({
          type: "sfu-config.reload",
          revision: `r${cfg}`,
          hash,
          configMap: "sfu/sfu-config",
          issuedAt: new Date().toISOString(),
        }),
      }),
    );
    await Promise.race([all, new Promise((_, rej) => setTimeout(() => rej(new Error("settlement timeout")), 30_000))]);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  const f = (x: number) => `${x.toFixed(1)} ms`;
  console.log(
    `fan-out N=${String(n).padStart(2)}: publish -> all ${n} pods settled applied over ${EVENTS} events: ` +
      `p50 ${f(percentile(latencies, 50))}, p99 ${f(percentile(latencies, 99))}, max ${f(latencies.at(-1) ?? Number.NaN)}`,
  );
  await bench.stop();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function idle(n: number): Promise<number> {
  const bench = await Bench.start();
  // Heartbeat and sweep are scaled down so that several happen in the window.
  const scale = 45;
  const tuned = {
    heartbeatIntervalMs: QUEUE_DEFAULTS.heartbeatIntervalMs / scale,
    staleAfterMs: QUEUE_DEFAULTS.staleAfterMs / scale,
    sweepIntervalMs: QUEUE_DEFAULTS.sweepIntervalMs / scale,
  };
  const pods = await bench.startPods(n, "idle-", tuned);
  for (const p of pods) p.calls.clear();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const seconds = (performance.now() - t0) / 1000;
  const totals = new Map<string, number>();
  for (const p of pods) for (const [a, c] of p.calls) totals.set(a, (totals.get(a) ?? 0) + c);
  const scaled = new Set(["sqs:TagQueue", "sqs:ListQueues", "sqs:ListQueueTags"]);
  let perPodHour = 0;
  let taggingPerPodHour = 0;
  console.log(
    `idle: ${n} pods for ${seconds.toFixed(0)} s (long poll ${QUEUE_DEFAULTS.waitTimeSeconds} s; heartbeat/sweep at 1/${scale} of 15 min, scaled back):`,
  );
  for (const [action, count] of [...totals].sort()) {
    const perHour = ((count / n) * 3600) / seconds / (scaled.has(action) ? scale : 1);
    perPodHour += perHour;
    if (action === "sqs:TagQueue" || action === "sqs:ListQueueTags") taggingPerPodHour += perHour;
    console.log(`  ${action.padEnd(22)} ${String(count).padStart(5)} calls -> ${perHour.toFixed(1)} per pod per hour`);
  }
  console.log(`  total: ${perPodHour.toFixed(0)} requests per pod per hour when idle`);
  console.log(
    `  1,000 pods: ${((perPodHour * 1000) / 3600).toFixed(1)} requests/s in all, of which tagging (TagQueue + ListQueueTags) ${((taggingPerPodHour * 1000) / 3600).toFixed(2)}/s`,
  );
  await bench.stop();
  return perPodHour;
}

const n10 = await fanout(10);
const n30 = await fanout(30);
const idlePerPodHour = await idle(10);
emitFigures("queue-fanout", {
  publish_to_all_applied_n10_p50_ms: { value: n10.p50, unit: "ms", better: "lower" },
  publish_to_all_applied_n10_p99_ms: { value: n10.p99, unit: "ms", better: "lower" },
  publish_to_all_applied_n30_p50_ms: { value: n30.p50, unit: "ms", better: "lower" },
  publish_to_all_applied_n30_p99_ms: { value: n30.p99, unit: "ms", better: "lower" },
  idle_requests_per_pod_hour: { value: idlePerPodHour, unit: "req/h", better: "lower" },
});
