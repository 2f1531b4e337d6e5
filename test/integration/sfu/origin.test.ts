/**
 * The signalling endpoint checks the page's Origin against the applied
 * config: same origin and requests without Origin pass; a foreign page gets
 * 403 (and no session, so no TURN credentials) until the pushed config lists
 * it in server.allowedOrigins; refusals are counted in /metrics.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { type SfuUnderTest, startWithAgent, testConfig } from "./harness.ts";

/** Opens /ws with `origin` (or none); resolves with the HTTP status of the handshake (101 = upgraded). */
async function handshake(url: string, origin: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin === undefined ? {} : { origin });
    const timer = setTimeout(() => reject(new Error("handshake timed out")), 5000);
    ws.once("open", () => {
      clearTimeout(timer);
      ws.close();
      resolve({ status: 101, body: "" });
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function v2(allowedOrigins?: string[]): Record<string, unknown> {
  const c = testConfig();
  return {
    ...c,
    schemaVersion: 2,
    server: { port: 8080, ...(allowedOrigins ? { allowedOrigins } : {}) },
  };
}

describe("signalling Origin check", { timeout: 30_000 }, () => {
  let sfu: SfuUnderTest;
  before(async () => {
    sfu = await startWithAgent(v2());
  });
  after(async () => {
    await sfu?.stop();
  });

  it("same origin and no Origin pass; another origin gets 403 with the reason; counted", async () => {
    const self = sfu.httpUrl; // http://127.0.0.1:PORT, what the demo page sends
    assert.equal((await handshake(sfu.wsUrl, self)).status, 101);
    assert.equal((await handshake(sfu.wsUrl, undefined)).status, 101);
    const foreign = await handshake(sfu.wsUrl, "https://evil.example");
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /"https:\/\/evil\.example" is not this SFU's origin and not in server\.allowedOrigins/);
    const otherPort = await handshake(sfu.wsUrl, "http://127.0.0.1:1");
    assert.equal(otherPort.status, 403);
    const metrics = await (await fetch(`${sfu.httpUrl}/metrics`)).text();
    assert.match(metrics, /sfu_signalling_refused_total\{reason="origin"\} 2/);
    const logged = sfu.logs.lines.filter((l) => l.msg === "signalling handshake refused");
    assert.equal(logged.length, 1, "one log line per interval, however many refusals");
    assert.equal(sfu.server.signalling.connections, 0);
  });

  it("a pushed allowedOrigins admits that origin for new handshakes; a v1 config falls back to same-origin", async () => {
    const reply = await sfu.agent!.pushAndWait(v2(["https://app.example.com"]));
    assert.equal(reply.type, "ack", JSON.stringify(reply));
    assert.equal((await handshake(sfu.wsUrl, "https://app.example.com")).status, 101);
    assert.equal((await handshake(sfu.wsUrl, "https://other.example.com")).status, 403);
    assert.equal((await handshake(sfu.wsUrl, sfu.httpUrl)).status, 101, "same origin stays allowed");
    assert.equal((await sfu.agent!.pushAndWait(testConfig())).type, "ack");
    assert.equal((await handshake(sfu.wsUrl, "https://app.example.com")).status, 403);
  });
});
