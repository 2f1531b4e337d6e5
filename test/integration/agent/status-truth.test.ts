/**
 * /status tells the truth after every sequence that used to mislead it: a
 * NACKed config desired again, APPLY_FAILED retried with backoff, an agent
 * restart adopting hello.applied, a RESTART_REQUIRED config taken at the
 * SFU's next boot, an invalid edit fixed; version poisoning refused; the
 * HTTP server's Host check; and every log line has unique keys.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, describe, test } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { parseStrictJson } from "../../helpers/strict-json.ts";
import { configText, hashOf, startTestAgent, type TestAgent, trackedStarters, until } from "./harness.ts";

const start = trackedStarters();
const allLogs: string[][] = [];

async function agentWith(o: Parameters<typeof start.agent>[0] = {}): Promise<TestAgent> {
  const a = await start.agent({ logLevel: "debug", ...o });
  allLogs.push(a.logs);
  return a;
}

/** GET `path` with a given Host header (fetch does not let a caller set it). */
function getWithHost(url: string, path: string, host: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(3_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

describe("status truth", { timeout: 60_000 }, () => {
  after(() => {
    // Every log line of every agent above: one JSON object, each key once.
    let n = 0;
    for (const logs of allLogs) {
      for (const line of logs) {
        assert.doesNotThrow(() => parseStrictJson(line), `strict JSON: ${line}`);
        n++;
      }
    }
    assert.ok(n > 20, `checked ${n} log lines`);
  });

  test("v1 -> H4 nack -> H2 ack -> H4 again: H4 is pushed again and settles", async () => {
    const a = await agentWith();
    const sfu = await start.sfu({ url: a.agent.pushUrl });
    await until(() => a.agent.store.applied()?.version === 1, 5_000, "v1 applied");
    const [h2, h4] = [await hashOf(configText(2)), await hashOf(configText(4))];
    sfu.setReply((m) =>
      m.hash === h4 ? { kind: "nack", code: "RESTART_REQUIRED", message: "port" } : { kind: "ack" },
    );
    await a.writer.write({ "config.yaml": configText(4) });
    await until(() => a.agent.tracker.lastError()?.code === "RESTART_REQUIRED", 5_000, "H4 nacked");
    await a.writer.write({ "config.yaml": configText(2) });
    await until(() => a.agent.store.applied()?.hash === h2, 5_000, "H2 applied");
    sfu.setReply({ kind: "ack" });
    await a.writer.write({ "config.yaml": configText(4) });
    await until(() => a.agent.store.applied()?.hash === h4, 5_000, "H4 pushed again and applied");
    const pushesOfH4 = sfu.received.filter((r) => r.message.hash === h4).length;
    assert.equal(pushesOfH4, 2, "H4 sent once per time it became desired");
    const s = await a.status();
    assert.equal(s.desired.hash, h4);
    assert.equal(s.applied.hash, h4);
    assert.equal(s.lastError, null);
    assert.equal(s.previousError.code, "RESTART_REQUIRED");
    assert.deepEqual(
      s.settlements.map((x: { hash: string; outcome: string }) => [
        x.hash === h4 ? "H4" : x.hash === h2 ? "H2" : "v1",
        x.outcome,
      ]),
      [
        ["v1", "applied"],
        ["H4", "rejected"],
        ["H2", "applied"],
        ["H4", "applied"],
      ],
    );
  });

  test("APPLY_FAILED is re-sent on the same connection after a backoff, and settles applied when it passes", async () => {
    const a = await agentWith({ nackRetry: { baseMs: 100, maxMs: 400 } });
    const sfu = await start.sfu({ url: a.agent.pushUrl });
    await until(() => a.agent.store.applied()?.version === 1, 5_000, "v1 applied");
    const h3 = await hashOf(configText(3));
    sfu.setReply({ kind: "nack", code: "APPLY_FAILED", message: "credential file unreadable" });
    await a.writer.write({ "config.yaml": configText(3) });
    await until(() => sfu.received.filter((r) => r.message.hash === h3).length >= 3, 5_000, "three attempts");
    const at = sfu.received.filter((r) => r.message.hash === h3).map((r) => r.at);
    assert.ok((at[1] as number) - (at[0] as number) >= 90, "backoff before the first retry");
    assert.ok((at[2] as number) - (at[1] as number) >= 190, "doubled before the second");
    assert.equal(sfu.open, true, "same connection");
    sfu.setReply({ kind: "ack" });
    await until(() => a.agent.store.applied()?.hash === h3, 5_000, "applied once the condition passed");
    const s = await a.status();
    assert.equal(s.lastError, null);
    assert.equal(s.previousError.code, "APPLY_FAILED");
    assert.deepEqual(
      s.settlements.map((x: { outcome: string }) => x.outcome),
      ["applied", "rejected", "applied"],
    );
  });

  test("agent restart: hello.applied equal to the desired hash settles applied with the SFU's version", async () => {
    const first = await startTestAgent();
    const sfu1 = await start.sfu({ url: first.agent.pushUrl });
    await until(() => first.agent.store.applied()?.version === 1, 5_000, "v1 applied");
    await first.writer.write({ "config.yaml": configText(2) });
    await until(() => first.agent.store.applied()?.version === 2, 5_000, "v2 applied");
    const applied = sfu1.applied;
    await sfu1.close();
    await first.stop();
    const second = await agentWith({ dir: first.dir, initial: null });
    const sfu2 = await start.sfu({ url: second.agent.pushUrl, applied });
    await until(() => second.agent.tracker.settlements().length === 1, 5_000, "a settlement");
    const s = await second.status();
    assert.deepEqual(
      { outcome: s.settlements[0].outcome, version: s.settlements[0].version },
      { outcome: "applied", version: 2 },
    );
    assert.equal(s.desired.version, 2);
    assert.equal(sfu2.received.length, 0, "nothing pushed");
    await second.writer.write({ "config.yaml": configText(3) });
    await until(() => second.agent.store.applied()?.version === 3, 5_000, "v3 applied");
    assert.deepEqual(
      second.agent.tracker.settlements().map((x) => [x.version, x.outcome]),
      [
        [2, "applied"],
        [3, "applied"],
      ],
      "no superseded settlement with a version the SFU never had",
    );
    await first.dispose();
  });

  test("RESTART_REQUIRED taken at the SFU's next boot settles applied and clears lastError", async () => {
    const a = await agentWith();
    const sfu = await start.sfu({ url: a.agent.pushUrl });
    await until(() => a.agent.store.applied()?.version === 1, 5_000, "v1 applied");
    sfu.setReply({
      kind: "nack",
      code: "RESTART_REQUIRED",
      message: "server.port changed; the old version stays applied",
    });
    await a.writer.write({ "config.yaml": configText(5) });
    await until(() => a.agent.tracker.lastError()?.code === "RESTART_REQUIRED", 5_000, "nacked");
    await sfu.close();
    // The SFU restarts and boots with the new config.
    const h5 = await hashOf(configText(5));
    await start.sfu({ url: a.agent.pushUrl, applied: { version: 2, hash: h5 } });
    await until(() => a.agent.tracker.lastError() === null, 5_000, "lastError cleared");
    const s = await a.status();
    assert.equal(s.applied.hash, h5);
    assert.equal(s.settlements.at(-1).outcome, "applied");
    assert.equal(s.previousError.code, "RESTART_REQUIRED");
  });

  test("an invalid edit then a fix: lastError cleared once the fix is applied, kept as previousError", async () => {
    const a = await agentWith();
    await start.sfu({ url: a.agent.pushUrl });
    await until(() => a.agent.store.applied()?.version === 1, 5_000, "v1 applied");
    await a.writer.write({ "config.yaml": "schemaVersion: 1\nserver: [\n" });
    await until(() => a.agent.tracker.lastError() !== null, 5_000, "invalid reported");
    const m1 = (await a.get("/metrics")).text;
    assert.match(m1, /^sfu_agent_config_last_load_success 0$/m);
    await a.writer.write({ "config.yaml": configText(6) });
    await until(() => a.agent.store.applied()?.version === 2, 5_000, "fix applied");
    const s = await a.status();
    assert.equal(s.lastError, null);
    assert.match(s.previousError.message, /config\.yaml:\d+:\d+/);
    assert.ok(s.previousError.clearedAt >= s.previousError.at);
    const m2 = (await a.get("/metrics")).text;
    assert.match(m2, /^sfu_agent_config_last_load_success 1$/m);
    assert.match(m2, /^sfu_agent_config_converged 1$/m);
  });

  test("version poisoning: hello.applied.version 2^53-1 is refused with 4000 and counted; versions stay sane", async () => {
    const a = await agentWith();
    const evil = await start.sfu({
      url: a.agent.pushUrl,
      applied: { version: 2 ** 53 - 1, hash: `sha256:${"e".repeat(64)}` },
    });
    const closed = await evil.closed;
    assert.equal(closed.code, CloseCode.PROTOCOL_ERROR);
    assert.match(closed.reason, /applied\.version 9007199254740991 is above the limit/);
    assert.equal(a.agent.store.desired()?.version, 1);
    assert.match((await a.get("/metrics")).text, /^sfu_agent_versions_refused_total 1$/m);
    assert.equal((await a.status()).lastError.code, "VERSION_REFUSED");
    const good = await start.sfu({ url: a.agent.pushUrl });
    await good.waitForConfig((m) => m.version === 1);
    assert.equal(good.received[0]?.message.version, 1, "the next SFU gets a sane version");
  });

  test("HTTP Host check: loopback, interface IP, POD_IP and configured names pass; others get 421", async () => {
    const a = await agentWith({ httpAllowedHosts: ["sfu-agent.sfu.svc"], podIp: "10.9.8.7" });
    const url = a.agent.httpUrl;
    const port = new URL(url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "sfu-agent.sfu.svc", `10.9.8.7:${port}`]) {
      assert.equal(await getWithHost(url, "/healthz", host), 200, host);
    }
    for (const host of ["evil.example", `evil.example:${port}`, "10.9.8.8", "sfu-agent.sfu.svc.evil.example"]) {
      assert.equal(await getWithHost(url, "/status", host), 421, host);
    }
  });
});
