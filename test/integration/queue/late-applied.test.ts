/**
 * Over fauxqs: a reload event whose config the SFU nacks RESTART_REQUIRED,
 * then takes at its next boot (reported in hello.applied), settles again as
 * applied, and the status topic says so (what `notify --wait` reads).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { drainStatus, hashOf, type QueueFixture, startQueueFixture, type TestPod, until } from "./harness.ts";

describe("a rejected config applied at the SFU's next boot", { timeout: 60_000 }, () => {
  let f: QueueFixture;
  let pod: TestPod;
  let reborn: FakeSfu | null = null;

  before(async () => {
    f = await startQueueFixture();
    pod = await f.startPod("sfu-late", { queue: { statusTopicArn: f.statusTopicArn } });
    await pod.sfu.waitForHash(await hashOf(1));
  });
  after(async () => {
    await reborn?.close();
    await f?.dispose();
  });

  it("settles rejected, then applied with the same revision, each published as a status event", async () => {
    const h3 = await hashOf(3);
    pod.sfu.setReply({ kind: "nack", code: "RESTART_REQUIRED", message: "server.port changed" });
    await f.publish(3);
    await pod.swap(3);
    await until(() => pod.agent.tracker.settlements().some((s) => s.hash === h3), 10_000, "rejected");
    assert.equal(pod.agent.status().lastError?.code, "RESTART_REQUIRED");
    const version = pod.agent.store.desired()?.version as number;
    await pod.sfu.close();
    reborn = await FakeSfu.connect({ url: pod.agent.pushUrl, applied: { version, hash: h3 } });
    await until(() => pod.agent.tracker.settlements().filter((s) => s.hash === h3).length === 2, 10_000, "applied");
    const st = pod.agent.status();
    assert.deepEqual(
      st.settlements.filter((s) => s.hash === h3).map((s) => [s.revision, s.outcome]),
      [
        ["rev-3", "rejected"],
        ["rev-3", "applied"],
      ],
    );
    assert.equal(st.lastError, null);
    assert.equal(reborn.received.length, 0, "nothing pushed: the SFU runs it");
    const seen: Record<string, unknown>[] = [];
    await until(
      async () => {
        seen.push(...(await drainStatus(f)).filter((e) => e["hash"] === h3));
        return seen.length >= 2;
      },
      15_000,
      "two status events",
    );
    assert.deepEqual(
      seen.map((e) => e["outcome"]),
      ["rejected", "applied"],
    );
  });
});
