/**
 * No credential from the config reaches the queue path's outputs: logs,
 * status events, /metrics and /status, through a full reload settled over
 * fauxqs (and an invalid variant, whose error is reported).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { drainStatus, type QueueFixture, startQueueFixture, type TestPod, until } from "./harness.ts";

const SECRET = "TURN-S3CRET-do-not-leak-4711";

function withCredential(n: number, valid = true): string {
  return `schemaVersion: 1
server: { port: 8080 }
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1
  turnServers:
    - urls: ["turn:turn.example.com:3478"]
      username: user1
      credential: ${SECRET}
limits: { maxRooms: ${n} }
${valid ? "" : "bogusKey: 1\n"}`;
}

describe("secrets on the SNS/SQS path", { timeout: 60_000 }, () => {
  let f: QueueFixture;
  let pod: TestPod;

  before(async () => {
    f = await startQueueFixture();
    pod = await f.startPod("sfu-secret");
  });
  after(async () => {
    await f?.dispose();
  });

  it("never shows the TURN credential in logs, status events, /metrics or /status", async () => {
    const loaded = await loadConfigText(withCredential(11), { checkFiles: false });
    assert.ok(loaded.ok);
    await f.publish(11, { hash: loaded.hash });
    await until(() => pod.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await pod.writer.write({ "config.yaml": withCredential(11) });
    await until(() => pod.agent.tracker.settlements().some((s) => s.hash === loaded.hash), 10_000, "settlement");
    assert.equal(pod.agent.tracker.settlements().find((s) => s.hash === loaded.hash)?.outcome, "applied");
    // an invalid file while another event waits: settles invalid with the loader's error
    await f.publish(12, { hash: `sha256:${"1".repeat(64)}` });
    await until(() => pod.trigger.status().pendingEvents === 1, 10_000, "the second event to be held");
    await pod.writer.write({ "config.yaml": withCredential(12, false) });
    await until(
      () => pod.agent.tracker.settlements().some((s) => s.outcome === "invalid"),
      10_000,
      "invalid settlement",
    );
    const events = await until(
      async () => {
        const got = await drainStatus(f, 2);
        return got.length >= 2 ? got : null;
      },
      10_000,
      "status events",
    );
    const texts = {
      logs: pod.logs.join("\n"),
      statusEvents: JSON.stringify(events),
      metrics: await (await fetch(`${pod.agent.httpUrl}/metrics`)).text(),
      status: await (await fetch(`${pod.agent.httpUrl}/status`)).text(),
    };
    assert.ok(texts.statusEvents.includes('"outcome":"invalid"'), texts.statusEvents);
    for (const [where, text] of Object.entries(texts)) assert.equal(text.includes(SECRET), false, `secret in ${where}`);
  });
});
