/**
 * The driver's status-queue source (agent/hook/driver-events.ts) takes in
 * a health report only when its counters can be true together
 * (protocol/health-checks.ts): a report with more failures than joins, or
 * absurd counts, is dropped (counted, deleted), so a rollout never judges a
 * pod on it. Real SQS through fauxqs.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CreateQueueCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { StatusQueueSource } from "../../../agent/hook/driver-events.ts";
import { realTimers } from "../../../agent/shared/timers.ts";
import { configHash } from "../../../protocol/hash.ts";
import { type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { healthReport } from "../../helpers/fleet-sim.ts";

const HASH = configHash({ candidate: 1 });

describe("driver events: health reports", { timeout: 30_000 }, () => {
  let fx: FauxqsHandle;
  let clients: ReturnType<FauxqsHandle["clients"]>;
  let queueUrl: string;
  before(async () => {
    fx = await startFauxqs();
    clients = fx.clients();
    const q = await clients.sqs.send(new CreateQueueCommand({ QueueName: "driver-health" }));
    queueUrl = q.QueueUrl as string;
  });
  after(async () => {
    clients?.destroy();
    await fx?.stop();
  });

  const event = (pod: string, counters: Record<string, number>) =>
    healthReport({
      pod,
      rank: 0.1,
      hash: HASH,
      stage: "canary",
      counters: {
        since: "2026-12-07T08:00:00.000Z",
        joins: 10,
        joinFailures: 1,
        iceConnected: 8,
        iceFailures: 1,
        ...counters,
      },
    });

  it("drops contradictory or absurd counters and keeps a consistent report", async () => {
    for (const e of [
      event("good", {}),
      event("more-failures-than-joins", { joins: 1, joinFailures: 5, iceConnected: 0, iceFailures: 0 }),
      event("more-ice-verdicts-than-joins", { joins: 2, joinFailures: 0, iceConnected: 2, iceFailures: 2 }),
      event("absurd", { joins: 2 ** 45 }),
    ]) {
      await clients.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(e) }));
    }
    const source = new StatusQueueSource({
      sqs: clients.sqs,
      queueUrl,
      timers: realTimers,
      notBefore: Date.now() - 60_000,
      rolloutId: "r1",
      hash: HASH,
      waitTimeSeconds: 1,
    });
    const got: string[] = [];
    const deadline = Date.now() + 10_000;
    while (source.counters.messages < 4 && Date.now() < deadline) {
      for (const e of await source.next(Date.now() + 1_500)) got.push(e.pod);
    }
    assert.deepEqual(got, ["good"]);
    assert.equal(source.counters.dropped, 3);
    assert.equal(source.counters.deletes, 4, "dropped reports are deleted, not redelivered");
  });
});
