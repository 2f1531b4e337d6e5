/**
 * PROTOCOL.md's clarifications, held by our two sides over real sockets:
 * the SFU's config client (sfu/config-client.ts with the real applier and
 * state) against a scripted agent, and the agent's push server against raw
 * frames. First dial at boot, an already-applied hash (step 2a), a
 * schemaVersion mismatch, an unreadable credentialFile, invalid UTF-8
 * (1007), the frame limit (4009 below the library's limit, 1009 above), a
 * server that does not select the subprotocol, integers written `1.0`.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pino } from "pino";
import { WebSocket, WebSocketServer } from "ws";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { MAX_FRAME_BYTES, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { ConfigClient } from "../../../sfu/config-client.ts";
import { ConfigState } from "../../../sfu/config-state.ts";
import { configText, trackedStarters, until } from "./harness.ts";

const logger = pino({ level: "silent" });
const start = trackedStarters();
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** A scripted agent: a ws server (selecting the subprotocol unless told not to) that records frames and closes. */
async function scriptedAgent(opts: { selectSubprotocol?: boolean } = {}) {
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    maxPayload: 8 * MAX_FRAME_BYTES,
    handleProtocols: (p) => (opts.selectSubprotocol === false ? false : p.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const connections: { ws: WebSocket; frames: Record<string, unknown>[]; closed: Promise<number> }[] = [];
  wss.on("connection", (ws) => {
    const frames: Record<string, unknown>[] = [];
    ws.on("message", (d) => frames.push(JSON.parse(String(d))));
    const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
    connections.push({ ws, frames, closed });
  });
  const port = (wss.address() as { port: number }).port;
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );
  return { url: `ws://127.0.0.1:${port}`, connections, connected: () => connections.length > 0 };
}

function sfuClient(url: string, random = () => 0.999, secretsDir?: string) {
  const state = new ConfigState();
  const applier = new ConfigApplier({ state, logger, ...(secretsDir === undefined ? {} : { secretsDir }) });
  const client = new ConfigClient({
    url,
    logger,
    applier,
    state,
    random,
    initialBackoffMs: 5_000,
    maxBackoffMs: 5_000,
  });
  cleanup.push(() => client.stop());
  return { state, client };
}

async function configMessage(text: string, nonce: number, version: number, secretsDir?: string) {
  const r = await loadConfigText(text, { checkFiles: false, ...(secretsDir === undefined ? {} : { secretsDir }) });
  if (!r.ok) throw new Error("bad test config");
  return { type: "config", nonce, version, hash: r.hash, revision: null, schemaVersion: 1, config: r.config };
}

describe("PROTOCOL.md clarifications", { timeout: 60_000 }, () => {
  test("SFU: the first dial at boot is made at once, not after a backoff", async () => {
    const agent = await scriptedAgent();
    const { client } = sfuClient(agent.url);
    const t0 = performance.now();
    client.start();
    await until(agent.connected, 4_000, "the first dial");
    // A dial after the backoff would come 2.5-5 s after start (initialBackoffMs 5000).
    assert.ok(performance.now() - t0 < 2_500, "dialed before any backoff delay could have passed");
    const c = agent.connections[0]!;
    await until(() => c.frames.length === 1, 2_000, "hello");
    assert.equal(c.frames[0]?.["type"], "hello");
  });

  test("SFU: an already-applied hash is acked without re-applying (no credential re-read) and takes the new version", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-cred-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const cred = join(dir, "turn");
    await writeFile(cred, "s3cret\n");
    const text = configText(1).replace(
      "listenIp: 127.0.0.1",
      `listenIp: 127.0.0.1\n  turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: u\n      credentialFile: ${cred}`,
    );
    const agent = await scriptedAgent();
    const { state, client } = sfuClient(agent.url, undefined, dir);
    client.start();
    await until(agent.connected, 4_000, "dial");
    const c = agent.connections[0]!;
    await until(() => c.frames.length === 1, 2_000, "hello");
    c.ws.send(JSON.stringify(await configMessage(text, 1, 3, dir)));
    await until(() => c.frames.length === 2, 5_000, "first answer");
    assert.equal(c.frames[1]?.["type"], "ack");
    await rm(cred);
    c.ws.send(JSON.stringify(await configMessage(text, 2, 7, dir)));
    await until(() => c.frames.length === 3, 5_000, "second answer");
    assert.deepEqual(
      { type: c.frames[2]?.["type"], version: c.frames[2]?.["version"] },
      { type: "ack", version: 7 },
      "acked although the credential file is gone: nothing was re-applied",
    );
    assert.equal(state.applied?.version, 7, "the applied version is the message's");
    // A new content now needs the file: APPLY_FAILED (not INVALID_CONFIG), pointing at it.
    c.ws.send(JSON.stringify(await configMessage(text.replace("maxRooms: 1", "maxRooms: 2"), 3, 8, dir)));
    await until(() => c.frames.length === 4, 5_000, "third answer");
    const nack = c.frames[3] as { type: string; error: { code: string; path: string } };
    assert.equal(nack.type, "nack");
    assert.equal(nack.error.code, "APPLY_FAILED");
    assert.equal(nack.error.path, "/webrtc/turnServers/0/credentialFile");
    // schemaVersion of the message vs the config: INVALID_CONFIG at /schemaVersion.
    const m = await configMessage(configText(5), 4, 9);
    c.ws.send(JSON.stringify({ ...m, config: { ...m.config, schemaVersion: 2 } }));
    await until(() => c.frames.length === 5, 5_000, "fourth answer");
    const mismatch = c.frames[4] as { error: { code: string; path: string } };
    assert.deepEqual([mismatch.error.code, mismatch.error.path], ["INVALID_CONFIG", "/schemaVersion"]);
  });

  test("SFU: invalid UTF-8 closes 1007; a frame over 1 MiB closes 4009, over the library limit 1009", async () => {
    const agent = await scriptedAgent();
    const { client } = sfuClient(agent.url, () => 0);
    client.start();
    await until(agent.connected, 4_000, "dial");
    const first = agent.connections[0]!;
    first.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal(await first.closed, 1007);
    await until(() => agent.connections.length === 2, 8_000, "redial");
    const second = agent.connections[1]!;
    second.ws.send(`{"type":"config","pad":"${"x".repeat(MAX_FRAME_BYTES + 1000)}"}`);
    assert.equal(await second.closed, CloseCode.FRAME_TOO_LARGE);
    await until(() => agent.connections.length === 3, 8_000, "redial");
    const third = agent.connections[2]!;
    third.ws.send(`{"type":"config","pad":"${"x".repeat(2 * MAX_FRAME_BYTES + 1000)}"}`);
    assert.equal(await third.closed, 1009);
  });

  test("SFU: a server that does not select sfu-config.v1 gets no hello, and the SFU retries", async () => {
    const agent = await scriptedAgent({ selectSubprotocol: false });
    const { client } = sfuClient(agent.url, () => 0);
    client.start();
    await until(() => agent.connections.length >= 2, 8_000, "a retry");
    for (const c of agent.connections)
      assert.equal(c.frames.length, 0, "no hello on a connection without the subprotocol");
    assert.equal(client.connected, false);
  });

  test("agent: invalid UTF-8 closes 1007; 1 MiB < frame closes 4009; hello with integers written 1.0 is taken", async () => {
    const a = await start.agent();
    const raw = new WebSocket(a.agent.pushUrl, SUBPROTOCOL);
    raw.on("error", () => {});
    const rawClosed = new Promise<number>((r) => raw.on("close", (code) => r(code)));
    await new Promise<void>((r) => raw.once("open", () => r()));
    raw.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal(await rawClosed, 1007);
    const big = await start.sfu({ url: a.agent.pushUrl, hello: false });
    big.send(`{"type":"hello","pad":"${"x".repeat(MAX_FRAME_BYTES + 1000)}"}`);
    assert.equal((await big.closed).code, CloseCode.FRAME_TOO_LARGE);
    const s = await start.sfu({ url: a.agent.pushUrl, hello: false });
    s.send(
      '{"type":"hello","protocol":1.0,"sfu":{"name":"py","version":"1"},"schemaVersions":[1.0],"applied":{"version":5.0,"hash":"sha256:' +
        "a".repeat(64) +
        '"}}',
    );
    const cfg = await s.waitForConfig(() => true);
    assert.equal(cfg.version, 6, "applied.version 5.0 is the integer 5: the agent continues above it");
  });
});
