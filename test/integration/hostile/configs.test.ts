/**
 * The real agent process, as the image runs it (`node --memory-saver-mode`
 * with Dockerfile.agent's ENV) and under its container's limits from
 * k8s/base/deployment.yaml (memory and CPU, as child cgroups), against the
 * hostile config family (test/helpers/hostile-configs.ts). The agent starts
 * on a good config that a fake SFU acks; then each hostile file is swapped in
 * the way the kubelet swaps a ConfigMap, and finally a second good config.
 *
 * For every hostile file: the process stays alive and is not OOM-killed,
 * `/healthz` answers within 2 s on every poll (every 250 ms, throughout),
 * `/status.lastError.message` is `config.yaml:LINE:COL: ...`, says what is
 * wrong and points at the offending line, the applied and desired configs stay the good one, the SFU
 * receives nothing, /status and the log stay small, no control character
 * reaches the message, and no secret of the file appears in /status,
 * /metrics or the log. The last good config is then pushed and acked: the
 * agent is not wedged.
 *
 * The process and its limits are test/helpers/limited-agent.ts's (without
 * cgroups: `--max-old-space-size` and an RSS watchdog, and the test says
 * so). Bounded: a few minutes on 2 cores.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { configHash } from "../../helpers/config-text.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { goodConfig, type HostileConfig, hostileConfigs } from "../../helpers/hostile-configs.ts";
import { CLI, get, healthPoller, type Running, startLimitedAgent } from "../../helpers/limited-agent.ts";

const KEY = "config.yaml";

/** How long the agent may take to report one hostile file at 200m CPU. */
const CASE_TIMEOUT_MS = 60_000;
/** After the report, how long to watch that nothing is pushed. */
const QUIET_MS = 1_000;
const MAX_STATUS_BYTES = 64 * 1024;
const MAX_LOG_LINE_BYTES = 16 * 1024;
const MAX_LOG_BYTES_PER_CASE = 64 * 1024;

// The biggest size of each kind; smaller sizes are the benchmark's.
const CASES = hostileConfigs().filter((c) => c.smallerOf === null);
const SECRETS = CASES.map((c) => c.secret).filter((s): s is string => s !== null);

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

type Status = {
  applied: { hash: string } | null;
  desired: { hash: string } | null;
  lastError: { code: string; message: string; at: string } | null;
};

describe("agent process under the container's limits vs hostile configs", { timeout: 12 * 60_000 }, () => {
  let dir: string;
  let writer: AtomicWriter;
  let agent: Running;
  let sfu: FakeSfu;
  let health: ReturnType<typeof healthPoller>;
  let goodHash: string;
  let received = 0;
  const peaks: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-agent-hostile-"));
    writer = new AtomicWriter(dir);
    await writer.write({ [KEY]: goodConfig(1) });
    goodHash = await configHash(goodConfig(1));
    agent = await startLimitedAgent(dir);
    console.log(`# agent: node ${CLI} run, ${agent.limitNote}`);
    health = healthPoller(agent.http);
    sfu = await FakeSfu.connect({ url: agent.push });
    await sfu.waitForHash(goodHash, 30_000);
    received = sfu.received.length;
  });

  after(async () => {
    await health?.stop();
    await sfu?.close();
    await agent?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (peaks.length > 0)
      console.log(
        `# per case: agent CPU time, longest /healthz stall, peak RSS (VmHWM) so far:\n#   ${peaks.join("\n#   ")}`,
      );
  });

  const status = async (): Promise<{ text: string; json: Status } | null> => {
    const r = await get(`${agent.http}/status`, 5_000);
    if (typeof r === "string" || r.status !== 200) return null;
    return { text: r.text, json: JSON.parse(r.text) as Status };
  };

  const alive = async (what: string) => {
    const gone = agent.child.exitCode !== null || agent.child.signalCode !== null;
    const stats = agent.cgroup ? await agent.cgroup.memoryStats() : null;
    assert.ok(
      !gone,
      `${what}: the agent exited (code ${agent.child.exitCode}, signal ${agent.child.signalCode})${agent.watchdogKill() ? `, killed by the watchdog: ${agent.watchdogKill()}` : ""}; cgroup ${JSON.stringify(stats)}`,
    );
    if (stats?.oomKills !== null && stats?.oomKills !== undefined) {
      assert.equal(stats.oomKills, 0, `${what}: the OOM killer killed a process of the agent's cgroup`);
    }
  };

  /** Longest time between two answered /healthz polls (or the phase's start and its first answer) during `phase`. */
  const longestStall = (phase: string): number => {
    const polls = health.polls.filter((p) => p.phase === phase);
    let longest = 0;
    let last = polls[0]?.at ?? 0;
    for (const p of polls) {
      if (!p.ok) continue;
      const answered = p.at + p.ms;
      longest = Math.max(longest, answered - last);
      last = answered;
    }
    return longest;
  };

  const failedPolls = (phase: string) =>
    health.polls.filter((p) => p.phase === phase && !p.ok).map((p) => `${p.detail} after ${p.ms.toFixed(0)} ms`);

  test("the good config is applied under the limits", async () => {
    await alive("start");
    const s = await status();
    assert.equal(s?.json.applied?.hash, goodHash);
    assert.deepEqual(failedPolls("start"), []);
  });

  for (const c of CASES) {
    test(`${c.name}: ${c.description} (${c.bytes.toLocaleString("en")} bytes)`, async () => {
      await checkCase(c);
    });
  }

  /**
   * Swaps `c` in, waits for the agent to report it, and checks everything a
   * user relies on. Collects every failed check, so one run shows them all.
   */
  async function checkCase(c: HostileConfig): Promise<void> {
    const failures: string[] = [];
    const check = (ok: boolean, what: string) => {
      if (!ok) failures.push(what);
    };
    const before = await status();
    assert.ok(before, "/status answers before the swap");
    const previousAt = before.json.lastError?.at ?? null;
    const logBytes = agent.logBytes();
    const logLines = agent.log.length;
    const cpuBefore = await agent.cpuMs();
    health.setPhase(c.name);
    await writer.write({ [KEY]: c.text });
    // Wait for the agent to report this file: a new lastError from the config file.
    const deadline = performance.now() + CASE_TIMEOUT_MS;
    for (;;) {
      await alive(c.name);
      const e = (await status())?.json.lastError;
      if (e && e.at !== previousAt && e.message.startsWith(`${KEY}:`)) break;
      if (performance.now() > deadline) {
        failures.push(`no new lastError from ${KEY} within ${CASE_TIMEOUT_MS} ms (lastError: ${JSON.stringify(e)})`);
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await new Promise((r) => setTimeout(r, QUIET_MS));
    await alive(c.name);
    const cpu = (await agent.cpuMs()) - cpuBefore;
    const stall = longestStall(c.name);
    peaks.push(
      `${c.name}: CPU ${cpu} ms, /healthz stall ${stall.toFixed(0)} ms, peak RSS ${((await agent.peakRssKiB()) / 1024).toFixed(0)} MiB`,
    );
    const after = await status();
    assert.ok(after, `${c.name}: /status answers`);
    const message = after.json.lastError?.message ?? "";
    check(
      new RegExp(`^${KEY.replace(".", "\\.")}:\\d+:\\d+: `).test(message),
      `lastError.message does not start with ${KEY}:LINE:COL: ${JSON.stringify(message.slice(0, 300))}`,
    );
    check(
      c.line === null || message.includes(`${KEY}:${c.line}:`),
      `lastError.message points nowhere at line ${c.line}: ${JSON.stringify(message.slice(0, 300))}`,
    );
    check(
      c.problem.test(message),
      `lastError.message does not match ${c.problem}: ${JSON.stringify(message.slice(0, 300))}`,
    );
    check(!CONTROL.test(message), "lastError.message holds raw control characters");
    check(after.json.applied?.hash === goodHash, `applied.hash is ${after.json.applied?.hash}, not the good config's`);
    check(after.json.desired?.hash === goodHash, `desired.hash is ${after.json.desired?.hash}, not the good config's`);
    check(sfu.received.length === received, `the SFU received ${sfu.received.length - received} new config(s)`);
    check(sfu.open, "the SFU connection was closed");
    const statusBytes = Buffer.byteLength(after.text);
    check(statusBytes < MAX_STATUS_BYTES, `/status is ${statusBytes} bytes (limit ${MAX_STATUS_BYTES})`);
    const grew = agent.logBytes() - logBytes;
    check(grew < MAX_LOG_BYTES_PER_CASE, `the log grew by ${grew} bytes (limit ${MAX_LOG_BYTES_PER_CASE})`);
    check(
      agent.longestLogLine() < MAX_LOG_LINE_BYTES,
      `a log line of ${agent.longestLogLine()} bytes (limit ${MAX_LOG_LINE_BYTES})`,
    );
    const metrics = await get(`${agent.http}/metrics`, 5_000);
    check(typeof metrics !== "string" && metrics.status === 200, "/metrics does not answer");
    if (c.secret !== null) {
      const log = agent.log.slice(logLines).join("\n");
      check(!after.text.includes(c.secret), "the secret is in /status");
      check(typeof metrics === "string" || !metrics.text.includes(c.secret), "the secret is in /metrics");
      check(!log.includes(c.secret), "the secret is in the agent's log");
    }
    const failedHealth = failedPolls(c.name);
    check(
      failedHealth.length === 0,
      `/healthz failed ${failedHealth.length} time(s) (${failedHealth.slice(0, 3).join("; ")}): the longest stretch without an answer was ${stall.toFixed(0)} ms while the agent used ${cpu} ms of CPU on this file at ${agent.cpuMillicores === null ? "no CPU limit" : `${agent.cpuMillicores}m`}`,
    );
    assert.deepEqual(failures, [], `${c.name}`);
  }

  test("a good config after the hostile ones is pushed and acked", async () => {
    health.setPhase("recovery");
    const text = goodConfig(2);
    const hash = await configHash(text);
    await writer.write({ [KEY]: text });
    await sfu.waitForHash(hash, CASE_TIMEOUT_MS);
    let s = await status();
    for (let i = 0; s?.json.applied?.hash !== hash && i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      s = await status();
    }
    assert.equal(s?.json.applied?.hash, hash);
    await alive("recovery");
    const metrics = await get(`${agent.http}/metrics`, 5_000);
    const everything = [s?.text ?? "", typeof metrics === "string" ? "" : metrics.text, ...agent.log].join("\n");
    assert.deepEqual(
      SECRETS.filter((secret) => everything.includes(secret)),
      [],
      "no secret of any hostile file in /status, /metrics or the whole log",
    );
    await health.stop();
    const failed = health.polls.filter((p) => !p.ok);
    const slowest = Math.max(...health.polls.map((p) => p.ms));
    console.log(
      `# /healthz: ${health.polls.length} polls, ${failed.length} failed, slowest ${slowest.toFixed(0)} ms; log ${agent.logBytes()} bytes`,
    );
    assert.deepEqual(
      failed.map((p) => `${p.phase}: ${p.detail}`),
      [],
      "every /healthz poll answered within 2 s",
    );
    if (agent.cgroup) console.log(`# memory cgroup: ${JSON.stringify(await agent.cgroup.memoryStats())}`);
  });
});
