/**
 * Hot config under live media, NACK codes, and agent protocol violations,
 * against real werift peers and the scripted fake agent.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CloseCode, configHash } from "../../../protocol/index.ts";
import { joinVideoRoom, WeriftTestClient } from "../../helpers/werift-client.ts";
import { freePort, type SfuUnderTest, sleep, startWithAgent, testConfig } from "./harness.ts";

const SECRET = "s3cr3t-turn-credential-value";

describe("hot reload under media", { timeout: 90_000 }, () => {
  let sfu: SfuUnderTest;
  let dir: string;
  let pub: WeriftTestClient;
  const subs: WeriftTestClient[] = [];
  const extra: WeriftTestClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-hot-"));
    await writeFile(join(dir, "turn"), `${SECRET}\n`);
    sfu = await startWithAgent(testConfig(), { secretsDir: dir });
    const room = await joinVideoRoom(sfu.wsUrl, "live", 2);
    pub = room.pub;
    subs.push(...room.subs);
  });

  after(async () => {
    for (const c of [pub, ...subs, ...extra]) await c?.close();
    await sfu?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("acks 20 versions while streaming: no gap > 500 ms, no renegotiation; joiners get the new settings", async () => {
    const publishing = pub.startPublishing({ packetsPerSecond: 150 });
    try {
      const tracks = await Promise.all(subs.map(async (s) => (await s.waitForTracks(1, "video"))[0]!));
      await Promise.all(subs.map((s, i) => s.waitFor(() => tracks[i]!.packets > 20, "media flowing")));
      const offersBefore = [pub, ...subs].map((c) => c.offers);
      const sfuOffersBefore = [...sfu.server.rooms.rooms.get("live")!.participants.values()].map((p) => p.offersSent);
      for (const c of subs) c.resetGaps();
      const codecSets = [
        ["vp8", "opus"],
        ["vp8", "vp9", "opus"],
        ["vp9", "vp8", "opus", "pcmu"],
        ["vp9", "h264", "opus"],
      ];
      const levels = ["warn", "info", "debug", "error"];
      const turn = [{ urls: ["turn:turn.example.com:3478"], username: "user1", credentialFile: join(dir, "turn") }];
      let last: Record<string, unknown> = {};
      for (let i = 0; i < 20; i++) {
        const base = 43000 + (i % 5) * 200;
        last = testConfig({
          codecs: codecSets[i % codecSets.length]!,
          logLevel: levels[i % levels.length]!,
          portRange: [base, base + 199],
          ...(i % 2 === 1 ? { turn } : {}),
        });
        const reply = await sfu.agent!.pushAndWait(last);
        assert.equal(reply.type, "ack", `version ${i + 2}: ${JSON.stringify(reply)}`);
        await sleep(40);
      }
      await sleep(600);
      for (const [i, t] of tracks.entries()) {
        assert.ok(t.maxGapSinceResetMs < 500, `subscriber ${i}: gap of ${t.maxGapSinceResetMs.toFixed(0)} ms`);
      }
      assert.deepEqual(
        [pub, ...subs].map((c) => c.offers),
        offersBefore,
        "no client saw an offer",
      );
      assert.deepEqual(
        [...sfu.server.rooms.rooms.get("live")!.participants.values()].map((p) => p.offersSent),
        sfuOffersBefore,
        "the SFU sent no offer",
      );
      assert.deepEqual(sfu.server.state.applied, { version: 21, hash: configHash(last) });
      // The last pushed config (i = 19): vp9+h264+opus (no VP8), ports 43800..43999, TURN with credentialFile.
      const status = await (await fetch(`${sfu.httpUrl}/status`)).text();
      assert.match(status, /"version":21/);
      assert.ok(!status.includes(SECRET), "status leaks the TURN credential");
      const metrics = await (await fetch(`${sfu.httpUrl}/metrics`)).text();
      assert.ok(!metrics.includes(SECRET), "metrics leak the TURN credential");
      assert.match(metrics, /sfu_config_version 21/);
      assert.ok(!sfu.logs.raw.some((l) => l.includes(SECRET)), "logs leak the TURN credential");

      // Joiner after the change: publishes with the new codec set (no VP8), uses the new port range, still receives the VP8 stream.
      const joiner = await WeriftTestClient.join({
        url: sfu.wsUrl,
        room: "live",
        name: "late",
        publish: { audio: true, video: true },
      });
      extra.push(joiner);
      assert.deepEqual(joiner.joined.config, { version: 21, hash: configHash(last) });
      assert.deepEqual(joiner.joined.iceServers, [
        { urls: ["turn:turn.example.com:3478"], username: "user1", credential: SECRET },
      ]);
      await joiner.waitPublishReady("video");
      assert.equal(joiner.publishCodecs.get("video"), "video/VP9");
      assert.equal(joiner.publishCodecs.get("audio"), "audio/OPUS");
      const [jt] = await joiner.waitForTracks(1, "video");
      assert.equal(jt!.codec, "video/VP8");
      await joiner.waitFor(() => jt!.packets > 10, "joiner receives the running stream");
      const ports = joiner.messages
        .filter((m) => m.type === "candidate" && m.candidate)
        .map((m) => Number((m.candidate as { candidate: string }).candidate.split(" ")[5]));
      assert.ok(ports.length > 0);
      for (const p of ports) assert.ok(p >= 43800 && p <= 43999, `candidate port ${p} outside the new range`);
    } finally {
      publishing.stop();
    }
  });
});

describe("config NACKs and agent protocol violations", { timeout: 60_000 }, () => {
  let sfu: SfuUnderTest;
  const cfg = (patch: Parameters<typeof testConfig>[0] = {}) => testConfig({ port: sfu.server.port!, ...patch });
  before(async () => {
    // No --port override here: server.port of the first config is the listening port.
    const port = await freePort();
    sfu = await startWithAgent(testConfig({ port }), { portOverride: null });
  });
  after(async () => {
    await sfu?.stop();
  });

  it("server.port change -> RESTART_REQUIRED, old config stays", async () => {
    const before = sfu.server.state.applied;
    const reply = await sfu.agent!.pushAndWait(testConfig({ port: sfu.server.port! + 1 }));
    assert.equal(reply.type, "nack");
    if (reply.type !== "nack") return;
    assert.equal(reply.error.code, "RESTART_REQUIRED");
    assert.equal(reply.error.path, "/server/port");
    assert.deepEqual(reply.applied, before);
    assert.deepEqual(sfu.server.state.applied, before);
  });

  it("unknown schemaVersion -> UNSUPPORTED_SCHEMA", async () => {
    const config = { ...cfg(), schemaVersion: 3 };
    const reply = await sfu.agent!.pushAndWait(config, { schemaVersion: 3 });
    assert.equal(reply.type, "nack");
    if (reply.type === "nack") assert.equal(reply.error.code, "UNSUPPORTED_SCHEMA");
  });

  it("invalid config -> INVALID_CONFIG with the JSON pointer; hash mismatch -> INVALID_CONFIG", async () => {
    const bad = cfg({ codecs: ["vp8"] });
    const r1 = await sfu.agent!.pushAndWait(bad);
    assert.equal(r1.type, "nack");
    if (r1.type === "nack") {
      assert.equal(r1.error.code, "INVALID_CONFIG");
      assert.equal(r1.error.path, "/webrtc/codecs");
    }
    const r2 = await sfu.agent!.pushAndWait(cfg(), { hash: configHash({ other: true }) });
    assert.equal(r2.type, "nack");
    if (r2.type === "nack") {
      assert.equal(r2.error.code, "INVALID_CONFIG");
      assert.match(r2.error.message, /hash mismatch/);
    }
  });

  it("logging.level applies at once", async () => {
    const r = await sfu.agent!.pushAndWait(cfg({ logLevel: "debug" }));
    assert.equal(r.type, "ack");
    const marker = sfu.logs.lines.length;
    await sfu.agent!.pushAndWait(cfg({ logLevel: "trace" }));
    // At debug, receiving the next config logs a debug line.
    assert.ok(sfu.logs.lines.slice(marker).some((l) => l.level === 20 && l.msg === "config received"));
    await sfu.agent!.pushAndWait(cfg({ logLevel: "error" }));
    const marker2 = sfu.logs.lines.length;
    await sfu.agent!.pushAndWait(cfg({ logLevel: "warn" }));
    assert.equal(sfu.logs.lines.slice(marker2).filter((l) => (l.level as number) < 50).length, 0);
  });

  it("malformed frames close the control connection with the right code; media keeps flowing; the SFU reconnects", async () => {
    const pub = await WeriftTestClient.join({
      url: sfu.wsUrl,
      room: "m",
      name: "pub",
      publish: { audio: false, video: true },
    });
    const sub = await WeriftTestClient.join({
      url: sfu.wsUrl,
      room: "m",
      name: "sub",
      publish: { audio: false, video: false },
    });
    try {
      await pub.waitPublishReady("video");
      const publishing = pub.startPublishing({ packetsPerSecond: 100 });
      const [t] = await sub.waitForTracks(1, "video");
      await sub.waitFor(() => t!.packets > 10, "media flowing");
      sub.resetGaps();
      const agent = sfu.agent!;
      const cases: [string, number][] = [
        ["{not json", CloseCode.BAD_JSON],
        [JSON.stringify({ type: "bogus" }), CloseCode.UNKNOWN_TYPE],
        [JSON.stringify({ type: "config", nonce: 1 }), CloseCode.INVALID_MESSAGE],
      ];
      for (const [frame, code] of cases) {
        const conn = agent.connectionCount - 1;
        agent.sendRaw(frame);
        await agent.waitFor(() => agent.closes.some((c) => c.conn === conn), `close of connection ${conn}`);
        assert.equal(agent.closes.find((c) => c.conn === conn)!.code, code);
        const hello = await agent.waitForHello(conn + 1);
        assert.deepEqual(hello.applied, sfu.server.state.applied, "reconnect hello reports the applied config");
      }
      // A nonce that does not increase -> 4004.
      const conn = agent.connectionCount - 1;
      const ok = await agent.pushAndWait(cfg({ logLevel: "info" }), { nonce: 5 });
      assert.equal(ok.type, "ack");
      agent.push(cfg({ logLevel: "warn" }), { nonce: 5 });
      await agent.waitFor(() => agent.closes.some((c) => c.conn === conn), "close after a stale nonce");
      assert.equal(agent.closes.find((c) => c.conn === conn)!.code, CloseCode.BAD_NONCE);
      await agent.waitForHello(conn + 1);
      // Agent gone entirely for a while: SFU keeps serving, then reconnects.
      agent.dropConnection();
      await sleep(500);
      assert.equal((await fetch(`${sfu.httpUrl}/readyz`)).status, 200);
      await agent.waitFor(() => agent.connected, "reconnect after drop");
      await sleep(300);
      publishing.stop();
      assert.ok(t!.maxGapSinceResetMs < 500, `media gap ${t!.maxGapSinceResetMs.toFixed(0)} ms`);
      assert.equal(sub.offers, 1, "no renegotiation");
    } finally {
      await pub.close();
      await sub.close();
    }
  });
});

describe("agent authentication and readiness", { timeout: 30_000 }, () => {
  it("sends the token file as a bearer token, is not ready before the first config", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-tok-"));
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, "tok-123\n");
    const sfu = await startWithAgent(null, { token: "tok-123", tokenFile });
    try {
      await sfu.agent!.waitForHello(0);
      assert.equal(sfu.agent!.authHeaders[0], "Bearer tok-123");
      const hello = sfu.agent!.received[0]!.message;
      assert.equal(hello.type, "hello");
      if (hello.type === "hello") assert.equal(hello.applied, null);
      assert.equal((await fetch(`${sfu.httpUrl}/readyz`)).status, 503);
      assert.deepEqual(await (await fetch(`${sfu.httpUrl}/status`)).json(), {
        applied: null,
        rooms: 0,
        participants: 0,
        agent: { connected: true },
        health: null,
      });
      await assert.rejects(WeriftTestClient.join({ url: sfu.wsUrl, room: "x", name: "early" }), /NOT_READY/);
      const reply = await sfu.agent!.pushAndWait(testConfig({ port: 1234 }));
      assert.equal(reply.type, "ack", "with --port, server.port is ignored and acked");
      assert.equal((await fetch(`${sfu.httpUrl}/readyz`)).status, 200);
      assert.ok(!sfu.logs.raw.some((l) => l.includes("tok-123")), "token leaked into logs");
    } finally {
      await sfu.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
