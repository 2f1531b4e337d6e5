/**
 * Lifecycle of per-pod queues over fauxqs: clean shutdown removes queue and
 * subscription; the queue of a kill -9'd agent (a real `sfu-agent run`
 * child process) is swept by the survivors within the documented bound; an
 * SQS outage (fauxqs stopped 10 s and restarted empty) is survived without
 * losing readiness or the file watch, and the agent re-provisions by itself.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ListSubscriptionsByTopicCommand } from "@aws-sdk/client-sns";
import { GetQueueUrlCommand, ListQueueTagsCommand } from "@aws-sdk/client-sqs";
import { TAG_SUBSCRIPTION } from "../../../agent/sidecar/queue/per-pod-queue.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { agentRunArgs } from "../../../scripts/local/processes.ts";
import { configText, hashOf, type QueueFixture, startQueueFixture, type TestPod, until } from "./harness.ts";

const HEARTBEAT_MS = 2_000;
const STALE_AFTER_MS = 6_000;
const SWEEP_MS = 1_000;
/** The documented bound: staleAfter + 1.5 x sweep interval after the owner's last heartbeat. */
const ORPHAN_BOUND_MS = STALE_AFTER_MS + 1.5 * SWEEP_MS;
const fast = { heartbeatIntervalMs: HEARTBEAT_MS, staleAfterMs: STALE_AFTER_MS, sweepIntervalMs: SWEEP_MS };

describe("per-pod queue lifecycle over fauxqs", { timeout: 120_000 }, () => {
  let f: QueueFixture;
  let survivors: TestPod[];
  const children: ChildProcess[] = [];
  const temp: string[] = [];

  const subscriptions = async () =>
    (await f.clients.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: f.topicArn }))).Subscriptions ?? [];

  before(async () => {
    f = await startQueueFixture();
    survivors = [await f.startPod("sfu-1", { queue: fast }), await f.startPod("sfu-2", { queue: fast })];
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await f?.dispose();
    for (const d of temp) await rm(d, { recursive: true, force: true });
  });

  it("stop() (the SIGTERM path) unsubscribes and deletes the queue", async () => {
    const p = await f.startPod("sfu-leaving", { queue: fast });
    const url = p.trigger.status().url!;
    assert.ok((await f.listQueues()).includes("sfu-config-sfu-leaving"));
    assert.equal((await subscriptions()).filter((s) => s.Endpoint?.endsWith(":sfu-config-sfu-leaving")).length, 1);
    await p.stop();
    assert.equal((await f.listQueues()).includes("sfu-config-sfu-leaving"), false, "queue deleted");
    assert.deepEqual(
      (await subscriptions()).filter((s) => s.Endpoint?.endsWith(":sfu-config-sfu-leaving")),
      [],
      "subscription removed",
    );
    assert.ok(url);
  });

  it("the queue of a kill -9'd agent is removed by the survivors within the documented bound", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-queue-victim-"));
    temp.push(dir);
    await new AtomicWriter(dir).write({ "config.yaml": configText(1) });
    const callLog = join(dir, "..aws-calls");
    const child = spawn(
      process.execPath,
      agentRunArgs(
        dir,
        "127.0.0.1:0",
        "127.0.0.1:0",
        "--topic-arn",
        f.topicArn,
        "--status-topic-arn",
        f.statusTopicArn,
        "--endpoint-url",
        f.fx.endpoint,
        "--region",
        "us-east-1",
        "--pod-name",
        "victim",
        "--log-level",
        "warn",
      ),
      {
        cwd: new URL("../../../", import.meta.url).pathname,
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
          SFU_AGENT_AWS_CALL_LOG: callLog,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    children.push(child);
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += String(d);
    });
    await until(
      async () => (await f.listQueues()).includes("sfu-config-victim"),
      15_000,
      `the victim's queue (${stderr})`,
    );
    await until(
      async () => (await subscriptions()).some((s) => s.Endpoint?.endsWith(":sfu-config-victim")),
      5_000,
      "the victim's subscription",
    );
    // provisioning is complete once the subscription ARN is in the queue's tags
    const victimUrl = (await f.clients.sqs.send(new GetQueueUrlCommand({ QueueName: "sfu-config-victim" }))).QueueUrl;
    await until(
      async () =>
        (await f.clients.sqs.send(new ListQueueTagsCommand({ QueueUrl: victimUrl }))).Tags?.[TAG_SUBSCRIPTION] !==
        undefined,
      5_000,
      "the victim's subscription tag",
    );
    // ...and it is polling (its first ReceiveMessage is in the call log).
    const calledSoFar = async () => new Set((await readFile(callLog, "utf8").catch(() => "")).split("\n"));
    await until(async () => (await calledSoFar()).has("sqs:ReceiveMessage"), 5_000, "the victim's first long poll");
    // The victim tagged its queue when it created it; its heartbeat stops now.
    const killedAt = Date.now();
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    await until(
      async () => !(await f.listQueues()).includes("sfu-config-victim"),
      ORPHAN_BOUND_MS + 3_000,
      "the orphan to be swept",
      200,
    );
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= ORPHAN_BOUND_MS + 3_000, `swept after ${tookMs} ms`);
    assert.deepEqual(
      (await subscriptions()).filter((s) => s.Endpoint?.endsWith(":sfu-config-victim")),
      [],
      "the orphan's subscription is gone too",
    );
    const swept = (await Promise.all(survivors.map((p) => p.metric("sfu_agent_queue_orphans_deleted_total")))).reduce(
      (a, b) => a + b,
      0,
    );
    assert.equal(swept, 1, "exactly one survivor deleted it");
    // the survivors are untouched
    assert.deepEqual(await f.listQueues(), ["sfu-config-sfu-1", "sfu-config-sfu-2"]);
    // SFU_AGENT_AWS_CALL_LOG recorded the child's AWS calls (used by the least-privilege test)
    const calls = await calledSoFar();
    assert.ok(calls.has("sqs:CreateQueue") && calls.has("sns:Subscribe") && calls.has("sqs:ReceiveMessage"));
  });

  it("survives fauxqs stopped for 10 s and restarted empty: stays ready, keeps watching, re-provisions", async () => {
    const [p] = survivors as [TestPod];
    const h7 = await hashOf(7);
    await f.fx.stop();
    const outageEnd = Date.now() + 10_000;
    // during the outage: still ready, and the file watch still pushes
    await p.swap(7);
    await p.sfu.waitForHash(h7);
    while (Date.now() < outageEnd) {
      assert.equal((await fetch(`${p.agent.httpUrl}/readyz`)).status, 200, "/readyz does not flap");
      await new Promise((r) => setTimeout(r, 1_000));
    }
    assert.ok((await p.metric("sfu_agent_sqs_errors_total", { operation: "ReceiveMessage" })) >= 1);
    await f.fx.restart();
    await f.createTopics();
    await until(
      async () => (await f.listQueues()).includes("sfu-config-sfu-1") && p.trigger.status().url !== null,
      15_000,
      "the queue to be re-created",
      200,
    );
    await until(
      async () => (await subscriptions()).some((s) => s.Endpoint?.endsWith(":sfu-config-sfu-1")),
      15_000,
      "the subscription to be re-created",
      200,
    );
    await f.publish(7);
    await until(() => p.agent.tracker.settlements().find((s) => s.hash === h7), 10_000, "a settlement after recovery");
    assert.equal(p.agent.tracker.settlements().find((s) => s.hash === h7)?.outcome, "applied");
    assert.equal(p.trigger.status().receiveFailures, 0);
  });
});
