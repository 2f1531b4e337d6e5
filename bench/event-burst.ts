/**
 * `npm run bench:event-burst`: 10,000 reload events for hashes that never
 * arrive, then one legitimate change, against the real agent process under
 * the sfu-agent container's limits (192Mi memory and 200m CPU as cgroups,
 * `--memory-saver-mode`; test/helpers/limited-agent.ts), SQS served by
 * fauxqs behind a proxy that counts the agent's deletes. Prints peak RSS
 * (and its ratio to the RSS before the burst), the time until every message
 * is settled and deleted, the agent's CPU per 1,000 events, when the
 * legitimate change was applied, the slowest /healthz answer, and deletes
 * per message.
 *
 * Flags: --events N (default 10000).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { FAUXQS_REGION, startFauxqs } from "../scripts/local/fauxqs.ts";
import { configHash } from "../test/helpers/config-text.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { startFaultProxy } from "../test/helpers/fault-proxy.ts";
import { goodConfig } from "../test/helpers/hostile-configs.ts";
import { get, healthPoller, startLimitedAgent } from "../test/helpers/limited-agent.ts";
import { emitFigures } from "./figures.ts";

const { values } = parseArgs({ options: { events: { type: "string", default: "10000" } } });
const EVENTS = Number(values.events);
if (!Number.isInteger(EVENTS) || EVENTS < 1)
  throw new RangeError(`--events must be a positive integer, got ${values.events}`);
const TIMEOUT_MS = 300_000;

const fauxqs = await startFauxqs();
let deletes = 0;
const proxy = await startFaultProxy(fauxqs.endpoint, {
  observe: (req, body) => {
    if (req.action === "DeleteMessage") deletes++;
    if (req.action === "DeleteMessageBatch") deletes += (JSON.parse(body.toString()) as { Entries: [] }).Entries.length;
  },
});
const clients = fauxqs.clients();
const queueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-config-burst" }))).QueueUrl as string;
const dir = await mkdtemp(join(tmpdir(), "sfu-bench-burst-"));
const writer = new AtomicWriter(dir);
await writer.write({ "config.yaml": goodConfig(1) });
const agent = await startLimitedAgent(dir, {
  args: [
    ...["--queue-url", queueUrl, "--endpoint-url", proxy.url, "--region", FAUXQS_REGION],
    ...["--propagation-timeout", "3s", "--pod-name", "sfu-burst-0"],
  ],
  env: { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" },
});
process.stdout.write(`# agent: ${agent.limitNote}\n`);
const sfu = await FakeSfu.connect({ url: agent.push });
await sfu.waitForHash(await configHash(goodConfig(1)), 30_000);
const health = healthPoller(agent.http);

const rssKiB = async (): Promise<number> => {
  const { readFile } = await import("node:fs/promises");
  return Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${agent.child.pid}/status`, "utf8"))?.[1] ?? NaN);
};
const depth = async (): Promise<number> => {
  const a = await clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(a.Attributes?.ApproximateNumberOfMessages) + Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible)
  );
};
const reload = (hash: string, at: Date) =>
  JSON.stringify({
    type: "sfu-config.reload",
    revision: "burst",
    hash,
    configMap: "sfu/sfu-config",
    issuedAt: at.toISOString(),
  });
const send = async (bodies: string[]) => {
  let next = 0;
  const batches = Math.ceil(bodies.length / 10);
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let b = next++; b < batches; b = next++) {
        const entries = bodies.slice(b * 10, b * 10 + 10).map((MessageBody, i) => ({ Id: `m${i}`, MessageBody }));
        await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
      }
    }),
  );
};

const rssBefore = await rssKiB();
const cpu0 = await agent.cpuMs();
const issued = Date.now() - 60_000;
const t0 = performance.now();
await send(
  Array.from({ length: EVENTS }, (_, i) => reload(`sha256:${i.toString(16).padStart(64, "f")}`, new Date(issued + i))),
);
const sentMs = performance.now() - t0;
const text = goodConfig(2);
const hash = await configHash(text);
await writer.write({ "config.yaml": text });
await send([reload(hash, new Date())]);
await sfu.waitForHash(hash, TIMEOUT_MS);
const appliedMs = performance.now() - t0;
while ((deletes < EVENTS + 1 || (await depth()) > 0) && performance.now() - t0 < TIMEOUT_MS) {
  await new Promise((r) => setTimeout(r, 250));
}
const settledMs = performance.now() - t0;
const cpuMs = (await agent.cpuMs()) - cpu0;
const peakKiB = await agent.peakRssKiB();
const left = await depth();
const status = await get(`${agent.http}/status`, 5_000);
await health.stop();
const failed = health.polls.filter((p) => !p.ok).length;
const slowest = Math.max(...health.polls.map((p) => p.ms));
const alive = agent.child.exitCode === null && agent.child.signalCode === null;
const oom = agent.cgroup ? (await agent.cgroup.memoryStats()).oomKills : null;

await sfu.close();
await agent.stop();
clients.sqs.destroy();
clients.sns.destroy();
await proxy.stop();
await fauxqs.stop();
await rm(dir, { recursive: true, force: true });

const applied = typeof status !== "string" && status.text.includes(hash);
process.stdout.write(
  [
    `events: ${EVENTS} sent in ${(sentMs / 1000).toFixed(1)} s; legitimate change applied after ${(appliedMs / 1000).toFixed(1)} s (${applied ? "in /status" : "NOT in /status"})`,
    `all settled and deleted after ${(settledMs / 1000).toFixed(1)} s (${left} left in the queue), ${deletes} deletes for ${EVENTS + 1} messages`,
    `agent CPU ${cpuMs} ms (${((cpuMs / EVENTS) * 1000).toFixed(0)} ms per 1,000 events); RSS ${(rssBefore / 1024).toFixed(0)} MiB before, peak ${(peakKiB / 1024).toFixed(0)} MiB`,
    `/healthz: ${health.polls.length} polls, ${failed} failed, slowest ${slowest.toFixed(0)} ms; agent ${alive ? "alive" : "DEAD"}, OOM kills ${oom}`,
    "",
  ].join("\n"),
);
if (!alive || !applied || left > 0) {
  process.stderr.write(
    "event-burst: the agent did not survive the burst with the change applied and the queue empty\n",
  );
  process.exit(1);
}
emitFigures("event-burst", {
  burst_peak_rss_mib: { value: peakKiB / 1024, unit: "MiB", better: "lower" },
  burst_peak_rss_ratio_to_idle: { value: peakKiB / rssBefore, unit: "x", better: "lower" },
  burst_settled_all_s: { value: settledMs / 1000, unit: "s", better: "lower" },
  burst_change_applied_s: { value: appliedMs / 1000, unit: "s", better: "lower" },
  burst_agent_cpu_ms_per_1000_events: { value: (cpuMs / EVENTS) * 1000, unit: "ms", better: "lower" },
  burst_deletes_per_message: { value: deletes / (EVENTS + 1), unit: "x", better: "lower" },
  burst_healthz_slowest_ms: { value: slowest, unit: "ms", better: "lower" },
  burst_healthz_failed: { value: failed, unit: "polls", better: "lower" },
});
