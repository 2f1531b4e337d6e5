/**
 * Per-pod mode end to end over fauxqs: real agents (file watch, push server,
 * store, queue trigger) with fake SFUs: how a reload event settles (applied
 * before or after the swap, superseded, timeout, rejected), duplicates, and
 * malformed bodies.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { drainStatus, hashOf, type QueueFixture, startQueueFixture, type TestPod, until } from "./harness.ts";

describe("per-pod queues over fauxqs", { timeout: 90_000 }, () => {
  let f: QueueFixture;
  let pods: TestPod[];

  before(async () => {
    f = await startQueueFixture();
    pods = await Promise.all(["sfu-a", "sfu-b", "sfu-c"].map((n) => f.startPod(n)));
    const h1 = await hashOf(1);
    for (const p of pods) await p.sfu.waitForHash(h1);
  });
  after(async () => {
    await f?.dispose();
  });

  it("creates one queue per pod, subscribed to the topic", async () => {
    assert.deepEqual(await f.listQueues(), ["sfu-config-sfu-a", "sfu-config-sfu-b", "sfu-config-sfu-c"]);
    for (const p of pods) {
      const status = p.agent.status() as unknown as { queue: { mode: string; url: string } };
      assert.equal(status.queue.mode, "per-pod");
      assert.match(status.queue.url, /sfu-config-sfu-[abc]$/);
    }
  });

  it("one publish reaches all three pods and each settles applied (file already swapped)", async () => {
    const h2 = await hashOf(2);
    await Promise.all(pods.map((p) => p.swap(2)));
    for (const p of pods) await p.sfu.waitForHash(h2);
    await f.publish(2);
    for (const p of pods) {
      await until(() => p.agent.tracker.settlements().some((s) => s.hash === h2), 10_000, `${p.name} to settle`);
      const s = p.agent.tracker.settlements().find((x) => x.hash === h2);
      assert.equal(s?.outcome, "applied");
      assert.equal(s?.revision, "rev-2");
      assert.equal(await p.metric("sfu_agent_settlements_total", { outcome: "applied" }), 1);
    }
    const statuses = await until(
      async () => {
        const got = await drainStatus(f);
        return got.length >= 3 ? got : null;
      },
      10_000,
      "three status events",
    );
    assert.ok(statuses);
    assert.deepEqual(statuses.map((s) => s.pod).sort(), ["sfu-a", "sfu-b", "sfu-c"]);
    for (const s of statuses) {
      assert.equal(s.type, "sfu-config.status");
      assert.equal(s.hash, h2);
      assert.equal(s.outcome, "applied");
    }
  });

  it("an event 5 s before the swap settles applied after the swap, and its message is not deleted early", async () => {
    const [a] = pods as [TestPod];
    const h3 = await hashOf(3);
    await f.publish(3);
    await until(() => a.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await new Promise((r) => setTimeout(r, 5_000));
    assert.equal(
      a.agent.tracker.settlements().some((s) => s.hash === h3),
      false,
      "not settled before the swap",
    );
    assert.deepEqual(
      await f.depth(a.trigger.status().url!),
      { visible: 0, inflight: 1 },
      "held in flight, not deleted",
    );
    assert.equal(a.agent.status().desired?.hash, await hashOf(2));
    await a.swap(3);
    const pushed = await a.sfu.waitForHash(h3);
    assert.equal(pushed.revision, "rev-3", "the push carries the event's revision");
    await until(() => a.agent.tracker.settlements().find((s) => s.hash === h3), 10_000, "settlement");
    assert.equal(a.agent.tracker.settlements().find((s) => s.hash === h3)?.outcome, "applied");
    await until(
      async () => (await f.depth(a.trigger.status().url!)).inflight === 0,
      5_000,
      "the message to be deleted",
    );
    // the other pods never got the file: they are still waiting (settled below by the superseded case)
  });

  it("a newer swap during the wait settles superseded", async () => {
    const [, b, c] = pods as [TestPod, TestPod, TestPod];
    const h3 = await hashOf(3);
    // b and c hold the event for 3 since the previous test; their files jump to 4.
    for (const p of [b, c]) {
      assert.equal(p.trigger.status().pendingEvents, 1);
      await p.swap(4);
      await until(() => p.agent.tracker.settlements().find((s) => s.hash === h3), 10_000, "settlement");
      const s = p.agent.tracker.settlements().find((x) => x.hash === h3);
      assert.equal(s?.outcome, "superseded");
      assert.equal(s?.error?.code, "SUPERSEDED");
      // The superseding config is then applied: the error moves to previousError.
      await until(() => p.agent.store.applied()?.hash === p.agent.store.desired()?.hash, 10_000, "4 applied");
      const st = p.agent.status();
      assert.equal(st.lastError, null);
      assert.equal(st.previousError?.code, "SUPERSEDED");
      assert.equal(await p.metric("sfu_agent_settlements_total", { outcome: "superseded" }), 1);
      assert.equal(p.trigger.status().pendingEvents, 0);
    }
  });

  it("the same event delivered twice (and a second PostSync) cause one push", async () => {
    const [, , c] = pods as [TestPod, TestPod, TestPod];
    const h5 = await hashOf(5);
    const before = c.sfu.received.length;
    const event = (await f.publish(5)) as Record<string, unknown>;
    await f.publish(5, { issuedAt: event.issuedAt }); // a byte-identical duplicate
    await until(() => c.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await c.swap(5);
    await c.sfu.waitForHash(h5);
    await until(() => c.agent.tracker.settlements().find((s) => s.hash === h5), 10_000, "settlement");
    await f.publish(5); // PostSync firing again with no change
    await until(
      () => c.agent.tracker.settlements().filter((s) => s.hash === h5).length === 2,
      10_000,
      "the no-change event to settle",
    );
    const pushesOf5 = c.sfu.received.slice(before).filter((r) => r.message.hash === h5);
    assert.equal(pushesOf5.length, 1, "one push of the hash");
    assert.deepEqual(
      c.agent.tracker
        .settlements()
        .filter((s) => s.hash === h5)
        .map((s) => s.outcome),
      ["applied", "applied"],
    );
    assert.ok((await c.metric("sfu_agent_queue_messages_total", { result: "duplicate" })) >= 1);
  });

  it("a malformed body is deleted and counted, and the loop stays alive", async () => {
    const [a] = pods as [TestPod];
    const url = a.trigger.status().url!;
    // a holds the two copies of the event for 5 (its file never gets 5): they stay in flight
    const held = await f.depth(url);
    assert.equal(a.trigger.status().pendingEvents, 1);
    await f.clients.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "{not json" }));
    await f.clients.sqs.send(
      new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify({ type: "sfu-config.reload" }) }),
    );
    await until(
      async () => (await a.metric("sfu_agent_queue_messages_total", { result: "malformed" })) === 2,
      10_000,
      "malformed count",
    );
    await until(
      async () => {
        const d = await f.depth(url);
        return d.visible === 0 && d.inflight === held.inflight;
      },
      5_000,
      "the malformed messages to be deleted",
    );
    // still alive: a new event for the file's current hash settles
    const h3 = await hashOf(3);
    const settledBefore = a.agent.tracker.settlements().length;
    await f.publish(3);
    await until(
      () => a.agent.tracker.settlements().length > settledBefore,
      10_000,
      "a settlement after the malformed bodies",
    );
    assert.equal(a.agent.tracker.settlements().at(-1)?.hash, h3);
    assert.equal(a.agent.tracker.settlements().at(-1)?.outcome, "applied");
  });

  it("an event for a hash that never appears settles timeout after --propagation-timeout", async () => {
    const p = await f.startPod("sfu-timeout", { queue: { propagationTimeoutMs: 1_500 } });
    const h9 = await hashOf(9);
    const url = p.trigger.status().url!;
    await f.publish(9);
    await until(() => p.agent.tracker.settlements().find((s) => s.hash === h9), 10_000, "timeout settlement");
    const s = p.agent.tracker.settlements().find((x) => x.hash === h9);
    assert.equal(s?.outcome, "timeout");
    assert.equal(s?.error?.code, "PROPAGATION_TIMEOUT");
    assert.equal(await p.metric("sfu_agent_settlements_total", { outcome: "timeout" }), 1);
    await until(async () => (await f.depth(url)).inflight === 0, 5_000, "the message to be deleted");
    const ready = await fetch(`${p.agent.httpUrl}/readyz`);
    assert.equal(ready.status, 200, "a timeout does not make the agent unready");
    await p.stop();
  });

  it("a NACK settles rejected and is published as such", async () => {
    const p = await f.startPod("sfu-nack", { reply: { kind: "nack", code: "RESTART_REQUIRED" } });
    await drainStatus(f, 1);
    const h6 = await hashOf(6);
    await f.publish(6);
    await until(() => p.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await p.swap(6);
    await until(() => p.agent.tracker.settlements().find((s) => s.hash === h6), 10_000, "settlement");
    const s = p.agent.tracker.settlements().find((x) => x.hash === h6);
    assert.equal(s?.outcome, "rejected");
    assert.equal(s?.error?.code, "RESTART_REQUIRED");
    const events = await until(
      async () => {
        const got = (await drainStatus(f)).filter((e) => e.pod === "sfu-nack" && e.hash === h6);
        return got.length > 0 ? got : null;
      },
      10_000,
      "the rejected status event",
    );
    assert.equal(events?.[0]?.outcome, "rejected");
    await p.stop();
  });
});
