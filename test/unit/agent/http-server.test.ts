import assert from "node:assert/strict";
import { request } from "node:http";
import { networkInterfaces } from "node:os";
import { test } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { HttpServer, hostOfHeader, isLoopbackName } from "../../../agent/sidecar/http-server.ts";
import { rawRequest } from "../../helpers/raw-http.ts";

test("hostOfHeader: name or IP without port, brackets or trailing dot; null when malformed", () => {
  assert.equal(hostOfHeader("Example.COM:9090"), "example.com");
  assert.equal(hostOfHeader("example.com."), "example.com");
  assert.equal(hostOfHeader("[::1]:9090"), "::1");
  assert.equal(hostOfHeader("10.0.0.5"), "10.0.0.5");
  assert.equal(hostOfHeader("evil.example/x"), null);
  assert.equal(hostOfHeader("a b"), null);
  assert.equal(hostOfHeader("host:99999999"), null);
  assert.ok(isLoopbackName("localhost") && isLoopbackName("app.localhost") && isLoopbackName("127.9.9.9"));
  assert.ok(isLoopbackName("::1"));
  assert.ok(!isLoopbackName("localhost.evil.example") && !isLoopbackName("128.0.0.1"));
});

function get(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/healthz", headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(3_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

test("on 0.0.0.0 every interface IP passes (the kubelet's Host: <podIP>:<port>); other names get 421", async () => {
  const server = new HttpServer(
    {
      logger: pino({ level: "silent" }),
      registry: new Registry(),
      status: () => {
        throw new Error("not called");
      },
      notReadyReason: () => null,
    },
    { host: "0.0.0.0", port: 0, allowedHosts: ["sfu-agent.sfu.svc"], podIp: null },
  );
  await server.start();
  try {
    const port = server.address().port;
    const ips = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && a.family === "IPv4")
      .map((a) => a!.address);
    assert.ok(ips.length > 0);
    for (const ip of ips) assert.equal(await get(port, `${ip}:${port}`), 200, ip);
    assert.equal(await get(port, `sfu-agent.sfu.svc:${port}`), 200);
    assert.equal(await get(port, `localhost:${port}`), 200);
    assert.equal(await get(port, "rebind.attacker.example"), 421);
    assert.equal(await get(port, "203.0.113.9"), 421, "an IP that is not this host's");
    assert.equal(server.hostAllowed(undefined), true, "no Host header (HTTP/1.0)");
  } finally {
    await server.stop();
  }
});

test("an absolute-form request target is checked too: another host than Host is 400, a foreign host 421", async () => {
  const server = new HttpServer(
    {
      logger: pino({ level: "silent" }),
      registry: new Registry(),
      status: () => {
        throw new Error("/status must not be answered");
      },
      notReadyReason: () => null,
    },
    { host: "127.0.0.1", port: 0, allowedHosts: [], podIp: null },
  );
  await server.start();
  try {
    const port = server.address().port;
    const req = (target: string, host: string | null) =>
      rawRequest(
        port,
        `GET ${target} HTTP/1.1\r\n${host === null ? "" : `Host: ${host}\r\n`}Connection: close\r\n\r\n`,
      );
    assert.equal((await req("http://evil.example/status", "127.0.0.1")).status, 400, "target host differs from Host");
    assert.equal((await req("http://evil.example/status", "evil.example")).status, 421, "both name a foreign host");
    assert.equal((await req(`http://127.0.0.1:${port}/status`, "evil.example")).status, 400);
    assert.equal((await req("https://user:pw@127.0.0.1/healthz", "127.0.0.1")).status, 400, "userinfo");
    assert.equal((await req("ftp://127.0.0.1/healthz", "127.0.0.1")).status, 400, "scheme");
    // The same request for this agent is answered, default ports folded by the target's scheme.
    assert.equal((await req(`http://127.0.0.1:${port}/healthz`, `127.0.0.1:${port}`)).status, 200);
    assert.equal((await req("http://localhost/healthz", "localhost:80")).status, 200);
    assert.equal((await req("/healthz", `127.0.0.1:${port}`)).status, 200, "origin-form as before");
  } finally {
    await server.stop();
  }
});
