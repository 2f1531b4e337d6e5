/**
 * `npm run bench:memory`: the resident memory of the agent in per-pod queue
 * mode, run as the image runs it: the compiled agent (`node <flags>
 * dist/agent/cli.js run`) with Dockerfile.agent's ENTRYPOINT node flags and
 * runtime ENV, under the sfu-agent container's memory limit when a cgroup can
 * be created here (scripts/lib/container-limits.ts), with `--topic-arn`
 * against an in-process fauxqs on 127.0.0.1 and a fake SFU acking every
 * config. Two agents, one after the other: without and with
 * `--rollout-state` (S3 in use: the agent reads the state object at start).
 * For each it prints, from /proc/PID/smaps_rollup, Rss, Private
 * (Private_Clean + Private_Dirty) and Anonymous after start (once settled,
 * {@link SETTLE_MS}) and after {@link RELOADS} reload events (config file
 * swapped, reload event published to the topic, config received by the SFU).
 * Figures, not assertions; bounded (about 30 s after the build).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateTopicCommand, PublishCommand } from "@aws-sdk/client-sns";
import { createS3Client } from "../agent/aws/aws-clients.ts";
import type { ReloadEvent } from "../protocol/messages-schema.ts";
import type { MemoryCgroup } from "../scripts/lib/container-limits.ts";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../scripts/local/fauxqs.ts";
import { configHash } from "../test/helpers/config-text.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { goodConfig } from "../test/helpers/hostile-configs.ts";
import { emitFigures } from "./figures.ts";
import { agentMemoryLimit, buildImageAgent, COMPILED_CLI } from "./lib/compiled-agent.ts";

const _ROOT = join(import.meta.dirname, "..");
/** Time the agent is left alone before a reading: the start-up's garbage collected, the queue provisioned. */
const SETTLE_MS = 5_000;
/** Reload events between the two readings of one agent. */
const RELOADS = 10;
/** Longest wait for any one step (start, queue provisioned, a config received). */
const STEP_TIMEOUT_MS = 15_000;
const BUCKET = "sfu-mem-rollout";

/** The figures of one /proc/PID/smaps_rollup reading, KiB. */
interface Reading {
  rss: number;
  private: number;
  anonymous: number;
}

async function smapsRollup(pid: number): Promise<Reading> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`/proc/${pid}/smaps_rollup has no ${name}`);
    return Number(m[1]);
  };
  return { rss: kib("Rss"), private: kib("Private_Clean") + kib("Private_Dirty"), anonymous: kib("Anonymous") };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Phase {
  label: string;
  afterStart: Reading;
  afterReloads: Reading;
}

/** One agent: start, settle, read; RELOADS reload events, settle, read; stop. */
async function measure(
  label: string,
  o: {
    fauxqs: FauxqsHandle;
    topicArn: string;
    publish: (event: ReloadEvent) => Promise<void>;
    image: { env: Record<string, string>; nodeFlags: string[] };
    cgroup: MemoryCgroup | null;
    extraArgs: string[];
  },
): Promise<Phase> {
  const dir = await mkdtemp(join(tmpdir(), "sfu-bench-memory-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": goodConfig(1) });
  const args = [...o.image.nodeFlags, COMPILED_CLI, "run", "--config-dir", dir];
  args.push("--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pod-name", `sfu-mem-${label}`);
  args.push("--topic-arn", o.topicArn, "--endpoint-url", o.fauxqs.endpoint, "--region", FAUXQS_REGION);
  args.push(...o.extraArgs);
  const [command, argv] = o.cgroup ? o.cgroup.wrap(process.execPath, args) : [process.execPath, args];
  const child = spawn(command, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      ...o.image.env,
      AWS_ACCESS_KEY_ID: FAUXQS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FAUXQS_CREDENTIALS.secretAccessKey,
    },
  });
  const exited = new Promise((r) => child.once("exit", r));
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString();
  });
  let sfu: FakeSfu | null = null;
  try {
    const started = await new Promise<{ push: string; http: string }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${label}: no "agent started" line\n${stderr}`)),
        STEP_TIMEOUT_MS,
      );
      let buf = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        buf = (buf + chunk).slice(-64 * 1024);
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.includes('"agent started"')) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as { push: string; http: string });
          }
        }
      });
      void exited.then(() => reject(new Error(`${label}: the agent exited\n${stderr}`)));
    });
    sfu = await FakeSfu.connect({ url: started.push });
    await sfu.waitForHash(await configHash(goodConfig(1)), STEP_TIMEOUT_MS);
    // Reload events published before the per-pod queue is subscribed are lost: wait for it.
    const t0 = Date.now();
    for (;;) {
      const status = (await (await fetch(`${started.http}/status`)).json()) as { queue?: { url: string | null } };
      if (status.queue?.url) break;
      if (Date.now() - t0 > STEP_TIMEOUT_MS) throw new Error(`${label}: the per-pod queue was not provisioned`);
      await sleep(100);
    }
    await sleep(SETTLE_MS);
    const pid = child.pid as number;
    const afterStart = await smapsRollup(pid);
    for (let n = 2; n < 2 + RELOADS; n++) {
      const text = goodConfig(n);
      const hash = await configHash(text);
      await writer.write({ "config.yaml": text });
      await o.publish({
        type: "sfu-config.reload",
        revision: `mem-${n}`,
        hash,
        configMap: "sfu/sfu-config",
        issuedAt: new Date().toISOString(),
      });
      await sfu.waitForHash(hash, STEP_TIMEOUT_MS);
      sfu.received.length = 0;
    }
    await sleep(SETTLE_MS);
    const afterReloads = await smapsRollup(pid);
    return { label, afterStart, afterReloads };
  } finally {
    await sfu?.close();
    child.kill("SIGTERM");
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(force);
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  // The image runs the compiled agent; so does the benchmark.
  const image = await buildImageAgent();
  const limit = await agentMemoryLimit();
  const fauxqs = await startFauxqs();
  const clients = fauxqs.clients();
  const s3 = createS3Client({
    endpointUrl: fauxqs.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
  });
  const phases: Phase[] = [];
  const t0 = performance.now();
  try {
    const topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-memory" }))).TopicArn as string;
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const publish = async (event: ReloadEvent) => {
      await clients.sns.send(new PublishCommand({ TopicArn: topicArn, Message: JSON.stringify(event) }));
    };
    const common = { fauxqs, topicArn, publish, image, cgroup: limit.cgroup };
    phases.push(await measure("queue", { ...common, extraArgs: [] }));
    phases.push(
      await measure("rollout", { ...common, extraArgs: ["--rollout-state", `s3://${BUCKET}/rollout-state.json`] }),
    );
  } finally {
    clients.destroy();
    s3.destroy();
    await fauxqs.stop();
    await limit.cgroup?.remove();
  }
  const envText = Object.entries(image.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
  const row = (r: Reading) =>
    `Rss ${mib(r.rss).padStart(9)}  Private ${mib(r.private).padStart(9)}  Anonymous ${mib(r.anonymous).padStart(9)}`;
  const lines = [
    `sfu-agent memory, per-pod queue mode (--topic-arn, fauxqs on 127.0.0.1), node ${process.version}`,
    `agent: node ${image.nodeFlags.join(" ")} dist/agent/cli.js run with Dockerfile.agent's ENV (${envText}), ${limit.line}`,
    `readings from /proc/PID/smaps_rollup, each after ${SETTLE_MS / 1000} s without events`,
  ];
  for (const p of phases) {
    lines.push("", p.label === "queue" ? "--topic-arn" : "--topic-arn and --rollout-state (S3)");
    lines.push(`  ${"after start".padEnd(24)}${row(p.afterStart)}`);
    lines.push(`  ${`after ${RELOADS} reload events`.padEnd(24)}${row(p.afterReloads)}`);
  }
  lines.push("", `total ${((performance.now() - t0) / 1000).toFixed(1)} s`, "");
  process.stdout.write(lines.join("\n"));
  const figures: Parameters<typeof emitFigures>[1] = {};
  for (const p of phases) {
    for (const [when, r] of [
      ["start", p.afterStart],
      ["reloads", p.afterReloads],
    ] as const) {
      figures[`${p.label}_${when}_rss_mib`] = { value: r.rss / 1024, unit: "MiB", better: "lower" };
      figures[`${p.label}_${when}_private_mib`] = { value: r.private / 1024, unit: "MiB", better: "lower" };
      figures[`${p.label}_${when}_anonymous_mib`] = { value: r.anonymous / 1024, unit: "MiB", better: "lower" };
    }
  }
  emitFigures("agent-memory", figures);
}

await main();
