/**
 * HTTP push mode (`--push URL`, PROTOCOL.md section 12) against a scripted
 * node:http SFU on loopback: ack, nack (409/422), 503 then 200, a hang past
 * the ack timeout, and an SFU that goes away and comes back. Each maps to
 * its outcome in /status and /metrics; request spacing respects the backoff.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { HttpSfu, type HttpSfuOptions } from "../../helpers/http-sfu.ts";
import { configText, hashOf, sleep, startTestAgent, type TestAgent, type TestAgentOptions, until } from "./harness.ts";

const agents: TestAgent[] = [];
const sfus: HttpSfu[] = [];
after(async () => {
  for (const a of agents) await a.dispose();
  for (const s of sfus) await s.close();
});

async function sfu(o: HttpSfuOptions = {}): Promise<HttpSfu> {
  const s = await HttpSfu.start(o);
  sfus.push(s);
  return s;
}
async function agent(s: HttpSfu, o: TestAgentOptions = {}): Promise<TestAgent> {
  const a = await startTestAgent({ push: s.url(), pushRetry: { baseMs: 100, maxMs: 800 }, ...o });
  agents.push(a);
  return a;
}

/** Value of one sample in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}
async function metrics(a: TestAgent): Promise<string> {
  return (await a.get("/metrics")).text;
}
const http = (outcome: string) => `{transport="http",outcome="${outcome}"}`;

describe("HTTP push mode", { timeout: 90_000 }, () => {
  test("GET applied state, then POST the config message; 2xx acks; a swap is POSTed too", async () => {
    const s = await sfu();
    const a = await agent(s);
    const post = await s.waitFor((r) => r.method === "POST");
    assert.equal(s.requests[0]?.method, "GET", "the applied state is read first");
    assert.equal(post.path, "/sfu-config");
    assert.match(String(post.headers["content-type"]), /^application\/json/);
    assert.equal(post.headers.authorization, undefined);
    const h1 = await hashOf(configText(1));
    assert.deepEqual(Object.keys(post.body).sort(), [
      "config",
      "hash",
      "nonce",
      "revision",
      "schemaVersion",
      "type",
      "version",
    ]);
    assert.equal(post.body.type, "config");
    assert.equal(post.body.nonce, 1);
    assert.equal(post.body.version, 1);
    assert.equal(post.body.hash, h1);
    assert.equal(post.body.revision, null);
    assert.equal(post.body.schemaVersion, 1);
    assert.equal(post.body.config.limits.maxRooms, 1);
    const st = await until(async () => {
      const v = await a.status();
      return v.applied ? v : null;
    });
    assert.equal(st.applied.version, 1);
    assert.equal(st.sfu.connected, true);
    assert.equal(st.sfu.mode, "http");
    assert.equal(st.sfu.url, s.url());
    assert.equal(st.sfu.appliedState, "supported");
    assert.equal(st.sfu.lastPush.outcome, "ack");
    assert.equal(st.sfu.lastPush.httpStatus, 200);
    assert.equal(st.sfu.retry, null);
    assert.equal(st.settlements.at(-1).outcome, "applied");
    assert.equal((await a.get("/readyz")).status, 200);

    await a.writer.write({ "config.yaml": configText(2) });
    const p2 = await s.waitFor((r) => r.method === "POST" && r.body.version === 2);
    assert.equal(p2.body.nonce, 2);
    await until(async () => (await a.status()).applied?.version === 2);
    const m = await metrics(a);
    assert.equal(sample(m, "sfu_agent_pushes_total"), 2);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("ack")), 2);
    assert.equal(sample(m, "sfu_agent_push_latency_seconds_count"), 2);
    assert.equal(sample(m, "sfu_agent_reloads_total", '{outcome="applied"}'), 2);
    assert.equal(sample(m, "sfu_agent_sfu_connected"), 1);
    assert.equal(sample(m, "sfu_agent_applied_checks_total", '{result="ok"}'), 1);
    assert.equal(sample(m, "sfu_agent_push_retries_total"), 0);
    assert.equal(s.posts.length, 2);
  });

  test("versions continue above the SFU's GET applied state; its own hash is not re-pushed", async () => {
    const other = await hashOf(configText(99));
    const s = await sfu({ applied: { version: 41, hash: other } });
    const a = await agent(s);
    const post = await s.waitFor((r) => r.method === "POST");
    assert.equal(post.body.version, 42);
    await until(async () => (await a.status()).applied?.version === 42);

    // An SFU that already runs the file's config gets nothing, and the agent adopts its version.
    const h1 = await hashOf(configText(1));
    const same = await sfu({ applied: { version: 7, hash: h1 } });
    const b = await agent(same);
    const st = await until(async () => {
      const v = await b.status();
      return v.applied ? v : null;
    });
    assert.deepEqual(st.desired, { version: 7, hash: h1, revision: null });
    assert.equal(st.applied.version, 7);
    await sleep(300);
    assert.equal(same.posts.length, 0);
  });

  test("GET 404 (not supported): versions start at the agent's counter, no further GETs", async () => {
    const s = await sfu({ get: { kind: "status", status: 404 } });
    const a = await agent(s, { resyncIntervalMs: 150 });
    const post = await s.waitFor((r) => r.method === "POST");
    assert.equal(post.body.version, 1);
    await until(async () => (await a.status()).applied?.version === 1);
    assert.equal((await a.status()).sfu.appliedState, "unsupported");
    await sleep(400);
    assert.equal(s.requests.filter((r) => r.method === "GET").length, 1);
    assert.equal(sample(await metrics(a), "sfu_agent_applied_checks_total", '{result="unsupported"}'), 1);
  });

  test("422/409 nack with the error body; the rejected hash is not re-sent until desired again; a newer config is", async () => {
    const s = await sfu({
      script: [
        { kind: "ack" },
        {
          kind: "nack",
          status: 422,
          code: "RESTART_REQUIRED",
          message: "server.port needs a restart",
          path: "/server/port",
        },
        { kind: "status", status: 409, body: "conflict, not JSON" },
      ],
    });
    const a = await agent(s);
    await until(async () => (await a.status()).applied?.version === 1);
    await a.writer.write({ "config.yaml": configText(2) });
    const st = await until(async () => {
      const v = await a.status();
      return v.lastError ? v : null;
    });
    assert.equal(st.lastError.code, "RESTART_REQUIRED");
    assert.equal(st.lastError.message, "server.port needs a restart");
    assert.equal(st.applied.version, 1);
    assert.equal(st.settlements.at(-1).outcome, "rejected");
    assert.equal(st.sfu.connected, true, "a nack is an answer");
    assert.equal(st.sfu.lastPush.outcome, "nack");
    assert.equal(st.sfu.lastPush.error, "RESTART_REQUIRED");
    assert.equal(st.sfu.retry, null, "a nack is not retried");

    // 409 without a JSON body: a nack with code HTTP_409.
    await a.writer.write({ "config.yaml": configText(3) });
    await until(async () => (await a.status()).lastError?.code === "HTTP_409");
    // Back to the rejected content (version 4, same hash as version 2): desired again, so sent again
    // (once: the SFU acks it now) and settled again.
    await a.writer.write({ "config.yaml": configText(2) });
    await until(async () => (await a.status()).applied?.version === 4);
    await sleep(300);
    assert.equal(s.posts.length, 4);
    assert.equal((await a.status()).settlements.at(-1).outcome, "applied");
    // A new content is pushed.
    await a.writer.write({ "config.yaml": configText(5) });
    await s.waitFor((r) => r.method === "POST" && r.body.config.limits.maxRooms === 5);
    await until(async () => (await a.status()).applied?.version === 5);
    const m = await metrics(a);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("nack")), 2);
    assert.equal(sample(m, "sfu_agent_reloads_total", '{outcome="rejected"}'), 2);
    assert.equal(sample(m, "sfu_agent_push_retries_total"), 0);
  });

  test("503 then 200: retried with growing backoff gaps; /status shows the failure, then the ack", async () => {
    const s = await sfu({ script: Array.from({ length: 4 }, () => ({ kind: "status" as const, status: 503 })) });
    const a = await agent(s, { pushRetry: { baseMs: 200, maxMs: 5_000 } });
    const st = await until(async () => {
      const v = await a.status();
      return v.sfu.lastPush?.outcome === "http_error" ? v : null;
    });
    assert.equal(st.sfu.connected, false);
    assert.equal(st.sfu.lastPush.httpStatus, 503);
    assert.equal(st.sfu.lastPush.error, "HTTP 503");
    assert.ok(st.sfu.retry.attempt >= 1);
    assert.equal(st.applied, null);
    await until(async () => (await a.status()).applied?.version === 1, 10_000);
    const posts = s.posts;
    assert.equal(posts.length, 5);
    const gaps = posts.slice(1).map((p, i) => p.at - (posts[i] as { at: number }).at);
    // Delay before retry n is min(max, base * 2^n) * [0.5, 1]: at least 100, 200, 400, 800 ms here.
    gaps.forEach((g, n) => {
      assert.ok(g >= 100 * 2 ** n - 5, `gap ${n} = ${g.toFixed(1)} ms is below the backoff floor ${100 * 2 ** n} ms`);
    });
    for (let n = 1; n < gaps.length; n++) {
      assert.ok((gaps[n] as number) >= (gaps[n - 1] as number) - 10, `gaps grow: ${gaps.map((g) => g.toFixed(0))}`);
    }
    const v = await a.status();
    assert.equal(v.sfu.connected, true);
    assert.equal(v.sfu.retry, null);
    assert.equal(v.settlements.at(-1).outcome, "applied");
    const m = await metrics(a);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("http_error")), 4);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("ack")), 1);
    assert.equal(sample(m, "sfu_agent_push_retries_total"), 4);
    assert.equal(sample(m, "sfu_agent_pushes_total"), 5);
  });

  test("latest wins during backoff: newer configs wait for the retry time, only the newest is sent", async () => {
    const s = await sfu({ script: [{ kind: "status", status: 500 }] });
    const a = await agent(s, { pushRetry: { baseMs: 600, maxMs: 600 } });
    await s.waitFor((r) => r.method === "POST");
    await until(async () => (await a.status()).sfu.retry !== null);
    await a.writer.write({ "config.yaml": configText(2) });
    await a.writer.write({ "config.yaml": configText(3) });
    await until(async () => (await a.status()).desired?.version === 3);
    await until(async () => (await a.status()).applied?.version === 3, 5_000);
    const posts = s.posts;
    assert.deepEqual(
      posts.map((p) => p.body.version),
      [1, 3],
    );
    assert.ok((posts[1] as { at: number }).at - (posts[0] as { at: number }).at >= 300 - 5, "never before the backoff");
    const st = await a.status();
    assert.deepEqual(
      st.settlements.map((x: { version: number; outcome: string }) => [x.version, x.outcome]),
      [
        [1, "superseded"],
        [2, "superseded"],
        [3, "applied"],
      ],
    );
  });

  test("default backoff: the first retry waits at least 250 ms (0.5 s x [0.5, 1])", async () => {
    const s = await sfu({ script: [{ kind: "status", status: 503 }] });
    const a = await startTestAgent({ push: s.url() });
    agents.push(a);
    await until(async () => (await a.status()).applied?.version === 1, 5_000);
    const [p1, p2] = s.posts.map((p) => p.at) as [number, number];
    assert.ok(p2 - p1 >= 250 - 5, `gap ${(p2 - p1).toFixed(1)} ms`);
  });

  test("hang past the ack timeout: timeout outcome, then retried and acked", async () => {
    const s = await sfu({ script: [{ kind: "hang" }] });
    const a = await agent(s, { ackTimeoutMs: 300 });
    const st = await until(async () => {
      const v = await a.status();
      return v.lastError?.code === "ACK_TIMEOUT" ? v : null;
    });
    assert.equal(st.settlements.at(-1).outcome, "timeout");
    assert.equal(st.sfu.lastPush.outcome, "timeout");
    assert.equal(st.sfu.lastPush.httpStatus, null);
    assert.match(st.sfu.lastPush.error, /no answer within 300 ms/);
    await until(async () => (await a.status()).applied?.version === 1, 5_000);
    const m = await metrics(a);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("timeout")), 1);
    assert.equal(sample(m, "sfu_agent_reloads_total", '{outcome="timeout"}'), 1);
    assert.equal(sample(m, "sfu_agent_push_outcomes_total", http("ack")), 1);
    // After a lost answer the applied state is read again before the retry.
    assert.deepEqual(
      s.requests.map((r) => r.method),
      ["GET", "POST", "GET", "POST"],
    );
  });

  test("answer lost but applied (GET shows the pushed hash): applied without a second POST", async () => {
    const s = await sfu({ script: [{ kind: "hang", apply: true }] });
    const a = await agent(s, { ackTimeoutMs: 300 });
    await until(async () => (await a.status()).applied?.version === 1, 5_000);
    assert.equal(s.posts.length, 1);
    assert.equal((await a.status()).sfu.connected, true);
  });

  test("the SFU goes away (connection refused) and comes back on the same port", async () => {
    const s = await sfu();
    const a = await agent(s, { pushRetry: { baseMs: 200, maxMs: 400 } });
    await until(async () => (await a.status()).applied?.version === 1);
    await s.close();
    await a.writer.write({ "config.yaml": configText(2) });
    const st = await until(async () => {
      const v = await a.status();
      return v.sfu.lastPush?.outcome === "unreachable" ? v : null;
    });
    assert.equal(st.sfu.connected, false);
    assert.match(st.sfu.lastPush.error, /ECONNREFUSED/);
    const before = sample(await metrics(a), "sfu_agent_push_retries_total");
    await sleep(1_000);
    const retries = sample(await metrics(a), "sfu_agent_push_retries_total") - before;
    // Delays are at least 100, 200, 200, ... ms here: at most about 6 attempts a second, never a tight loop.
    assert.ok(retries >= 1 && retries <= 6, `retries in 1 s: ${retries}`);
    assert.equal(sample(await metrics(a), "sfu_agent_sfu_connected"), 0);
    await s.listen();
    await until(async () => (await a.status()).applied?.version === 2, 5_000);
    const v = await a.status();
    assert.equal(v.sfu.connected, true);
    assert.equal(v.sfu.lastPush.outcome, "ack");
    assert.ok(sample(await metrics(a), "sfu_agent_push_outcomes_total", http("unreachable")) >= 1);
  });

  test("an SFU that restarted (GET shows another applied state) starts a new session: a rejected hash is re-sent", async () => {
    const s = await sfu({ script: [{ kind: "ack" }, { kind: "nack", code: "RESTART_REQUIRED" }] });
    const a = await agent(s, { resyncIntervalMs: 150 });
    await until(async () => (await a.status()).applied?.version === 1);
    await a.writer.write({ "config.yaml": configText(2) });
    await until(async () => (await a.status()).lastError?.code === "RESTART_REQUIRED");
    await sleep(400); // several re-checks: same applied state, nothing re-sent
    assert.equal(s.posts.length, 2);
    s.applied = null; // the SFU restarted with nothing applied
    const again = await s.waitFor((r) => r.method === "POST" && s.posts.indexOf(r) === 2, 3_000);
    assert.equal(again.body.version, 2);
    await until(async () => (await a.status()).applied?.version === 2);
  });

  test("bearer token from --token-file is sent, and never logged nor shown", async () => {
    const token = "tok-HTTP-push-5ecret";
    const s = await sfu({ token });
    const a = await agent(s, { token, logLevel: "trace" });
    await until(async () => (await a.status()).applied?.version === 1);
    for (const r of s.requests) assert.equal(r.headers.authorization, `Bearer ${token}`);
    const texts = [JSON.stringify(await a.status()), await metrics(a), a.logs.join("\n")];
    for (const t of texts) assert.ok(!t.includes(token), "token leaked");

    // A wrong token: 401 is retried like any other unexpected status.
    const strict = await sfu({ token: "another" });
    const b = await agent(strict, { token, logLevel: "trace" });
    const st = await until(async () => {
      const v = await b.status();
      return v.sfu.retry ? v : null;
    });
    assert.equal(st.sfu.connected, false);
    assert.equal(st.sfu.appliedState, "pending");
    assert.equal(strict.posts.length, 0, "nothing is pushed before the applied state is known");
    assert.ok(!b.logs.join("\n").includes(token));
  });
});

describe("sfu-agent run --push (real process)", { timeout: 30_000 }, () => {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test("pushes over HTTP and stops cleanly on SIGTERM", async () => {
    const s = await sfu();
    const dir = await mkdtemp(join(tmpdir(), "sfu-agent-push-"));
    dirs.push(dir);
    await new AtomicWriter(dir).write({ "config.yaml": configText(1) });
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, "../../../agent/cli.ts"), "run", "--http", "127.0.0.1:0", "--config-dir", dir],
      { env: { ...process.env, SFU_AGENT_PUSH: s.url() }, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const post = await s.waitFor((r) => r.method === "POST", 10_000);
    assert.equal(post.body.version, 1);
    await until(() => out.includes("SFU applied config"), 5_000);
    const started = out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; push?: string })
      .find((l) => l.msg === "agent started");
    assert.equal(started?.push, s.url());
    child.kill("SIGTERM");
    assert.equal(await exit, 0);
  });
});
