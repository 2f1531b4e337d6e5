/**
 * Every WebSocket server of the project (the agent's push server, the
 * conformance kit's server, the SFU's /ws signalling) refuses a version-8
 * upgrade with 426 and `Sec-WebSocket-Version: 13`, answers pings with
 * pongs, and closes a ping flood (10,000 pings at once) with 1008 and a
 * reason, logged, instead of cutting the connection without a word.
 * Real servers on loopback port 0.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { WebSocket } from "ws";
import { ConformanceServer } from "../../agent/conformance/kit-server.ts";
import { Delivery } from "../../agent/sidecar/delivery.ts";
import { PushServer } from "../../agent/sidecar/push-server.ts";
import { SnapshotStore } from "../../agent/sidecar/snapshot-store.ts";
import { SUBPROTOCOL } from "../../protocol/messages-schema.ts";
import { PING_LIMITS, POLICY_VIOLATION_CLOSE } from "../../protocol/websocket-guard.ts";
import { rawRequest } from "../helpers/raw-http.ts";
import { LogCapture, type SfuUnderTest, startWithAgent } from "./sfu/harness.ts";

interface Target {
  name: string;
  url: () => string;
  protocols: string[];
  /** Log lines of the server, as text. */
  logs: () => string[];
}

const upgrade = (port: number, path: string, version: string, protocol: string | null) =>
  rawRequest(
    port,
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: ${version}\r\n` +
      `${protocol === null ? "" : `Sec-WebSocket-Protocol: ${protocol}\r\n`}\r\n`,
  );

/** Sends `n` pings at once; resolves with the pongs received and the close code and reason. */
async function flood(url: string, protocols: string[], n: number) {
  const ws = new WebSocket(url, protocols);
  await once(ws, "open");
  let pongs = 0;
  ws.on("pong", () => pongs++);
  const closed = once(ws, "close") as Promise<[number, Buffer]>;
  for (let i = 0; i < n; i++) ws.ping();
  const [code, reason] = await closed;
  return { pongs, code, reason: reason.toString() };
}

/** Sends `n` pings spaced `gapMs` apart; resolves with the pongs received, the socket still open. */
async function gentle(url: string, protocols: string[], n: number, gapMs: number) {
  const ws = new WebSocket(url, protocols);
  await once(ws, "open");
  let pongs = 0;
  ws.on("pong", () => pongs++);
  for (let i = 0; i < n; i++) {
    ws.ping();
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, 100));
  const open = ws.readyState === WebSocket.OPEN;
  ws.terminate();
  return { pongs, open };
}

describe("WebSocket servers: version 13 only, pings answered up to a rate", { timeout: 60_000 }, () => {
  const pushLogs = new LogCapture();
  const kitLogs: string[] = [];
  let push: PushServer;
  let delivery: Delivery;
  let kit: ConformanceServer;
  let sfu: SfuUnderTest;
  const targets: Target[] = [];

  before(async () => {
    const logger = pino({ level: "info" }, pushLogs.stream);
    push = new PushServer({ logger }, { host: "127.0.0.1", port: 0, helloTimeoutMs: 30_000 });
    delivery = new Delivery({
      logger,
      store: new SnapshotStore({ clock: () => new Date() }),
      transport: push,
      callbacks: { onEvent: () => {} },
    });
    await delivery.start();
    kit = new ConformanceServer(
      { port: 0, helloTimeoutMs: 30_000 },
      { clock: () => performance.now(), log: (l) => kitLogs.push(l) },
    );
    await kit.start();
    sfu = await startWithAgent();
    targets.push(
      { name: "push server", url: () => push.url, protocols: [SUBPROTOCOL], logs: () => pushLogs.raw },
      { name: "conformance kit", url: () => kit.url, protocols: [SUBPROTOCOL], logs: () => kitLogs },
      { name: "SFU /ws", url: () => sfu.wsUrl, protocols: [], logs: () => sfu.logs.raw },
    );
  });
  after(async () => {
    await delivery?.stop(100);
    await kit?.stop();
    await sfu?.stop();
  });

  it("a version-8 upgrade gets 426 with Sec-WebSocket-Version: 13; version 13 gets 101", async () => {
    for (const t of targets) {
      const u = new URL(t.url());
      const path = u.pathname === "" ? "/" : u.pathname;
      const protocol = t.protocols[0] ?? null;
      const v8 = await upgrade(Number(u.port), path, "8", protocol);
      assert.equal(v8.status, 426, `${t.name}: ${v8.head}`);
      assert.equal(v8.headers["sec-websocket-version"], "13", t.name);
      const v13 = await upgrade(Number(u.port), path, "13", protocol);
      assert.equal(v13.status, 101, `${t.name}: ${v13.head}`);
    }
  });

  it("10,000 pings at once: pongs up to the burst, then a 1008 close with a reason, logged", async () => {
    for (const t of targets) {
      const r = await flood(t.url(), t.protocols, 10_000);
      assert.equal(r.code, POLICY_VIOLATION_CLOSE, `${t.name}: closed ${r.code} ${r.reason} after ${r.pongs} pongs`);
      assert.match(r.reason, /ping flood/, t.name);
      assert.ok(r.pongs >= PING_LIMITS.burst, `${t.name}: ${r.pongs} pongs, fewer than the burst`);
      assert.ok(
        t.logs().some((l) => l.includes("ping flood")),
        `${t.name}: the close is logged`,
      );
    }
  });

  it("pings at a modest rate are all answered and the connection stays open", async () => {
    for (const t of targets) {
      const r = await gentle(t.url(), t.protocols, 20, 10);
      assert.deepEqual(r, { pongs: 20, open: true }, t.name);
    }
  });
});
