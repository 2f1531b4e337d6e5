/**
 * The SFU's `health` frames (sfu/config-client.ts): sent only when the
 * agent's upgrade response advertises `sfu-config-features: health`; the
 * first right after hello, later ones only when a counter changed, at most
 * once per interval; never before a config is applied.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { pino } from "pino";
import { type WebSocket, WebSocketServer } from "ws";
import { configHash } from "../../../protocol/hash.ts";
import { FEATURES_HEADER, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";
import { CallHealth } from "../../../sfu/call-health.ts";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { ConfigClient } from "../../../sfu/config-client.ts";
import { type ConfigSnapshot, ConfigState } from "../../../sfu/config-state.ts";

const H = configHash({ h: 1 });
const logger = pino({ level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function agentServer(advertise: string | null) {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  if (advertise !== null) wss.on("headers", (headers) => headers.push(`${FEATURES_HEADER}: ${advertise}`));
  await once(wss, "listening");
  const frames: Record<string, unknown>[] = [];
  wss.on("connection", (ws: WebSocket) => ws.on("message", (d) => frames.push(JSON.parse(String(d)))));
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    frames,
    types: () => frames.map((f) => f.type),
    close: () => {
      for (const c of wss.clients) c.terminate();
      return new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

function applied(state: ConfigState): void {
  state.swap({
    version: 1,
    hash: H as ConfigSnapshot["hash"],
    revision: null,
    config: {} as ConfigSnapshot["config"],
    turn: [],
    secretsReloads: 0,
    appliedAt: Date.parse("2026-12-02T05:00:00Z"),
  });
}

async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await sleep(10);
  }
}

describe("ConfigClient health frames", { timeout: 20_000 }, () => {
  it("advertised: one after hello, then only when a counter changed", async () => {
    const agent = await agentServer("other, health");
    const state = new ConfigState();
    applied(state);
    const health = new CallHealth(state);
    const client = new ConfigClient({
      url: agent.url,
      logger,
      state,
      applier: new ConfigApplier({ state, logger }),
      health,
      healthIntervalMs: 50,
    });
    try {
      client.start();
      await until(() => agent.frames.length >= 2);
      assert.deepEqual(agent.types(), ["hello", "health"]);
      assert.deepEqual(agent.frames[1], {
        type: "health",
        hash: H,
        since: "2026-12-02T05:00:00.000Z",
        joins: 0,
        joinFailures: 0,
        iceConnected: 0,
        iceFailures: 0,
      });
      await sleep(200);
      assert.equal(agent.frames.length, 2, "nothing changed: no frame");
      health.record("join", H);
      health.record("iceConnected", H);
      await until(() => agent.frames.length === 3);
      await sleep(150);
      assert.equal(agent.frames.length, 3, "two changes within one interval: one frame");
      assert.equal(agent.frames[2]!.joins, 1);
      assert.equal(agent.frames[2]!.iceConnected, 1);
      assert.equal(agent.types().filter((t) => t === "health").length, 2, "two health frames sent");
    } finally {
      await client.stop();
      health.close();
      await agent.close();
    }
  });

  it("not advertised, or advertised before any config: no health frame", async () => {
    for (const advertise of [null, "healthy"]) {
      const agent = await agentServer(advertise);
      const state = new ConfigState();
      applied(state);
      const health = new CallHealth(state);
      const client = new ConfigClient({
        url: agent.url,
        logger,
        state,
        applier: new ConfigApplier({ state, logger }),
        health,
        healthIntervalMs: 20,
      });
      client.start();
      await until(() => agent.frames.length >= 1);
      health.record("join", H);
      await sleep(150);
      assert.deepEqual(agent.types(), ["hello"], `header ${advertise}`);
      await client.stop();
      await agent.close();
    }
    const agent = await agentServer("health");
    const state = new ConfigState();
    const health = new CallHealth(state);
    const client = new ConfigClient({
      url: agent.url,
      logger,
      state,
      applier: new ConfigApplier({ state, logger }),
      health,
      healthIntervalMs: 20,
    });
    client.start();
    await until(() => agent.frames.length >= 1);
    await sleep(100);
    assert.deepEqual(agent.types(), ["hello"], "no config applied: nothing to report");
    applied(state);
    await until(() => agent.frames.length === 2);
    assert.equal(agent.frames[1]!.type, "health");
    await client.stop();
    await agent.close();
  });

  it("a config with another hash is reported at once, not at the next interval", async () => {
    const agent = await agentServer("health");
    const state = new ConfigState();
    applied(state);
    const health = new CallHealth(state);
    const client = new ConfigClient({
      url: agent.url,
      logger,
      state,
      applier: new ConfigApplier({ state, logger }),
      health,
      healthIntervalMs: 60_000,
    });
    client.start();
    await until(() => agent.frames.length === 2);
    health.record("join", H); // a counter change waits for the interval
    await sleep(100);
    assert.equal(agent.frames.length, 2);
    const other = configHash({ other: 1 });
    state.swap({
      version: 2,
      hash: other as ConfigSnapshot["hash"],
      revision: null,
      config: {} as ConfigSnapshot["config"],
      turn: [],
      secretsReloads: 0,
      appliedAt: Date.parse("2026-12-02T05:10:00Z"),
    });
    await until(() => agent.frames.length === 3, 1_000);
    assert.equal(agent.frames[2]!.hash, other);
    assert.equal(agent.frames[2]!.joins, 0);
    await client.stop();
    await agent.close();
  });
});
