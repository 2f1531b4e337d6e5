/**
 * The SFU's HTTP server and its /ws gate take the host from an absolute-form
 * request target too (protocol/request-target.ts): a target naming another
 * host than `Host` is refused 400 before any route or the same-origin check;
 * the same request for this SFU is served.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rawRequest } from "../../helpers/raw-http.ts";
import { type SfuUnderTest, startWithAgent } from "./harness.ts";

describe("SFU: absolute-form request targets", { timeout: 30_000 }, () => {
  let sfu: SfuUnderTest;
  let port: number;
  before(async () => {
    sfu = await startWithAgent();
    port = sfu.server.port!;
  });
  after(() => sfu?.stop());

  const upgrade = (target: string, host: string, origin: string) =>
    rawRequest(
      port,
      `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );

  it("HTTP: another host in the target than in Host is 400; the same host is served", async () => {
    const get = (target: string, host: string) =>
      rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal((await get("http://evil.example/status", `127.0.0.1:${port}`)).status, 400);
    assert.equal((await get(`http://127.0.0.1:${port}/status`, `127.0.0.1:${port}`)).status, 200);
    assert.equal((await get("/status", `127.0.0.1:${port}`)).status, 200);
  });

  it("/ws: an absolute target for another host is refused even when Origin matches Host", async () => {
    const self = `http://127.0.0.1:${port}`;
    assert.equal((await upgrade("http://evil.example/ws", `127.0.0.1:${port}`, self)).status, 400);
    assert.equal((await upgrade(`ws://127.0.0.1:${port}/ws`, `127.0.0.1:${port}`, self)).status, 101);
    assert.equal((await upgrade("/ws", `127.0.0.1:${port}`, self)).status, 101);
  });
});
