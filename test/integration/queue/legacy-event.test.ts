/**
 * The article-style hook message `{"event":"configReload","commit":"<sha>"}`
 * over fauxqs: taken as "check the mounted file now", settled with `commit`
 * as the revision (in /status and as a status event), an invalid file
 * settled `invalid`; and every log line of the queue path has unique keys.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseStrictJson } from "../../helpers/strict-json.ts";
import { drainStatus, hashOf, type QueueFixture, startQueueFixture, type TestPod, until } from "./harness.ts";

describe("article-style configReload message", { timeout: 60_000 }, () => {
  let f: QueueFixture;
  let pod: TestPod;

  before(async () => {
    f = await startQueueFixture();
    pod = await f.startPod("sfu-legacy", { queue: { statusTopicArn: f.statusTopicArn } });
    await pod.sfu.waitForHash(await hashOf(1));
  });
  after(async () => {
    await f?.dispose();
  });

  it("settles the mounted file's hash with commit as the revision", async () => {
    const h2 = await hashOf(2);
    await pod.swap(2);
    await pod.sfu.waitForHash(h2);
    await f.publish(JSON.stringify({ event: "configReload", commit: "9a0b1c2d" }));
    const s = await until(
      () => pod.agent.tracker.settlements().find((x) => x.revision === "9a0b1c2d"),
      10_000,
      "the settlement",
    );
    assert.deepEqual([s.hash, s.outcome, s.version], [h2, "applied", 2]);
    assert.equal(pod.agent.status().desired?.revision, "9a0b1c2d");
    assert.equal(await pod.metric("sfu_agent_queue_messages_total", { result: "legacy" }), 1);
    assert.equal(await pod.metric("sfu_agent_queue_messages_total", { result: "malformed" }), 0);
    const events = await until(
      async () => {
        const got = await drainStatus(f);
        return got.find((e) => e["revision"] === "9a0b1c2d");
      },
      10_000,
      "the status event",
    );
    assert.equal(events["outcome"], "applied");
  });

  it("settles invalid while the mounted file is invalid", async () => {
    await pod.writer.write({ "config.yaml": "schemaVersion: 1\nserver: [\n" });
    await until(() => pod.agent.tracker.lastError()?.code !== undefined, 10_000, "the invalid read");
    await f.publish(JSON.stringify({ event: "configReload", commit: "deadbeef" }));
    const s = await until(
      () => pod.agent.tracker.settlements().find((x) => x.revision === "deadbeef"),
      10_000,
      "the settlement",
    );
    assert.equal(s.outcome, "invalid");
    assert.match(s.error?.message ?? "", /config\.yaml:\d+:\d+/);
  });

  it("writes every log line with unique keys (component once)", () => {
    const queueLines = pod.logs.filter((l) => l.includes('"component":"queue"'));
    assert.ok(queueLines.length > 3, "the queue logged");
    for (const line of pod.logs) assert.doesNotThrow(() => parseStrictJson(line), line);
  });
});
