/**
 * Shutdown: once stop() begins, a client that re-dials at once is refused
 * instead of joining a dying SFU (which would keep stop() from ever
 * finishing), and stop() completes.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { describe, it } from "node:test";
import { WebSocket } from "ws";
import { startWithAgent } from "./harness.ts";

/** A raw WebSocket peer that completes the upgrade and then ignores every frame, close included. */
async function stubbornPeer(port: number): Promise<Socket> {
  const sock = connect(port, "127.0.0.1");
  await once(sock, "connect");
  sock.write(
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  const [head] = (await once(sock, "data")) as [Buffer];
  assert.match(head.toString(), /^HTTP\/1.1 101/);
  return sock;
}

describe("SFU shutdown", { timeout: 30_000 }, () => {
  it("refuses signalling sockets opened during stop() and finishes stopping", async () => {
    const sfu = await startWithAgent();
    // One peer that never answers the close handshake keeps stop() busy for a while...
    const stubborn = await stubbornPeer(sfu.server.port!);
    // ...while a well-behaved client is closed at once and re-dials immediately.
    const client = new WebSocket(sfu.wsUrl);
    await once(client, "open");
    try {
      const closed = once(client, "close");
      const stopping = sfu.server.stop();
      await closed;
      const redial = new WebSocket(sfu.wsUrl);
      const outcome = await new Promise<string>((resolve) => {
        redial.once("open", () => resolve("open"));
        redial.once("unexpected-response", (_req, res) => resolve(`HTTP ${res.statusCode}`));
        redial.once("error", () => resolve("refused"));
      });
      redial.terminate();
      assert.notEqual(outcome, "open", "a socket opened during stop() must be refused");
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        stopping.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), 10_000);
        }),
      ]);
      clearTimeout(timer);
      assert.ok(finished, "stop() completed");
    } finally {
      stubborn.destroy();
      client.terminate();
      await sfu.stop();
    }
  });
});
