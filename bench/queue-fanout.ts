/**
 * Benchmark of the SNS/SQS path over fauxqs (issue 5). Prints figures; asserts nothing.
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

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { CreateTopicCommand, PublishCommand } from "@aws-sdk/client-sns";
import { Agent } from "../agent/agent.ts";
import { createLogger } from "../agent/logger.ts";
import { createAwsClients } from "../agent/queue/aws-clients.ts";
import {
  QUEUE_DEFAULTS,
  type QueueTrigger,
  type QueueTriggerOptions,
  startQueueTrigger,
} from "../agent/queue/index.ts";
import type { Settlement } from "../agent/snapshot-store.ts";
import { loadConfigText } from "../protocol/config-loader.ts";
import { AtomicWriter } from "../test/helpers/atomic-writer.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../test/helpers/fauxqs.ts";
import { emitFigures } from "./figures.ts";

const { values } = parseArgs({
  options: { events: { type: "string", default: "50" }, "idle-seconds": { type: "string", default: "60" } },
});
const EVENTS = Number(values.events);
const IDLE_SECONDS = Number(values["idle-seconds"]);

function configText(n: number): string {
  return `schemaVersion: 1\nserver: { port: 8080 }\nwebrtc: { icePortRange: [20000, 20100], codecs: [vp8, opus], listenIp: 127.0.0.1 }\nlimits: { maxRooms: ${n} }\n`;
}
async function hashOf(n: number): Promise<string> {
  const r = await loadConfigText(configText(n));
  if (!r.ok) throw new Error("bad config");
  return r.hash;
}

interface Pod {
  agent: Agent;
  trigger: QueueTrigger;
  sfu: FakeSfu;
  writer: AtomicWriter;
  dir: string;
  calls: Map<string, number>;
  onSettled: ((s: Settlement) => void) | null;
  close(): Promise<void>;
}

const silent = new Writable({ write: (_c, _e, cb) => cb() });

async function startPod(
  fx: FauxqsHandle,
  topicArn: string,
  name: string,
  queue: Partial<QueueTriggerOptions>,
): Promise<Pod> {
  const dir = await mkdtemp(join(tmpdir(), "sfu-bench-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": configText(1) });
  const calls = new Map<string, number>();
  const clients = createAwsClients({
    endpointUrl: fx.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
    onCall: (a) => calls.set(a, (calls.get(a) ?? 0) + 1),
  });
  let trigger: QueueTrigger | null = null;
  const agent = new Agent(
    {
      logger: createLogger({ level: "fatal", destination: silent }),
      clock: () => new Date(),
      startQueueTrigger: async (deps) => {
        trigger = await startQueueTrigger({ ...deps, clients });
        return trigger;
      },
    },
    {
      configDir: dir,
      configKey: "config.yaml",
      listen: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      podName: name,
      tokenFile: null,
      ackTimeoutMs: 10_000,
      resyncIntervalMs: 600_000,
      defaultMetrics: false,
      source: { debounceMs: 10 },
      queue: { topicArn, podName: name, queuePrefix: "sfu-config-", propagationTimeoutMs: 300_000, ...queue },
    },
  );
  await agent.start();
  const t = trigger as QueueTrigger | null;
  if (!t) throw new Error("no trigger");
  await t.ready();
  const sfu = await FakeSfu.connect({ url: agent.pushUrl, name });
  const pod: Pod = {
    agent,
    trigger: t,
    sfu,
    writer,
    dir,
    calls,
    onSettled: null,
    async close() {
      await sfu.close();
      await agent.stop(200);
      clients.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
  // Observe settlements as they are recorded (the store has no event for them).
  const record = agent.store.recordSettlement.bind(agent.store);
  agent.store.recordSettlement = (s) => {
    record(s);
    pod.onSettled?.(s);
  };
  return pod;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function until(fn: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function fanout(n: number): Promise<{ p50: number; p99: number }> {
  const fx = await startFauxqs();
  const admin = createAwsClients({
    endpointUrl: fx.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
  });
  const topicArn = (await admin.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn!;
  const pods: Pod[] = [];
  for (let i = 0; i < n; i++) pods.push(await startPod(fx, topicArn, `sfu-${String(i).padStart(3, "0")}`, {}));
  const latencies: number[] = [];
  for (let e = 0; e < EVENTS; e++) {
    const cfg = 2 + e;
    const hash = await hashOf(cfg);
    await Promise.all(pods.map((p) => p.writer.write({ "config.yaml": configText(cfg) })));
    await until(() => pods.every((p) => p.agent.store.applied()?.hash === hash), 30_000, "all SFUs to apply");
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
    await admin.sns.send(
      new PublishCommand({
        TopicArn: topicArn,
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
  for (const p of pods) await p.close();
  admin.destroy();
  await fx.stop();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function idle(n: number): Promise<number> {
  const fx = await startFauxqs();
  const admin = createAwsClients({
    endpointUrl: fx.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
  });
  const topicArn = (await admin.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn!;
  // Heartbeat and sweep are scaled down so that several happen in the window.
  const scale = 45;
  const tuned = {
    heartbeatIntervalMs: QUEUE_DEFAULTS.heartbeatIntervalMs / scale,
    staleAfterMs: QUEUE_DEFAULTS.staleAfterMs / scale,
    sweepIntervalMs: QUEUE_DEFAULTS.sweepIntervalMs / scale,
  };
  const pods: Pod[] = [];
  for (let i = 0; i < n; i++) pods.push(await startPod(fx, topicArn, `idle-${String(i).padStart(3, "0")}`, tuned));
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
  for (const p of pods) await p.close();
  admin.destroy();
  await fx.stop();
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
