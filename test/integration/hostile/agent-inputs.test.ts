/**
 * The agent's wire inputs, hostile, against the real agent process under the
 * sfu-agent container's limits (test/helpers/limited-agent.ts: 192Mi memory
 * and 200m CPU as cgroups, `--memory-saver-mode`), with fauxqs serving SQS
 * behind a proxy that counts the agent's deletes:
 *
 * - agent<->SFU frames: a first frame nested a million levels deep, a key
 *   flood, over MAX_FRAME_BYTES, over the library's limit, bad UTF-8, binary,
 *   and a flood of 50 connections each sending a deep 1 MiB frame;
 * - SQS message bodies (raw and in their SNS envelope): deep nesting, key and
 *   value floods, a huge string, a flood of malformed messages;
 * - a burst of 10,000 reload events for hashes that never arrive, then one
 *   legitimate change.
 *
 * For each: the process stays alive (no OOM kill), every /healthz poll
 * answers within 2 s, the last good config stays in force, the error is
 * reported (close code and reason, the log, the messages metric) without
 * echoing the input, every message is deleted exactly once, and the
 * legitimate change afterwards is applied.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { WebSocket } from "ws";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { MAX_FRAME_BYTES, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { configHash } from "../../helpers/config-text.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { goodConfig } from "../../helpers/hostile-configs.ts";
import { get, healthPoller, type Running, startLimitedAgent } from "../../helpers/limited-agent.ts";

/** Reload events in the burst. */
const BURST = 10_000;
/** Malformed messages in the body flood. */
const FLOOD = 2_000;
/** How long a reload event waits for its hash (short: the burst's waits end in seconds). */
const PROPAGATION_TIMEOUT = "3s";
/** How long the agent may take to drain what one test sent, at 200m CPU. */
const DRAIN_TIMEOUT_MS = 120_000;

type Status = {
  applied: { hash: string } | null;
  desired: { hash: string } | null;
  settlements: Array<{ hash: string; outcome: string }>;
};

describe("agent under the container's limits vs hostile frames, SQS bodies and a 10,000-event burst", {
  timeout: 6 * 60_000,
}, () => {
  let dir: string;
  let writer: AtomicWriter;
  let fauxqs: FauxqsHandle;
  let proxy: FaultProxy;
  let clients: AwsClients;
  let queueUrl: string;
  let agent: Running;
  let health: ReturnType<typeof healthPoller>;
  let sfu: FakeSfu | null = null;
  let goodHash: string;
  /** DeleteMessage(Batch) entries the agent sent, by receipt handle. */
  const deletes = new Map<string, number>();
  let deleted = 0;
  let retried = 0;
  const figures: string[] = [];

  before(async () => {
    fauxqs = await startFauxqs();
    proxy = await startFaultProxy(fauxqs.endpoint, {
      observe: (req, body, headers) => {
        if (req.action !== "DeleteMessage" && req.action !== "DeleteMessageBatch") return;
        // The SDK's own retry of a call (amz-sdk-request: attempt=2..) is a transport resend, not a second delete.
        if (!/attempt=1(;|$)/.test(String(headers["amz-sdk-request"] ?? "attempt=1"))) {
          retried++;
          return;
        }
        const b = JSON.parse(body.toString("utf8")) as {
          ReceiptHandle?: string;
          Entries?: { ReceiptHandle: string }[];
        };
        for (const h of b.Entries?.map((e) => e.ReceiptHandle) ?? [b.ReceiptHandle ?? ""]) {
          deletes.set(h, (deletes.get(h) ?? 0) + 1);
          deleted++;
        }
      },
    });
    clients = fauxqs.clients();
    const q = await clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-config-hostile" }));
    queueUrl = q.QueueUrl as string;
    dir = await mkdtemp(join(tmpdir(), "sfu-agent-hostile-inputs-"));
    writer = new AtomicWriter(dir);
    await writer.write({ "config.yaml": goodConfig(1) });
    goodHash = await configHash(goodConfig(1));
    agent = await startLimitedAgent(dir, {
      args: [
        ...["--queue-url", queueUrl, "--endpoint-url", proxy.url, "--region", FAUXQS_REGION],
        ...["--propagation-timeout", PROPAGATION_TIMEOUT, "--pod-name", "sfu-hostile-0"],
      ],
      env: { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" },
    });
    console.log(`# agent: ${agent.limitNote}`);
    health = healthPoller(agent.http);
  });

  after(async () => {
    await health?.stop();
    await sfu?.close();
    await agent?.stop();
    clients?.sqs.destroy();
    clients?.sns.destroy();
    await proxy?.stop();
    await fauxqs?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (figures.length > 0) console.log(`# ${figures.join("\n# ")}`);
  });

  const status = async (): Promise<Status> => {
    const r = await get(`${agent.http}/status`, 5_000);
    assert.ok(typeof r !== "string" && r.status === 200, `/status answers: ${JSON.stringify(r).slice(0, 200)}`);
    return JSON.parse(r.text) as Status;
  };

  const alive = async (what: string) => {
    const stats = agent.cgroup ? await agent.cgroup.memoryStats() : null;
    assert.ok(
      agent.child.exitCode === null && agent.child.signalCode === null,
      `${what}: the agent exited (code ${agent.child.exitCode}, signal ${agent.child.signalCode}) ${agent.watchdogKill() ?? ""}; cgroup ${JSON.stringify(stats)}`,
    );
    if (typeof stats?.oomKills === "number") assert.equal(stats.oomKills, 0, `${what}: OOM kill in the agent's cgroup`);
  };

  const healthFailures = (phase: string) =>
    health.polls.filter((p) => p.phase === phase && !p.ok).map((p) => `${p.detail} after ${p.ms.toFixed(0)} ms`);

  const messagesMetric = async (result: string): Promise<number> => {
    const r = await get(`${agent.http}/metrics`, 5_000);
    assert.ok(typeof r !== "string" && r.status === 200, "/metrics answers");
    const m = new RegExp(`^sfu_agent_queue_messages_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)`, "m").exec(r.text);
    return Number(m?.[1] ?? 0);
  };

  const queueDepth = async (): Promise<number> => {
    const a = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    return (
      Number(a.Attributes?.ApproximateNumberOfMessages ?? 0) +
      Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
    );
  };

  /** Sends bodies with SendMessageBatch (`per` a call, 16 calls in flight). */
  const sendAll = async (bodies: string[], per = 10): Promise<void> => {
    const batches: string[][] = [];
    for (let i = 0; i < bodies.length; i += per) batches.push(bodies.slice(i, i + per));
    let next = 0;
    const worker = async () => {
      for (let b = next++; b < batches.length; b = next++) {
        const r = await clients.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: (batches[b] as string[]).map((MessageBody, i) => ({ Id: `m${i}`, MessageBody })),
          }),
        );
        assert.equal(r.Failed?.length ?? 0, 0, `SendMessageBatch failed: ${JSON.stringify(r.Failed?.[0])}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  };

  /** Waits until `count` more deletes arrived and the queue is empty. */
  const drained = async (from: number, count: number, what: string): Promise<number> => {
    const t0 = performance.now();
    for (;;) {
      await alive(what);
      if (deleted - from >= count && (await queueDepth()) === 0) return performance.now() - t0;
      assert.ok(
        performance.now() - t0 < DRAIN_TIMEOUT_MS,
        `${what}: ${deleted - from} of ${count} deleted, ${await queueDepth()} in the queue after ${DRAIN_TIMEOUT_MS} ms`,
      );
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  /**
   * Connects as an SFU, sends one frame, resolves with the agent's close code
   * and reason. A 4010 (the previous connection's slot not yet released: one
   * SFU at a time) is retried after 100 ms, up to 50 times.
   */
  const closeAfter = async (frame: string | Buffer, binary = false): Promise<{ code: number; reason: string }> => {
    for (let i = 0; ; i++) {
      const closed = await closeAfterOnce(frame, binary);
      if (closed.code !== 4010 || i >= 50) return closed;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const closeAfterOnce = (frame: string | Buffer, binary: boolean): Promise<{ code: number; reason: string }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(agent.push, [SUBPROTOCOL], { perMessageDeflate: false, maxPayload: 1024 * 1024 });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error("the agent did not close within 30 s"));
      }, 30_000);
      ws.on("error", () => {});
      ws.on("open", () => ws.send(frame, { binary }));
      ws.on("close", (code, reason) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString("utf8") });
      });
    });

  const reload = (hash: string, issuedAt: Date) =>
    JSON.stringify({
      type: "sfu-config.reload",
      revision: "hostile",
      hash,
      configMap: "sfu/sfu-config",
      issuedAt: issuedAt.toISOString(),
    });

  test("hostile first frames from an SFU are closed with their code; the agent then serves a real SFU", async () => {
    health.setPhase("frames");
    const deep = `{"type":"hello","x":${"[".repeat(MAX_FRAME_BYTES / 2 - 16)}${"]".repeat(MAX_FRAME_BYTES / 2 - 16)}}`;
    const keys = `{"type":"hello",${Array.from({ length: 60_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const values = `{"type":"hello","v":[${"0,".repeat(MAX_FRAME_BYTES / 2 - 64)}0]}`;
    const cases: [string, string | Buffer, boolean, number, RegExp][] = [
      ["deep", deep, false, 4003, /^frame: nested more than 66 levels deep$/],
      ["key flood", keys, false, 4003, /^frame: more than 10016 object keys$/],
      ["value flood", values, false, 4003, /^frame: more than 100016 values$/],
      ["over MAX_FRAME_BYTES", `{"type":"hello","p":"${"x".repeat(3 * MAX_FRAME_BYTES)}"}`, false, 4009, /exceeds/],
      ["over the library's limit", `{"p":"${"x".repeat(5 * MAX_FRAME_BYTES)}"}`, false, 1009, /^/],
      ["bad UTF-8", Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), false, 1007, /^/],
      ["binary", Buffer.from('{"type":"hello"}'), true, 4001, /./],
    ];
    for (const [name, frame, binary, code, reason] of cases) {
      const closed = await closeAfter(frame, binary);
      assert.equal(closed.code, code, `${name}: close code (${closed.reason})`);
      assert.match(closed.reason, reason, name);
      await alive(name);
    }
    // A flood: 50 connections, 10 at a time, each a deep 1 MiB first frame.
    const t0 = performance.now();
    let next = 0;
    const codes = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next++ < 50) {
          const { code } = await closeAfter(deep);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      }),
    );
    figures.push(`frame flood: 50 deep 1 MiB frames in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual([...codes], [[4003, 50]], "every flooded connection closed 4003");
    await alive("frame flood");
    sfu = await FakeSfu.connect({ url: agent.push });
    await sfu.waitForHash(goodHash, 30_000);
    assert.equal((await status()).applied?.hash, goodHash);
    figures.push(`frames: peak RSS ${((await agent.peakRssKiB()) / 1024).toFixed(0)} MiB`);
    assert.deepEqual(healthFailures("frames"), [], "every /healthz poll answered within 2 s");
  });

  test("hostile SQS bodies and a flood of malformed ones are refused, reported and deleted once", async () => {
    health.setPhase("bodies");
    const received = sfu?.received.length ?? 0;
    const envelope = (message: string) => JSON.stringify({ Type: "Notification", MessageId: "m", Message: message });
    const deep = `${"[".repeat(120_000)}${"]".repeat(120_000)}`;
    const keys = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const values = `[${"0,".repeat(120_000)}0]`;
    const hostile = [deep, keys, values, envelope(deep.slice(100_000, 140_000)), envelope(keys.slice(0, 120_000))];
    hostile.push(
      JSON.stringify({ type: "sfu-config.reload", hash: `sha256:${"0".repeat(64)}`, p: "x".repeat(250_000) }),
    );
    const flood = Array.from(
      { length: FLOOD },
      (_, i) => `{"type":"sfu-config.reload","n":${i},"hunter2-token":[[[[[[[[[[0]]]]]]]]]]}`,
    );
    const malformedBefore = await messagesMetric("malformed");
    const logLines = agent.log.length;
    const from = deleted;
    const t0 = performance.now();
    await sendAll(hostile, 1);
    await sendAll(flood);
    const ms = await drained(from, hostile.length + FLOOD, "bodies");
    figures.push(
      `bodies: ${hostile.length} hostile + ${FLOOD} malformed drained in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(ms / 1000).toFixed(1)} s after sending), peak RSS ${((await agent.peakRssKiB()) / 1024).toFixed(0)} MiB`,
    );
    assert.equal(deleted - from, hostile.length + FLOOD, "each message deleted exactly once");
    assert.equal((await messagesMetric("malformed")) - malformedBefore, hostile.length + FLOOD);
    const log = agent.log.slice(logLines).join("\n");
    for (const reason of [
      "message body: nested more than 8 levels deep",
      "message body: more than 256 object keys",
      "message body: more than 1000 values",
      "SNS envelope Message: nested more than 8 levels deep",
      "SNS envelope Message: more than 256 object keys",
    ]) {
      assert.ok(log.includes(reason), `the log reports ${JSON.stringify(reason)}`);
    }
    assert.ok(!log.includes("hunter2-token"), "no log line quotes a body");
    const s = await status();
    assert.equal(s.applied?.hash, goodHash, "the last good config stays in force");
    assert.equal(sfu?.received.length, received, "the SFU received nothing");
    await alive("bodies");
    assert.deepEqual(healthFailures("bodies"), [], "every /healthz poll answered within 2 s");
  });

  test("10,000 reload events for hashes that never arrive, then a legitimate change: applied, each message deleted once", async () => {
    health.setPhase("burst");
    const issued = Date.now() - 60_000;
    const bodies = Array.from({ length: BURST }, (_, i) =>
      reload(`sha256:${i.toString(16).padStart(64, "f")}`, new Date(issued + i)),
    );
    const from = deleted;
    const cpu0 = await agent.cpuMs();
    const t0 = performance.now();
    await sendAll(bodies);
    const sent = performance.now() - t0;
    // The legitimate change: the file first (the kubelet), then its event.
    const text = goodConfig(2);
    const hash = await configHash(text);
    await writer.write({ "config.yaml": text });
    await sendAll([reload(hash, new Date())]);
    await sfu?.waitForHash(hash, DRAIN_TIMEOUT_MS);
    await drained(from, BURST + 1, "burst");
    const total = performance.now() - t0;
    const cpu = (await agent.cpuMs()) - cpu0;
    const rss = (await agent.peakRssKiB()) / 1024;
    figures.push(
      `burst: ${BURST} events sent in ${(sent / 1000).toFixed(1)} s, all settled and deleted in ${(total / 1000).toFixed(1)} s, agent CPU ${cpu} ms, peak RSS ${rss.toFixed(0)} MiB, ${retried} delete calls resent by the SDK so far`,
    );
    const twice = [...deletes.values()].filter((n) => n > 1).length;
    figures.push(
      `burst: ${deleted - from} deletes, ${deletes.size} distinct receipts, ${twice} receipts deleted twice`,
    );
    assert.equal(twice, 0, "no receipt deleted twice (a wait settled again)");
    assert.equal(deleted - from, BURST + 1, "each of the 10,001 messages deleted exactly once");
    assert.equal(await queueDepth(), 0, "no message left in the queue");
    const s = await status();
    assert.equal(s.applied?.hash, hash, "the legitimate change is applied");
    assert.ok(
      s.settlements.some((x) => x.hash === hash && x.outcome === "applied"),
      `the legitimate event settled applied: ${JSON.stringify(s.settlements.slice(-3))}`,
    );
    await alive("burst");
    assert.deepEqual(healthFailures("burst"), [], "every /healthz poll answered within 2 s");
    await health.stop();
    const slowest = Math.max(...health.polls.map((p) => p.ms));
    figures.push(`/healthz: ${health.polls.length} polls, slowest ${slowest.toFixed(0)} ms`);
    if (agent.cgroup) figures.push(`memory cgroup: ${JSON.stringify(await agent.cgroup.memoryStats())}`);
  });
});
