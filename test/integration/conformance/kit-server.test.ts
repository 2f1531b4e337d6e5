/**
 * The kit's agent-side server over real sockets: it refuses dial-ins the way
 * PROTOCOL.md section 2 says the agent does, enforces hello, allows one SFU at
 * a time, and its suite reports cases against a scripted SFU. Also the
 * command's usage errors.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WebSocket } from "ws";
import { main, parseListen } from "../../../agent/commands/conformance.ts";
import { minRedialDelayMs } from "../../../agent/conformance/cases.ts";
import { ConformanceServer } from "../../../agent/conformance/kit-server.ts";
import { reverseKeys } from "../../../agent/conformance/test-configs.ts";
import { AgentError } from "../../../agent/shared/errors.ts";
import { canonicalJson } from "../../../protocol/hash.ts";
import { SUBPROTOCOL } from "../../../protocol/messages-schema.ts";

const HELLO = { type: "hello", protocol: 1, sfu: { name: "t", version: "1" }, schemaVersions: [1], applied: null };

async function withServer(
  options: ConstructorParameters<typeof ConformanceServer>[0],
  fn: (server: ConformanceServer, logs: string[]) => Promise<void>,
) {
  const logs: string[] = [];
  const server = new ConformanceServer(
    { port: 0, ...options },
    { clock: () => performance.now(), log: (l) => logs.push(l) },
  );
  await server.start();
  try {
    await fn(server, logs);
  } finally {
    await server.stop();
  }
}

/** Dials and resolves with the HTTP status of a refused upgrade, or "open". */
function dial(url: string, protocols: string[], headers: Record<string, string> = {}) {
  return new Promise<{ status: number | "open"; body: string; ws: WebSocket }>((resolve) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ws }));
    });
    ws.on("open", () => resolve({ status: "open", body: "", ws }));
    ws.on("error", () => {});
  });
}

function closed(ws: WebSocket) {
  return new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
}

describe("conformance kit server", () => {
  it("closes an SFU's connection with 1001 when the kit ends, as the agent does when it stops", async () => {
    const logs: string[] = [];
    const server = new ConformanceServer({ port: 0 }, { clock: () => performance.now(), log: (l) => logs.push(l) });
    const url = await server.start();
    const { status, ws } = await dial(url, [SUBPROTOCOL]);
    assert.equal(status, "open");
    const code = closed(ws);
    ws.send(JSON.stringify(HELLO));
    const dialed = await server.nextDial(2_000);
    assert.equal(dialed.ok, true);
    await server.stop();
    assert.equal(await code, 1001);
  });

  it("refuses Origin (403), a missing subprotocol (426), a wrong token (401), and simulated restarts (503)", async () => {
    await withServer({ token: "s3cret" }, async (server, logs) => {
      const auth = { authorization: "Bearer s3cret" };
      assert.deepEqual(
        await dial(server.url, [SUBPROTOCOL], { ...auth, origin: "http://evil.example" }).then((r) => [
          r.status,
          r.body,
        ]),
        [403, "origin"],
      );
      assert.deepEqual(await dial(server.url, ["other"], auth).then((r) => [r.status, r.body]), [426, "subprotocol"]);
      assert.deepEqual(
        await dial(server.url, [SUBPROTOCOL], { authorization: "Bearer nope" }).then((r) => [r.status, r.body]),
        [401, "token"],
      );
      assert.equal((await dial(server.url, [SUBPROTOCOL])).status, 401);
      server.refuseNextDials(1);
      assert.deepEqual(await dial(server.url, [SUBPROTOCOL], auth).then((r) => [r.status, r.body]), [
        503,
        "shutting down",
      ]);
      const ok = await dial(server.url, [SUBPROTOCOL], auth);
      assert.equal(ok.status, "open");
      assert.equal(ok.ws.protocol, SUBPROTOCOL);
      ok.ws.close();
      assert.deepEqual(
        server.attempts.map((a) => a.outcome),
        [403, 426, 401, 401, 503, "accepted"],
      );
      assert.ok(!logs.join("\n").includes("s3cret"), "the token is never logged");
    });
  });

  it("delivers a session after hello; closes 4005 for another first frame and 4006 without hello", async () => {
    await withServer({ helloTimeoutMs: 300 }, async (server) => {
      const good = await dial(server.url, [SUBPROTOCOL]);
      good.ws.send(JSON.stringify(HELLO));
      const outcome = await server.nextDial(2000);
      assert.ok(outcome.ok);
      assert.deepEqual(outcome.session.hello, HELLO);
      const second = await dial(server.url, [SUBPROTOCOL]);
      assert.equal(await closed(second.ws), 4010, "one SFU at a time");
      good.ws.close();
      await outcome.session.waitClosed(2000);

      const wrongFirst = await dial(server.url, [SUBPROTOCOL]);
      wrongFirst.ws.send(JSON.stringify({ type: "ack", nonce: 1, version: 1, hash: `sha256:${"0".repeat(64)}` }));
      assert.equal(await closed(wrongFirst.ws), 4005);
      const refused = await server.nextDial(2000);
      assert.ok(!refused.ok && /not "hello"/.test(refused.reason));

      const silent = await dial(server.url, [SUBPROTOCOL]);
      assert.equal(await closed(silent.ws), 4006);
      const timedOut = await server.nextDial(2000);
      assert.ok(!timedOut.ok && /no hello within 300 ms/.test(timedOut.reason));

      const none = await server.nextDial(100);
      assert.ok(!none.ok && none.timeout);
    });
  });

  it("rejects bad options at construction", () => {
    const deps = { clock: () => 0, log: () => {} };
    const optionsError = (e: unknown) => e instanceof AgentError && e.code === "CONFORMANCE_OPTIONS";
    assert.throws(() => new ConformanceServer({ port: 70000 }, deps), optionsError);
    assert.throws(() => new ConformanceServer({ token: "" }, deps), optionsError);
    assert.throws(() => new ConformanceServer({ helloTimeoutMs: 0 }, deps), optionsError);
  });
});

describe("conformance kit pieces", () => {
  it("parses --listen", () => {
    assert.deepEqual(parseListen("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(parseListen("[::1]:7070"), { host: "::1", port: 7070 });
    assert.throws(() => parseListen("127.0.0.1"), /HOST:PORT/);
    assert.throws(() => parseListen("127.0.0.1:70000"), /HOST:PORT/);
  });

  it("reverseKeys changes the key order but not the canonical form", () => {
    const value = { a: 1, b: { c: [{ d: 1, e: 2 }], f: null } };
    const reversed = reverseKeys(value);
    assert.notEqual(JSON.stringify(reversed), JSON.stringify(value));
    assert.equal(JSON.stringify(reversed), '{"b":{"f":null,"c":[{"e":2,"d":1}]},"a":1}');
    assert.equal(canonicalJson(reversed), canonicalJson(value));
  });

  it("accepts the slowest allowed backoff jitter and refuses a tight loop", () => {
    for (const n of [0, 1, 2, 10]) {
      const slowest = Math.min(30_000, 500 * 2 ** n) * 0.5;
      assert.ok(minRedialDelayMs(n) <= slowest);
      assert.ok(minRedialDelayMs(n) >= 200);
    }
  });
});

describe("sfu-agent conformance usage", () => {
  const io = () => {
    const out = { stdout: "", stderr: "" };
    return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } };
  };

  it("exits 2 on usage errors and 0 for --help/--list", async () => {
    for (const argv of [
      ["--bogus"],
      ["--timeout", "0"],
      ["--listen", "nope"],
      ["extra"],
      ["--token-file", "/nonexistent/t"],
    ]) {
      const { out, io: i } = io();
      assert.equal(await main([...argv, "--wait", "1"], i), 2, argv.join(" "));
      assert.match(out.stderr, /sfu-agent conformance: /);
    }
    const missing = io();
    assert.equal(await main(["--config", "/nonexistent/c.yaml", "--listen", "127.0.0.1:0"], missing.io), 2);
    assert.match(missing.out.stderr, /base config \/nonexistent\/c\.yaml is unusable \(pass --config FILE\)/);
    const help = io();
    assert.equal(await main(["--help"], help.io), 0);
    assert.match(help.out.stdout, /Usage: sfu-agent conformance/);
    const list = io();
    assert.equal(await main(["--list"], list.io), 0);
    assert.match(list.out.stdout, /^canonical-hash: /m);
  });

  it("exits 1 when the port is taken", async () => {
    await withServer({}, async (server) => {
      const port = new URL(server.url).port;
      const { out, io: i } = io();
      assert.equal(await main(["--listen", `127.0.0.1:${port}`], i), 1);
      assert.match(out.stderr, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
    });
  });
});
