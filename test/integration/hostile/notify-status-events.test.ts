/**
 * Hostile status events on the status queue against `sfu-agent notify
 * --wait` as a process (Dockerfile.agent's node flags and ENV) under the
 * hook Job container's limits from k8s/hook/job.yaml (memory and CPU as
 * cgroups; without them `--max-old-space-size`, and the test says so), SQS
 * and SNS from fauxqs. The queue holds bodies nested deep, key and value
 * floods, huge strings, the same inside SNS envelopes and 2,000 malformed
 * events, with one real pod's `applied` event among them.
 *
 * The command is not killed, ends with exit 0 (the pod applied), reports how
 * many messages were not status events and why the first was refused,
 * quotes nothing of the bodies, and deletes every message it read.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CreateTopicCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { parse } from "yaml";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import {
  createLimitCgroup,
  type LimitCgroup,
  quantityBytes,
  quantityMillicores,
} from "../../../scripts/lib/container-limits.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../../../scripts/lib/dockerfile.ts";
import { FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { configHash } from "../../helpers/config-text.ts";
import { goodConfig } from "../../helpers/hostile-configs.ts";

const ROOT = join(import.meta.dirname, "../../..");
const FLOOD = 2_000;

describe("sfu-agent notify --wait under the hook's limits vs hostile status events", { timeout: 3 * 60_000 }, () => {
  let dir: string;
  let fauxqs: FauxqsHandle;
  let clients: AwsClients;
  let cgroup: LimitCgroup | null = null;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-hostile-notify-"));
    fauxqs = await startFauxqs();
    clients = fauxqs.clients();
  });

  after(async () => {
    clients?.sqs.destroy();
    clients?.sns.destroy();
    await fauxqs?.stop();
    await cgroup?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("every hostile message is refused, counted and deleted; the real pod's event ends the wait with exit 0", async () => {
    const topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config" }))).TopicArn as string;
    const queueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-config-status" })))
      .QueueUrl as string;
    const file = join(dir, "config.yaml");
    await writeFile(file, goodConfig(1));
    const hash = await configHash(goodConfig(1));
    const envelope = (m: string) => JSON.stringify({ Type: "Notification", MessageId: "m", Message: m });
    const keys = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":"FILLER"`).join(",")}}`;
    const hostile = [
      `${"[".repeat(120_000)}${"]".repeat(120_000)}`,
      keys.slice(0, 250_000),
      `[${"0,".repeat(120_000)}0]`,
      envelope(`${"[".repeat(60_000)}${"]".repeat(60_000)}`),
      JSON.stringify({ type: "sfu-config.status", pod: "x", hash, p: "FILLER".repeat(40_000) }),
    ];
    const flood = Array.from(
      { length: FLOOD },
      (_, i) => `{"type":"sfu-config.status","n":${i},"FILLER":[[[[[[[[[[0]]]]]]]]]]}`,
    );
    const real = JSON.stringify({
      type: "sfu-config.status",
      pod: "sfu-0",
      revision: null,
      hash,
      version: 1,
      outcome: "applied",
      error: null,
      at: new Date().toISOString(),
    });
    const bodies = [...hostile, ...flood.slice(0, FLOOD / 2), real, ...flood.slice(FLOOD / 2)];
    for (let i = 0; i < bodies.length; ) {
      // One big body per batch (a batch is at most 1 MiB), small ones ten at a time.
      const n = (bodies[i] as string).length > 10_000 ? 1 : 10;
      const entries = bodies.slice(i, i + n).map((MessageBody, k) => ({ Id: `m${k}`, MessageBody }));
      i += n;
      await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
    }

    const job = parse(await readFile(join(ROOT, "k8s", "hook", "job.yaml"), "utf8"));
    const limits = job.spec.template.spec.containers[0].resources.limits as { memory: string; cpu: string };
    const runtime = (await readDockerfile(join(ROOT, "Dockerfile.agent"))).at(-1) as Stage;
    const flags = [...nodeEntrypoint(runtime).nodeFlags];
    const made = await createLimitCgroup({
      memoryBytes: quantityBytes(limits.memory),
      cpuMillicores: quantityMillicores(String(limits.cpu)),
    });
    if ("unavailable" in made) {
      flags.push(`--max-old-space-size=${Math.floor(quantityBytes(limits.memory) / 2 ** 20 / 2)}`);
      console.log(`# NO cgroup (${made.unavailable}): --max-old-space-size only`);
    } else {
      cgroup = made;
      console.log(`# cgroup limits of the hook container: memory ${limits.memory}, cpu ${limits.cpu}`);
    }
    const args = [
      ...flags,
      join(ROOT, "agent", "cli.ts"),
      "notify",
      ...["--topic-arn", topicArn, "--config", file, "--wait", "--expect", "1"],
      ...[
        "--status-queue-url",
        queueUrl,
        "--timeout",
        "90s",
        "--endpoint-url",
        fauxqs.endpoint,
        "--region",
        FAUXQS_REGION,
      ],
    ];
    const [command, argv] = cgroup ? cgroup.wrap(process.execPath, args) : [process.execPath, args];
    const t0 = performance.now();
    const child = spawn(command, argv, {
      cwd: ROOT,
      env: { ...process.env, ...stageEnv(runtime), AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      if (stdout.length < 1_000_000) stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      if (stderr.length < 1_000_000) stderr += d.toString();
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) =>
      child.once("exit", (c, s) => r([c, s])),
    );
    const seconds = (performance.now() - t0) / 1000;
    const stats = cgroup ? await cgroup.memoryStats() : null;
    console.log(`# notify ended in ${seconds.toFixed(1)} s; cgroup ${JSON.stringify(stats)}`);
    assert.equal(signal, null, `notify was killed (${signal}); cgroup ${JSON.stringify(stats)}`);
    if (typeof stats?.oomKills === "number") assert.equal(stats.oomKills, 0, "OOM kill in the hook's cgroup");
    assert.equal(code, 0, `exit code (stdout ${stdout.slice(0, 500)}; stderr ${stderr.slice(0, 500)})`);
    assert.match(stdout, new RegExp(`1/1 pods applied ${hash}`));
    // The command reads until the real event: at least the messages before it are refused and reported.
    const reported =
      /(\d+) message\(s\) on the status queue were not status events and were deleted \(first: ([^)]*)\)/.exec(stderr);
    assert.ok(reported, `the refusals are reported: ${stderr.slice(0, 500)}`);
    assert.ok(Number(reported[1]) >= hostile.length, `${reported[1]} refusals reported`);
    assert.match(reported[2] as string, /^message body: nested more than 8 levels deep/);
    assert.ok(!`${stdout}${stderr}`.includes("FILLER"), "the output quotes no body");
    assert.ok(stdout.length + stderr.length < 16 * 1024, `output of ${stdout.length + stderr.length} bytes`);
    const a = await clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessagesNotVisible"] }),
    );
    assert.equal(Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible), 0, "every message read was deleted");
  });
});
