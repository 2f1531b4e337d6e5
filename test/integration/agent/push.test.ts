/**
 * The agent end to end over real sockets and a real watched directory:
 * kubelet-style swaps, the push protocol, /status, /readyz and /metrics.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { configText, hashOf, sleep, trackedStarters, until } from "./harness.ts";

const { agent, sfu } = trackedStarters();

describe("agent push", { timeout: 60_000 }, () => {
  test("start, connect, get version 1, ack; status, readyz and metrics follow", async () => {
    const a = await agent();
    assert.equal((await a.get("/healthz")).status, 200);
    assert.equal((await a.get("/readyz")).status, 200);
    const s = await sfu({ url: a.agent.pushUrl, name: "sfu-server", version: "0.1.0" });
    const m = await s.waitForConfig(() => true);
    assert.equal(m.nonce, 1);
    assert.equal(m.version, 1);
    assert.equal(m.hash, await hashOf(configText(1)));
    assert.equal(m.revision, null);
    assert.equal(m.schemaVersion, 1);
    assert.equal((m.config as { limits: { maxRooms: number } }).limits.maxRooms, 1);
    const st = await until(async () => {
      const v = await a.status();
      return v.applied ? v : null;
    });
    assert.equal(st.pod, "test-pod");
    assert.deepEqual(st.desired, { version: 1, hash: m.hash, revision: null });
    assert.equal(st.applied.version, 1);
    assert.equal(st.applied.hash, m.hash);
    assert.equal(st.lastError, null);
    assert.deepEqual(st.sfu, { connected: true, name: "sfu-server", version: "0.1.0" });
    assert.deepEqual(st.queue, { mode: "none", url: null });
    assert.equal(st.settlements.at(-1).outcome, "applied");
    const metrics = (await a.get("/metrics")).text;
    assert.match(metrics, /^sfu_agent_desired_version 1$/m);
    assert.match(metrics, /^sfu_agent_applied_version 1$/m);
    assert.match(metrics, /^sfu_agent_sfu_connected 1$/m);
    assert.match(metrics, /^sfu_agent_reloads_total\{outcome="applied"\} 1$/m);
    assert.match(metrics, /^sfu_agent_push_latency_seconds_count 1$/m);
    assert.match(metrics, /^sfu_agent_last_success_timestamp_seconds [1-9]/m);
    assert.equal(s.received.length, 1);
  });

  test("atomic swap -> version 2 pushed (within about a second of the rename)", async (t) => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl });
    await s.waitForConfig((m) => m.version === 1);
    const { renamedAt } = await a.writer.write({ "config.yaml": configText(2) });
    const m = await s.waitForConfig((x) => x.version === 2, 1_000);
    assert.equal(m.hash, await hashOf(configText(2)));
    assert.equal(m.nonce, 2);
    const latency = s.received.at(-1)!.at - renamedAt;
    t.diagnostic(`rename -> config received: ${latency.toFixed(2)} ms`);
    const metrics = (await a.get("/metrics")).text;
    assert.match(metrics, /^sfu_agent_watch_events_total\{kind="swap"\} [1-9]/m);
  });

  test("invalid swap: nothing pushed, /status shows line:column, last valid stays; the fix is pushed", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl });
    await s.waitForConfig((m) => m.version === 1);
    await until(async () => (await a.status()).applied);
    const bad = configText(5).replace("codecs: [vp8, opus]", "codecs: [vp8, opus, mp3]");
    await a.writer.write({ "config.yaml": bad });
    const st = await until(async () => {
      const v = await a.status();
      return v.lastError ? v : null;
    });
    assert.equal(st.lastError.code, "INVALID_CONFIG");
    assert.match(st.lastError.message, /^config\.yaml:6:\d+: \/webrtc\/codecs\/2: /);
    assert.equal(st.desired.version, 1);
    assert.equal(st.applied.version, 1);
    assert.equal(st.source.valid, false);
    assert.equal(st.settlements.at(-1).outcome, "invalid");
    assert.equal((await a.get("/readyz")).status, 200, "the last valid config keeps the agent ready");
    assert.match((await a.get("/metrics")).text, /^sfu_agent_invalid_configs_total 1$/m);
    await sleep(300);
    assert.equal(s.received.length, 1, "nothing pushed for an invalid file");
    assert.ok(a.logs.some((l) => l.includes("config refused") && l.includes("config.yaml:6:")));
    await a.writer.write({ "config.yaml": configText(6) });
    const fixed = await s.waitForConfig((m) => m.version === 2);
    assert.equal(fixed.hash, await hashOf(configText(6)));
  });

  test("NACK: reported, never re-sent on the same connection (3 s window); re-sent on a new connection", async () => {
    const a = await agent({ ackTimeoutMs: 500 });
    const s = await sfu({
      url: a.agent.pushUrl,
      reply: { kind: "nack", code: "RESTART_REQUIRED", message: "server.port changes need a restart" },
    });
    await s.waitForConfig(() => true);
    await a.writer.write({ "config.yaml": configText(1) }); // same content swapped again: no push
    a.agent.source.trigger("resync");
    await sleep(3_000);
    assert.equal(s.received.length, 1, "a NACKed hash is pushed once per connection");
    assert.equal(s.open, true);
    const st = await a.status();
    assert.equal(st.lastError.code, "RESTART_REQUIRED");
    assert.equal(st.applied, null);
    assert.equal(st.settlements.at(-1).outcome, "rejected");
    assert.match((await a.get("/metrics")).text, /^sfu_agent_reloads_total\{outcome="rejected"\} 1$/m);
    await s.close();
    const s2 = await sfu({ url: a.agent.pushUrl });
    const again = await s2.waitForConfig(() => true);
    assert.equal(again.hash, s.received[0]!.message.hash);
    assert.equal(again.nonce, 1, "nonces start over per connection");
  });

  test("SFU reconnect -> the current config is re-sent", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl, reply: { kind: "disconnect" } });
    const first = await s.waitForConfig(() => true);
    await s.closed;
    const s2 = await sfu({ url: a.agent.pushUrl });
    const again = await s2.waitForConfig(() => true);
    assert.equal(again.hash, first.hash);
    assert.equal(again.version, first.version);
    await until(async () => (await a.status()).applied?.version === 1);
  });

  test("hello.applied equal to the desired hash -> no push; versions continue from hello.applied", async () => {
    const a = await agent();
    const hash = await hashOf(configText(1));
    const s = await sfu({ url: a.agent.pushUrl, applied: { version: 7, hash } });
    await sleep(400);
    assert.equal(s.received.length, 0);
    const st = await a.status();
    assert.deepEqual([st.desired.version, st.applied.version], [7, 7]);
    await a.writer.write({ "config.yaml": configText(2) });
    const m = await s.waitForConfig(() => true);
    assert.equal(m.version, 8);
  });

  test("hello.applied with another hash and a higher version -> pushed above it", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl, applied: { version: 41, hash: `sha256:${"0".repeat(64)}` } });
    const m = await s.waitForConfig(() => true);
    assert.equal(m.version, 42);
  });

  test("latest wins while a push is unanswered; stale replies are ignored", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl, reply: { kind: "stall" } });
    const v1 = await s.waitForConfig(() => true);
    for (const n of [2, 3, 4]) {
      await a.writer.write({ "config.yaml": configText(n) });
      await until(async () => (await a.status()).desired.version === n);
    }
    assert.equal(s.received.length, 1, "nothing sent while the first push is unanswered");
    s.setReply({ kind: "ack" });
    s.ack(v1);
    const next = await s.waitForConfig((m) => m.nonce === 2);
    assert.equal(next.version, 4, "only the newest pending config is pushed");
    assert.equal(next.hash, await hashOf(configText(4)));
    s.ack(v1); // stale: ignored, connection stays open
    await until(async () => (await a.status()).applied?.version === 4);
    await sleep(100);
    assert.equal(s.open, true);
    assert.equal(s.received.length, 2);
    const outcomes = (await a.status()).settlements.map((x: { outcome: string }) => x.outcome);
    // v1 was still unanswered when v2 became desired: superseded, even though it was acked later.
    assert.deepEqual(outcomes, ["superseded", "superseded", "superseded", "applied"]);
  });

  test("ack timeout is reported once, without a resend loop; a newer config is still pushed", async () => {
    const a = await agent({ ackTimeoutMs: 300 });
    const s = await sfu({ url: a.agent.pushUrl, reply: { kind: "stall" } });
    await s.waitForConfig(() => true);
    await sleep(1_200);
    assert.equal(s.received.length, 1);
    const st = await a.status();
    assert.equal(st.lastError.code, "ACK_TIMEOUT");
    assert.equal(st.settlements.at(-1).outcome, "timeout");
    assert.match((await a.get("/metrics")).text, /^sfu_agent_reloads_total\{outcome="timeout"\} 1$/m);
    s.setReply({ kind: "ack" });
    await a.writer.write({ "config.yaml": configText(2) });
    const m = await s.waitForConfig((x) => x.version === 2);
    assert.equal(m.nonce, 2);
  });

  test("50 swaps in 1 s -> the SFU ends on the last one after far fewer than 50 pushes", async (t) => {
    const a = await agent();
    // An SFU that takes 100 ms to apply each config, as a real one may.
    const s = await sfu({ url: a.agent.pushUrl, replyDelayMs: 100 });
    await s.waitForConfig(() => true);
    for (let n = 2; n <= 51; n++) {
      await a.writer.write({ "config.yaml": configText(n) });
      await sleep(20);
    }
    const last = await hashOf(configText(51));
    await s.waitForHash(last, 5_000);
    await until(async () => (await a.status()).applied?.hash === last);
    await sleep(300);
    const pushes = s.received.length - 1;
    t.diagnostic(`50 swaps -> ${pushes} pushes`);
    assert.ok(pushes < 25, `expected far fewer than 50 pushes, got ${pushes}`);
    assert.equal(s.received.at(-1)!.message.hash, last);
    const versions = s.received.map((r) => r.message.version);
    assert.deepEqual(
      versions,
      [...versions].sort((x, y) => x - y),
      "versions only increase",
    );
  });

  test("agent restart -> versions never go backwards for the SFU", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl });
    await s.waitForConfig(() => true);
    for (const n of [2, 3]) {
      await a.writer.write({ "config.yaml": configText(n) });
      await s.waitForConfig((m) => m.version === n);
    }
    await until(async () => (await a.status()).applied?.version === 3);
    await a.stop();
    await s.closed;
    assert.deepEqual(s.applied?.version, 3);
    // Same directory, same content: the new agent starts at version 1 internally.
    const b = await agent({ dir: a.dir, initial: null });
    const s2 = await sfu({ url: b.agent.pushUrl, applied: s.applied });
    await sleep(300);
    assert.equal(s2.received.length, 0, "the SFU already runs this hash");
    await b.writer.write({ "config.yaml": configText(9) });
    const m = await s2.waitForConfig(() => true);
    assert.equal(m.version, 4);
    await b.stop();
    // A new agent whose file changed while it was down.
    await b.writer.write({ "config.yaml": configText(10) });
    const c = await agent({ dir: a.dir, initial: null });
    const s3 = await sfu({ url: c.agent.pushUrl, applied: { version: 4, hash: m.hash } });
    const m2 = await s3.waitForConfig(() => true);
    assert.equal(m2.version, 5);
    assert.equal(m2.hash, await hashOf(configText(10)));
  });

  test("plain file writes (no symlinks) are coalesced and pushed", async () => {
    const a = await agent({ initial: null });
    await writeFile(join(a.dir, "config.yaml"), configText(1));
    a.agent.source.trigger("file");
    const s = await sfu({ url: a.agent.pushUrl });
    await until(async () => (await a.status()).desired);
    await s.waitForConfig(() => true);
    for (let n = 2; n <= 6; n++) await writeFile(join(a.dir, "config.yaml"), configText(n));
    const m = await s.waitForHash(await hashOf(configText(6)));
    assert.ok(m.version >= 2);
  });

  test("not ready and nothing pushed until a valid config exists", async () => {
    const a = await agent({ initial: null, source: { notFoundRetries: 1, notFoundRetryMs: 10 } });
    const r = await a.get("/readyz");
    assert.equal(r.status, 503);
    assert.match(r.text, /no valid config/);
    const st = await a.status();
    assert.equal(st.desired, null);
    assert.equal(st.lastError.code, "NOT_FOUND");
    const s = await sfu({ url: a.agent.pushUrl });
    await sleep(200);
    assert.equal(s.received.length, 0);
    await a.writer.write({ "config.yaml": configText(3) });
    const m = await s.waitForConfig(() => true);
    assert.equal(m.version, 1);
    assert.equal((await a.get("/readyz")).status, 200);
  });
});
