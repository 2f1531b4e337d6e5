/**
 * A peer that never answers our close frame does not hold up a stop: ws's
 * `closeTimeout` option destroys the socket (no hand-rolled terminate
 * timers). The peers here are raw TCP sockets that complete the WebSocket
 * handshake and then ignore everything.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { AGENT_CLOSE_TIMEOUT_MS, ConfigClient } from "../../../sfu/config-client.ts";
import { ConfigState } from "../../../sfu/config-state.ts";
import { RoomRegistry } from "../../../sfu/room.ts";
import { SIGNAL_CLOSE_TIMEOUT_MS, SignallingServer } from "../../../sfu/signalling.ts";

const logger = pino({ level: "silent" });
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

async function listen(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  return address.port;
}

/** Resolves when `socket` is closed by the other side (or rejects after `ms`). */
function closedWithin(socket: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.once("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe("ws closeTimeout instead of terminate timers", { timeout: 30_000 }, () => {
  it("ConfigClient.stop() returns after AGENT_CLOSE_TIMEOUT_MS when the agent never answers the close", async () => {
    let client: ConfigClient | undefined;
    const servers: Server[] = [];
    const connected = new Promise<Socket>((resolve) => {
      const server = createServer((socket) => {
        socket.once("data", (req: Buffer) => {
          const key = /sec-websocket-key: (\S+)/i.exec(req.toString("latin1"))?.[1] ?? "";
          const accept = createHash("sha1")
            .update(key + GUID)
            .digest("base64");
          socket.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
              `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: sfu-config.v1\r\n\r\n`,
          );
          resolve(socket);
          // From here on: read and ignore everything, close frames included.
          socket.on("data", () => {});
        });
      });
      void listen(server).then((port) => {
        const state = new ConfigState();
        client = new ConfigClient({
          url: `ws://127.0.0.1:${port}`,
          logger,
          state,
          applier: new ConfigApplier({ state, logger }),
        });
        client.start();
        servers.push(server);
      });
    });
    const socket = await connected;
    // Let the client see the open before stopping.
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const gone = closedWithin(socket, AGENT_CLOSE_TIMEOUT_MS + 5000);
    await client!.stop();
    const waited = performance.now() - started;
    await gone;
    assert.ok(waited >= AGENT_CLOSE_TIMEOUT_MS - 50, `stop() waited for the handshake (${waited} ms)`);
    assert.ok(waited < AGENT_CLOSE_TIMEOUT_MS + 5000, `and no longer than the close timeout (${waited} ms)`);
    for (const s of servers) s.close();
  });

  it("SignallingServer.stop() cuts off a client that never answers the close", async () => {
    const state = new ConfigState();
    const signalling = new SignallingServer({ logger, state, rooms: new RoomRegistry({ logger, state }) });
    const http = createHttpServer();
    http.on("upgrade", (req, socket, head) => signalling.handleUpgrade(req, socket, head));
    const port = await listen(http);
    const socket = connect(port, "127.0.0.1");
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    await new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.on("data", () => {}); // ignores the close frame
    assert.equal(signalling.connections, 1);
    const gone = closedWithin(socket, SIGNAL_CLOSE_TIMEOUT_MS + 5000);
    const started = performance.now();
    await signalling.stop();
    const waited = performance.now() - started;
    await gone;
    assert.ok(waited >= SIGNAL_CLOSE_TIMEOUT_MS - 50, `waited for the handshake (${waited} ms)`);
    http.close();
  });
});
