/**
 * Call health end to end: real werift clients join the real SFU, which
 * dials a real in-process agent. A working ICE setup counts joins and
 * connected peer connections; a config whose `listenIp` the clients cannot
 * reach (`::1`: the SFU gathers IPv6 loopback candidates only, the test
 * clients are IPv4-only on 127.0.0.1) makes ICE fail and counts ICE
 * failures (so does a documentation address no host has: the SFU gathers
 * no candidate at all); a full room counts a join failure. The agent receives the
 * counters in `health` frames (it advertises the feature on upgrade) and
 * shows them in its `/status health` and metrics; an agent that does not
 * advertise the feature never receives a `health` frame.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { RTCPeerConnection } from "werift";
import { WebSocket } from "ws";
import { SfuServer } from "../../../sfu/server.ts";
import { FakeAgent } from "../../helpers/fake-agent.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";
import { configText, hashOf, startTestAgent, type TestAgent, until } from "../agent/harness.ts";
import { LogCapture, testConfig } from "./harness.ts";

/** configText with another listenIp and a room limit. */
function healthConfig(n: number, listenIp: string, maxParticipantsPerRoom = 16): string {
  return configText(n)
    .replace("listenIp: 127.0.0.1", `listenIp: "${listenIp}"`)
    .replace(`maxRooms: ${n}`, `maxRooms: ${n}\n  maxParticipantsPerRoom: ${maxParticipantsPerRoom}`);
}

interface Stack {
  agent: TestAgent;
  sfu: SfuServer;
  wsUrl: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read /status loosely
  sfuStatus(): Promise<Record<string, any>>;
  stop(): Promise<void>;
}

async function startStack(initial: string): Promise<Stack> {
  const agent = await startTestAgent({ initial, logLevel: "info" });
  const sfu = new SfuServer({
    logger: pino({ level: "warn" }, new LogCapture().stream),
    agentUrl: agent.agent.pushUrl,
    port: 0,
    host: "127.0.0.1",
    initialBackoffMs: 100,
    maxBackoffMs: 400,
    healthIntervalMs: 100,
    iceConnectTimeoutMs: 4_000,
  });
  await sfu.start();
  await until(() => sfu.state.current !== null && sfu.port !== null, 10_000, "the SFU to apply the first config");
  const httpUrl = `http://127.0.0.1:${sfu.port}`;
  return {
    agent,
    sfu,
    wsUrl: `ws://127.0.0.1:${sfu.port}/ws`,
    sfuStatus: async () => (await fetch(`${httpUrl}/status`)).json() as Promise<Record<string, unknown>>,
    stop: async () => {
      await sfu.stop();
      await agent.dispose();
    },
  };
}

const clients: WeriftTestClient[] = [];
async function join(url: string, name: string, room = "r"): Promise<WeriftTestClient> {
  const c = await WeriftTestClient.join({ url, room, name, publish: { audio: true, video: false }, timeoutMs: 8_000 });
  clients.push(c);
  return c;
}
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

describe("call health with real werift clients", { timeout: 90_000 }, () => {
  it("a working ICE setup counts joins and connected peer connections; the agent shows the SFU's figures", async () => {
    const text = healthConfig(1, "127.0.0.1");
    const hash = await hashOf(text);
    const s = await startStack(text);
    try {
      const a = await join(s.wsUrl, "a");
      const b = await join(s.wsUrl, "b");
      await a.waitConnected();
      await b.waitConnected();
      const status = await until(
        async () => {
          const st = await s.sfuStatus();
          return st.health?.iceConnected === 2 ? st : null;
        },
        10_000,
        "the SFU to count two connected peer connections",
      );
      assert.deepEqual(
        { ...status.health, since: undefined },
        { hash, since: undefined, joins: 2, joinFailures: 0, iceConnected: 2, iceFailures: 0 },
      );
      assert.equal(status.health.since, new Date(s.sfu.state.current!.appliedAt).toISOString());
      // The agent got the same counters in a health frame.
      const agentStatus = await until(
        async () => {
          const st = await s.agent.status();
          return st.health?.iceConnected === 2 ? st : null;
        },
        5_000,
        "the agent's /status health",
      );
      const { receivedAt, ...fromAgent } = agentStatus.health;
      assert.deepEqual(fromAgent, status.health);
      assert.ok(!Number.isNaN(Date.parse(receivedAt)));
      const metrics = (await s.agent.get("/metrics")).text;
      assert.match(metrics, /^sfu_agent_sfu_joins 2$/m);
      assert.match(metrics, /^sfu_agent_sfu_ice_connected 2$/m);
      assert.match(metrics, /^sfu_agent_sfu_ice_failures 0$/m);
      assert.ok(agentStatus.health !== null, "the SFU sent at least one health frame: the agent shows it");
      const sfuMetrics = await s.sfu.metrics.registry.metrics();
      assert.match(sfuMetrics, /^sfu_call_joins 2$/m);
      assert.match(sfuMetrics, /^sfu_call_ice_connected 2$/m);
      assert.match(sfuMetrics, /^sfu_call_join_failures 0$/m);
      assert.match(sfuMetrics, /^sfu_call_ice_failures 0$/m);
      await a.close();
      await b.close();
    } finally {
      await s.stop();
    }
  });

  it("an unreachable listenIp makes ICE fail and is counted; a full room counts a join failure; counters restart per hash", async () => {
    const good = healthConfig(2, "127.0.0.1", 1);
    const bad = healthConfig(3, "::1", 1);
    const badHash = await hashOf(bad);
    const s = await startStack(good);
    try {
      // A call set up under the good config, still running when the bad one arrives.
      const early = await join(s.wsUrl, "early", "old");
      await early.waitConnected();
      await s.agent.writer.write({ "config.yaml": bad });
      await until(() => s.sfu.state.current?.hash === badHash, 10_000, "the SFU to apply the bad config");
      const fresh = await s.sfuStatus();
      assert.deepEqual(
        { ...fresh.health, since: undefined },
        { hash: badHash, since: undefined, joins: 0, joinFailures: 0, iceConnected: 0, iceFailures: 0 },
        "counters restart when another hash is applied",
      );
      // Room "old" holds the early call: with one participant per room, a second join is refused.
      await assert.rejects(join(s.wsUrl, "d", "old"), /PARTICIPANT_LIMIT/);
      const c = await join(s.wsUrl, "c", "new");
      const status = await until(
        async () => {
          const st = await s.sfuStatus();
          return st.health?.iceFailures >= 1 ? st : null;
        },
        15_000,
        "the SFU to count an ICE failure",
      );
      assert.equal(c.pc.connectionState === "connected", false, "the client never connected");
      assert.deepEqual(
        { ...status.health, since: undefined },
        { hash: badHash, since: undefined, joins: 2, joinFailures: 1, iceConnected: 0, iceFailures: 1 },
      );
      // The early call (under the previous hash) is untouched and not counted for the new hash.
      assert.equal(early.pc.connectionState, "connected");
      const agentHealth = await until(
        async () => {
          const st = await s.agent.status();
          return st.health?.iceFailures === 1 && st.health?.joinFailures === 1 ? st.health : null;
        },
        5_000,
        "the agent to receive the ICE failure",
      );
      assert.equal(agentHealth.hash, badHash);
    } finally {
      await s.stop();
    }
  });

  it("a listenIp no host has (a documentation address) leaves the SFU without candidates: every join fails ICE", async () => {
    const bad = healthConfig(5, "203.0.113.7");
    const s = await startStack(bad);
    try {
      const c = await join(s.wsUrl, "e");
      const status = await until(
        async () => {
          const st = await s.sfuStatus();
          return st.health?.iceFailures === 1 ? st : null;
        },
        15_000,
        "the SFU to count an ICE failure",
      );
      assert.equal(status.health.iceConnected, 0);
      assert.equal(status.health.hash, await hashOf(bad));
      assert.ok(
        c.messages.filter((m) => m.type === "candidate" && m.candidate !== null).length === 0,
        "the SFU sent no candidate",
      );
    } finally {
      await s.stop();
    }
  });

  it("a peer connection not connected within the timeout after the first answer counts as an ICE failure", async () => {
    const s = await startStack(healthConfig(4, "127.0.0.1"));
    const ws = new WebSocket(s.wsUrl);
    const pc = new RTCPeerConnection({ iceUseIpv6: false, iceInterfaceAddresses: { udp4: "127.0.0.1" } });
    try {
      await once(ws, "open");
      const offer = new Promise<{ sdp: string }>((resolve) =>
        ws.on("message", (d) => {
          const m = JSON.parse(String(d)) as { type: string; sdp: string };
          if (m.type === "offer") resolve(m);
        }),
      );
      ws.send(JSON.stringify({ type: "join", room: "r", name: "mute", publish: { audio: true, video: false } }));
      await pc.setRemoteDescription({ type: "offer", sdp: (await offer).sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      const sdp = pc.localDescription!.sdp;
      await pc.close(); // its candidates are in the answer, but nothing answers the SFU's checks any more
      const answeredAt = performance.now();
      ws.send(JSON.stringify({ type: "answer", sdp }));
      const status = await until(
        async () => {
          const st = await s.sfuStatus();
          return st.health?.iceFailures === 1 ? st : null;
        },
        10_000,
        "the ICE timeout to count a failure",
      );
      assert.ok(performance.now() - answeredAt >= 3_900, "not before the timeout");
      assert.equal(status.health.iceConnected, 0);
      assert.equal(status.health.joins, 1);
    } finally {
      ws.close();
      await s.stop();
    }
  });

  it("an agent that does not advertise the feature never receives a health frame", async () => {
    const agent = await FakeAgent.start();
    const sfu = new SfuServer({
      logger: pino({ level: "warn" }, new LogCapture().stream),
      agentUrl: agent.url,
      port: 0,
      host: "127.0.0.1",
      healthIntervalMs: 50,
    });
    try {
      await sfu.start();
      await agent.waitForHello(0);
      const reply = await agent.pushAndWait(testConfig());
      assert.equal(reply.type, "ack");
      const c = await join(`ws://127.0.0.1:${sfu.port}/ws`, "x");
      await c.waitConnected();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(sfu.health.snapshot()?.iceConnected, 1, "the SFU counted");
      assert.deepEqual(
        agent.received.map((r) => r.message.type),
        ["hello", "ack"],
      );
      assert.ok(!agent.received.some((r) => (r.message.type as string) === "health"), "no health frame");
      await c.close();
    } finally {
      await sfu.stop();
      await agent.stop();
    }
  });
});
