/**
 * The push server's side of the optional call-health feature: every upgrade
 * response advertises `sfu-config-features: health`; a valid `health` frame
 * after hello reaches the status tracker (`/status health`, gauges) without
 * any reply; before hello it closes with 4005, invalid it closes with 4003.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { WebSocket } from "ws";
import { Delivery } from "../../../agent/sidecar/delivery.ts";
import { AgentMetrics } from "../../../agent/sidecar/metrics.ts";
import { PushServer } from "../../../agent/sidecar/push-server.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import { SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { buildStatus } from "../../../agent/sidecar/status.ts";
import { StatusTracker } from "../../../agent/sidecar/status-tracker.ts";
import type { DeliveryEvent } from "../../../agent/sidecar/transport.ts";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { configHash } from "../../../protocol/hash.ts";
import { FEATURES_HEADER, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";
import { offerConfig } from "../../helpers/config-text.ts";

const H = configHash({ x: 1 });
/** The SFU runs H (its hello says so): health about H is stored. */
const hello = {
  type: "hello",
  protocol: 1,
  sfu: { name: "t", version: "1" },
  schemaVersions: [1],
  applied: { version: 1, hash: H },
};
const health = {
  type: "health",
  hash: H,
  since: "2026-12-02T05:00:00.000Z",
  joins: 5,
  joinFailures: 1,
  iceConnected: 3,
  iceFailures: 1,
};

async function setup() {
  const now = Date.parse("2026-12-02T05:01:00Z");
  const clock = () => new Date(now);
  const store = new SnapshotStore({ clock });
  const tracker = new StatusTracker({ store, clock });
  const registry = new Registry();
  const metrics = new AgentMetrics(registry);
  metrics.follow(tracker);
  new SettlementEngine({ tracker, clock }, { watchDesired: true }).start();
  const logger = pino({ level: "silent" });
  const server = new PushServer({ logger, metrics }, { host: "127.0.0.1", port: 0, helloTimeoutMs: 5_000 });
  const callbacks = {
    onEvent: (e: DeliveryEvent) => {
      tracker.onDelivery(e);
      metrics.onDelivery(e);
    },
  };
  const delivery = new Delivery({ logger, store, transport: server, callbacks });
  await delivery.start();
  after(() => delivery.stop(0));
  const connect = async () => {
    const ws = new WebSocket(server.url, SUBPROTOCOL);
    const upgraded = once(ws, "upgrade") as Promise<[IncomingMessage]>;
    const opened = once(ws, "open");
    const [[res]] = await Promise.all([upgraded, opened]);
    return { ws, res };
  };
  const gauge = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
  const dropped = async (reason: string) =>
    (await registry.getSingleMetric("sfu_agent_health_reports_dropped_total")?.get())?.values.find(
      (v) => v.labels.reason === reason,
    )?.value ?? 0;
  return { server, store, tracker, connect, gauge, dropped };
}

const closeOf = (ws: WebSocket) =>
  once(ws, "close").then(([code, reason]) => ({ code: code as number, reason: String(reason) }));

describe("push server: call health", { timeout: 20_000 }, () => {
  it("advertises the feature and records a health frame after hello, with no reply", async () => {
    const { tracker, connect, gauge } = await setup();
    const { ws, res } = await connect();
    assert.equal(res.headers[FEATURES_HEADER], "health");
    const received: string[] = [];
    ws.on("message", (d) => received.push(String(d)));
    ws.send(JSON.stringify(hello));
    ws.send(JSON.stringify({ ...health, unknownField: 1 }));
    for (let i = 0; i < 100 && tracker.health() === null; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(tracker.health(), {
      hash: H,
      since: health.since,
      joins: 5,
      joinFailures: 1,
      iceConnected: 3,
      iceFailures: 1,
      receivedAt: "2026-12-02T05:01:00.000Z",
    });
    const status = buildStatus({ tracker, pod: "p", path: "/x", queue: null });
    assert.deepEqual(status.health, tracker.health());
    assert.equal(await gauge("sfu_agent_sfu_joins"), 5);
    assert.equal(await gauge("sfu_agent_sfu_join_failures"), 1);
    assert.equal(await gauge("sfu_agent_sfu_ice_connected"), 3);
    assert.equal(await gauge("sfu_agent_sfu_ice_failures"), 1);
    assert.equal(await gauge("sfu_agent_sfu_health_since_timestamp_seconds"), Date.parse(health.since) / 1000);
    // A newer report replaces it.
    ws.send(JSON.stringify({ ...health, joins: 6 }));
    for (let i = 0; i < 100 && tracker.health()?.joins !== 6; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(tracker.health()?.joins, 6);
    assert.deepEqual(received, [], "health frames get no reply");
    assert.equal(ws.readyState, WebSocket.OPEN, "the connection stays open");
    ws.close();
    await once(ws, "close");
  });

  it("a health frame before hello closes with 4005", async () => {
    const { tracker, connect } = await setup();
    const { ws } = await connect();
    const closed = closeOf(ws);
    ws.send(JSON.stringify(health));
    const { code, reason } = await closed;
    assert.equal(code, CloseCode.HELLO_REQUIRED);
    assert.match(reason, /expected hello first, got health/);
    assert.equal(tracker.health(), null);
  });

  it("an invalid health frame closes with 4003 and is not recorded", async () => {
    const { tracker, connect } = await setup();
    const { ws } = await connect();
    ws.send(JSON.stringify(hello));
    const closed = closeOf(ws);
    ws.send(JSON.stringify({ ...health, iceFailures: -2 }));
    const { code, reason } = await closed;
    assert.equal(code, CloseCode.INVALID_MESSAGE);
    assert.match(reason, /invalid health: \/iceFailures/);
    assert.equal(tracker.health(), null);
  });

  it("drops a report for a hash the SFU does not run and contradictory or absurd counters, counted; the link stays", async () => {
    const { tracker, connect, dropped } = await setup();
    const { ws } = await connect();
    ws.send(JSON.stringify(hello));
    const other = configHash({ x: 2 });
    ws.send(JSON.stringify({ ...health, hash: other }));
    ws.send(JSON.stringify({ ...health, joins: 1, joinFailures: 5, iceConnected: 0, iceFailures: 0 }));
    ws.send(JSON.stringify({ ...health, joins: 2, joinFailures: 0, iceConnected: 2, iceFailures: 1 }));
    ws.send(JSON.stringify({ ...health, joins: 2 ** 40 }));
    for (let i = 0; i < 200 && (await dropped("ABSURD_COUNTER")) < 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await dropped("UNKNOWN_HASH"), 1);
    assert.equal(await dropped("CONTRADICTORY_COUNTERS"), 2);
    assert.equal(await dropped("ABSURD_COUNTER"), 1);
    assert.equal(tracker.health(), null, "none of them is stored");
    // A consistent report for the hash it runs is stored, on the same connection.
    ws.send(JSON.stringify(health));
    for (let i = 0; i < 100 && tracker.health() === null; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(tracker.health()?.hash, H);
    assert.equal(ws.readyState, WebSocket.OPEN, "the connection stays open");
    ws.close();
    await once(ws, "close");
  });

  it("stores a report for the config in flight (the SFU reports a new hash before its ack)", async () => {
    const { store, tracker, connect } = await setup();
    const { ws } = await connect();
    const frames: { type: string; hash?: string }[] = [];
    ws.on("message", (d) => frames.push(JSON.parse(String(d))));
    ws.send(JSON.stringify({ ...hello, applied: null }));
    const config = {
      schemaVersion: 1,
      server: { port: 8080 },
      webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
      logging: { level: "info" },
    };
    offerConfig(store, config as never, configHash(config));
    for (let i = 0; i < 200 && frames.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const pushed = frames[0];
    assert.equal(pushed?.type, "config");
    ws.send(JSON.stringify({ ...health, hash: pushed?.hash }));
    for (let i = 0; i < 100 && tracker.health() === null; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(tracker.health()?.hash, pushed?.hash);
    ws.close();
    await once(ws, "close");
  });
});
