/**
 * Hostile agent->SFU frames against the real `sfu-server` process as the
 * image runs it (Dockerfile.sfu's node flags and ENV, `--agent`) under the
 * `sfu` container's limits from k8s/base/deployment.yaml (cgroups; without
 * them `--max-old-space-size`, and the test says so). A test agent (a
 * WebSocket server speaking sfu-config.v1) pushes a good config, then on
 * each reconnect one hostile frame: nested half a million levels deep, a
 * 60,000-key flood, a 500,000-value flood, over MAX_FRAME_BYTES, over the
 * library's limit.
 *
 * For each: the SFU closes with the code PROTOCOL.md names (4003, 4009,
 * 1009) and a reason saying which limit, stays alive (no OOM kill), answers
 * every /healthz poll within 2 s, keeps the good config applied (its next
 * hello reports it) and reconnects.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type WebSocket, WebSocketServer } from "ws";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { MAX_FRAME_BYTES, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";
import { get, healthPoller } from "../../helpers/limited-agent.ts";
import { type LimitedSfu, startLimitedSfu } from "../../helpers/limited-sfu.ts";

const _ROOT = join(import.meta.dirname, "../../..");
const CONFIG =
  "schemaVersion: 1\nserver: { port: 8080 }\nwebrtc:\n  icePortRange: [43100, 43199]\n  codecs: [vp8, opus]\n  listenIp: 127.0.0.1\nlogging: { level: info }\n";

type Hello = { type: string; applied: { version: number; hash: string } | null };

describe("sfu-server under the container's limits vs hostile config frames from its agent", {
  timeout: 3 * 60_000,
}, () => {
  let dir: string;
  let sfu: LimitedSfu;
  let wss: WebSocketServer;
  let base: string;
  let health: ReturnType<typeof healthPoller>;
  /** Connections from the SFU, each with its hello. */
  const connections: { ws: WebSocket; hello: Promise<Hello>; closed: Promise<{ code: number; reason: string }> }[] = [];
  let waiting: (() => void) | null = null;

  const nextConnection = async (timeoutMs = 30_000) => {
    const at = connections.length;
    const t0 = performance.now();
    while (connections.length <= at) {
      assert.ok(performance.now() - t0 < timeoutMs, "the SFU did not reconnect");
      await new Promise<void>((r) => {
        waiting = r;
        setTimeout(r, 250);
      });
    }
    return connections[at] as (typeof connections)[number];
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-hostile-frames-"));
    wss = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      maxPayload: 4 * MAX_FRAME_BYTES,
      handleProtocols: (p) => (p.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    wss.on("connection", (ws) => {
      const hello = new Promise<Hello>((r) => ws.once("message", (d) => r(JSON.parse(String(d)) as Hello)));
      const closed = new Promise<{ code: number; reason: string }>((r) =>
        ws.once("close", (code, reason) => r({ code, reason: String(reason) })),
      );
      ws.on("error", () => {});
      connections.push({ ws, hello, closed });
      waiting?.();
    });
    const agentUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    sfu = await startLimitedSfu(["--agent", agentUrl]);
    base = sfu.base;
    health = healthPoller(base);
  });

  after(async () => {
    await health?.stop();
    await sfu?.stop();
    for (const c of connections) c.ws.terminate();
    await new Promise((r) => wss?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const alive = (what: string) => sfu.alive(what);

  test("a good config, then one hostile frame per connection: each closed with its code, the good config kept", async () => {
    const loaded = await loadConfigText(CONFIG);
    assert.ok(loaded.ok);
    const good = loaded.hash;
    const first = await nextConnection();
    assert.equal((await first.hello).type, "hello");
    first.ws.send(
      JSON.stringify({
        type: "config",
        nonce: 1,
        version: 1,
        hash: good,
        revision: null,
        schemaVersion: 1,
        config: loaded.config,
      }),
    );
    const ack = await new Promise<{ type: string; hash: string }>((r) =>
      first.ws.once("message", (d) => r(JSON.parse(String(d)) as { type: string; hash: string })),
    );
    assert.deepEqual([ack.type, ack.hash], ["ack", good]);
    first.ws.close(1001, "test: reconnect");
    health.setPhase("frames");
    const half = MAX_FRAME_BYTES / 2 - 64;
    const cases: [string, string, number, RegExp][] = [
      [
        "deep",
        `{"type":"config","x":${"[".repeat(half)}${"]".repeat(half)}}`,
        4003,
        /^frame: nested more than 66 levels deep$/,
      ],
      [
        "key flood",
        `{"type":"config",${Array.from({ length: 60_000 }, (_, i) => `"k${i}":0`).join(",")}}`,
        4003,
        /^frame: more than 10016 object keys$/,
      ],
      ["value flood", `{"type":"config","v":[${"0,".repeat(500_000)}0]}`, 4003, /^frame: more than 100016 values$/],
      ["over MAX_FRAME_BYTES", `{"type":"config","p":"${"x".repeat(MAX_FRAME_BYTES + 10)}"}`, 4009, /exceeds/],
      ["over the library's limit", `{"type":"config","p":"${"x".repeat(3 * MAX_FRAME_BYTES)}"}`, 1009, /^/],
    ];
    for (const [name, frame, code, reason] of cases) {
      const c = await nextConnection();
      const hello = await c.hello;
      assert.equal(hello.applied?.hash, good, `${name}: the SFU's hello still reports the good config`);
      c.ws.send(frame);
      const closed = await c.closed;
      assert.equal(closed.code, code, `${name}: close code (${closed.reason})`);
      assert.match(closed.reason, reason, name);
      await alive(name);
    }
    const last = await nextConnection();
    assert.equal((await last.hello).applied?.hash, good, "after every hostile frame the good config is still applied");
    const status = await get(`${base}/status`, 5_000);
    assert.ok(typeof status !== "string" && status.status === 200);
    assert.equal((JSON.parse(status.text) as { applied: { hash: string } }).applied.hash, good);
    await health.stop();
    const failed = health.polls.filter((p) => !p.ok).map((p) => `${p.phase}: ${p.detail}`);
    console.log(
      `# /healthz: ${health.polls.length} polls, slowest ${Math.max(...health.polls.map((p) => p.ms)).toFixed(0)} ms; cgroup ${JSON.stringify(await sfu.cgroup?.memoryStats())}`,
    );
    assert.deepEqual(failed, [], "every /healthz poll answered within 2 s");
  });
});
