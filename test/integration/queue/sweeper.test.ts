/**
 * The orphan sweeper's ring walk against fauxqs: from its own queue it walks
 * forward, deletes stale managed queues (and their subscriptions), skips
 * unmanaged ones, and stops at the first live one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CreateTopicCommand, ListSubscriptionsByTopicCommand, SubscribeCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand, ListQueuesCommand, TagQueueCommand } from "@aws-sdk/client-sqs";
import pino from "pino";
import { Registry } from "prom-client";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { realTimers } from "../../../agent/shared/timers.ts";
import { createQueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import { OrphanSweeper } from "../../../agent/sidecar/queue/orphan-sweeper.ts";
import { TAG_HEARTBEAT, TAG_SUBSCRIPTION } from "../../../agent/sidecar/queue/per-pod-queue.ts";
import { type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";

describe("OrphanSweeper over fauxqs", { timeout: 30_000 }, () => {
  let fx: FauxqsHandle;
  let clients: AwsClients;
  let topicArn: string;
  const nowS = Math.floor(Date.now() / 1000);

  const queue = async (name: string, heartbeatAgeS: number | null) => {
    const url = (
      await clients.sqs.send(
        new CreateQueueCommand({
          QueueName: name,
          ...(heartbeatAgeS === null ? {} : { tags: { [TAG_HEARTBEAT]: String(nowS - heartbeatAgeS) } }),
        }),
      )
    ).QueueUrl!;
    const arn = (await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] })))
      .Attributes!.QueueArn!;
    const sub = await clients.sns.send(
      new SubscribeCommand({ TopicArn: topicArn, Protocol: "sqs", Endpoint: arn, ReturnSubscriptionArn: true }),
    );
    if (heartbeatAgeS !== null) {
      await clients.sqs.send(
        new TagQueueCommand({ QueueUrl: url, Tags: { [TAG_SUBSCRIPTION]: sub.SubscriptionArn! } }),
      );
    }
  };
  const names = async () =>
    ((await clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: "p-" }))).QueueUrls ?? [])
      .map((u) => u.slice(u.lastIndexOf("/") + 1))
      .sort();
  const sweeper = (own: string, maxChecks = 10) => {
    const registry = new Registry();
    return {
      registry,
      s: new OrphanSweeper({
        sqs: clients.sqs,
        sns: clients.sns,
        logger: pino({ level: "silent" }),
        metrics: createQueueMetrics(registry),
        timers: realTimers,
        prefix: "p-",
        ownName: own,
        options: { intervalMs: 60_000, staleAfterMs: 600_000, maxChecks },
      }),
    };
  };

  before(async () => {
    fx = await startFauxqs();
    clients = fx.clients();
    topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "t" }))).TopicArn!;
    // ring: a (self, live) -> b (dead) -> c (unmanaged) -> d (dead) -> e (live) -> f (dead) -> back to a
    await queue("p-a", 10);
    await queue("p-b", 3600);
    await queue("p-c", null);
    await queue("p-d", 3600);
    await queue("p-e", 10);
    await queue("p-f", 3600);
  });
  after(async () => {
    clients?.destroy();
    await fx?.stop();
  });

  it("walks from its own queue to the next live one, deleting the stale managed queues on the way", async () => {
    const { s } = sweeper("p-a");
    const r = await s.sweepOnce();
    assert.deepEqual(r.deleted, ["p-b", "p-d"]);
    assert.equal(r.checked, 4, "b, c, d, then e (live) ends the walk");
    assert.deepEqual(await names(), ["p-a", "p-c", "p-e", "p-f"], "c is not ours and is kept; f is e's job");
    const subs =
      (await clients.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }))).Subscriptions ?? [];
    assert.equal(subs.length, 4, "the deleted queues' subscriptions are gone");
  });

  it("wraps around the ring, and a sweep of the next live agent removes the rest", async () => {
    const { s, registry } = sweeper("p-e");
    const r = await s.sweepOnce();
    assert.deepEqual(r.deleted, ["p-f"]);
    assert.deepEqual(await names(), ["p-a", "p-c", "p-e"]);
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === "sfu_agent_queue_orphans_deleted_total");
    assert.equal(m?.values[0]?.value, 1);
  });

  it("reads at most maxChecks queues per sweep", async () => {
    await queue("p-g", 3600);
    await queue("p-h", 3600);
    const r = await sweeper("p-e", 1).s.sweepOnce();
    assert.equal(r.checked, 1);
    assert.deepEqual(r.deleted, ["p-g"]);
  });
});
