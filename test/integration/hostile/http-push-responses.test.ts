/**
 * Hostile HTTP push answers (`sfu-agent run --push`, PROTOCOL.md section 12)
 * against the real agent process under the sfu-agent container's limits
 * (test/helpers/limited-agent.ts): each new config is answered 422 with an
 * error document nested deep, a key flood around a valid document, a 50 MB
 * body, or 409 with garbage.
 *
 * For each: the agent stays alive (no OOM kill), every /healthz poll answers
 * within 2 s, the SFU's good config stays the applied one, the refusal is
 * reported in /status.lastError (bounded, quoting nothing of the body), and a
 * good answer afterwards is applied.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { configHash } from "../../helpers/config-text.ts";
import { goodConfig } from "../../helpers/hostile-configs.ts";
import { HttpSfu } from "../../helpers/http-sfu.ts";
import { get, healthPoller, type Running, startLimitedAgent } from "../../helpers/limited-agent.ts";

type Status = {
  applied: { hash: string } | null;
  lastError: { code: string; message: string; at: string } | null;
};

describe("agent --push under the container's limits vs hostile HTTP answers", { timeout: 3 * 60_000 }, () => {
  let dir: string;
  let writer: AtomicWriter;
  let sfu: HttpSfu;
  let agent: Running;
  let health: ReturnType<typeof healthPoller>;

  before(async () => {
    sfu = await HttpSfu.start();
    dir = await mkdtemp(join(tmpdir(), "sfu-agent-hostile-push-"));
    writer = new AtomicWriter(dir);
    await writer.write({ "config.yaml": goodConfig(1) });
    agent = await startLimitedAgent(dir, { listen: false, args: ["--push", sfu.url(), "--ack-timeout", "3s"] });
    console.log(`# agent: ${agent.limitNote}`);
    health = healthPoller(agent.http);
  });

  after(async () => {
    await health?.stop();
    await agent?.stop();
    await sfu?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const status = async (): Promise<{ text: string; json: Status }> => {
    const r = await get(`${agent.http}/status`, 5_000);
    assert.ok(typeof r !== "string" && r.status === 200, "/status answers");
    return { text: r.text, json: JSON.parse(r.text) as Status };
  };

  const alive = async (what: string) => {
    const stats = agent.cgroup ? await agent.cgroup.memoryStats() : null;
    assert.ok(
      agent.child.exitCode === null && agent.child.signalCode === null,
      `${what}: the agent exited (code ${agent.child.exitCode}, signal ${agent.child.signalCode}); cgroup ${JSON.stringify(stats)}`,
    );
    if (typeof stats?.oomKills === "number") assert.equal(stats.oomKills, 0, `${what}: OOM kill in the agent's cgroup`);
  };

  const until = async (pred: (s: Status) => boolean, what: string): Promise<{ text: string; json: Status }> => {
    const t0 = performance.now();
    for (;;) {
      await alive(what);
      const s = await status();
      if (pred(s.json)) return s;
      assert.ok(performance.now() - t0 < 30_000, `${what}: not within 30 s: ${s.text.slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  test("each hostile answer is reported, the good config stays applied, a good answer afterwards is applied", async () => {
    const good = await configHash(goodConfig(1));
    await until((s) => s.applied?.hash === good, "the first config");
    const keys = Array.from({ length: 3_000 }, (_, i) => `"k${i}":"FILLER"`).join(",");
    const cases: [string, number, string][] = [
      ["deep error document", 422, `{"code":"X","message":"FILLER","x":${"[".repeat(30_000)}${"]".repeat(30_000)}}`],
      ["key flood around a valid error document", 422, `{"code":"BAD","message":"FILLER",${keys}}`],
      ["50 MB error body", 422, `{"code":"BIG","message":"${"FILLER".repeat(9_000_000)}"}`],
      ["garbage 409", 409, `<html>${"FILLER".repeat(100_000)}</html>`],
    ];
    let n = 1;
    for (const [name, code, body] of cases) {
      health.setPhase(name);
      const before = (await status()).json.lastError?.at ?? null;
      sfu.script.push({ kind: "status", status: code, body });
      n++;
      await writer.write({ "config.yaml": goodConfig(n) });
      const s = await until((x) => x.lastError !== null && x.lastError.at !== before, `${name}: a new lastError`);
      assert.equal(s.json.applied?.hash, good, `${name}: the good config stays applied`);
      assert.ok(!s.text.includes("FILLER"), `${name}: /status quotes the body: ${s.text.slice(0, 300)}`);
      assert.ok(s.text.length < 64 * 1024, `${name}: /status is ${s.text.length} bytes`);
      assert.deepEqual(
        health.polls.filter((p) => p.phase === name && !p.ok).map((p) => p.detail),
        [],
        `${name}: every /healthz poll answered within 2 s`,
      );
    }
    health.setPhase("recovery");
    sfu.script.length = 0;
    n++;
    await writer.write({ "config.yaml": goodConfig(n) });
    const last = await configHash(goodConfig(n));
    await until((s) => s.applied?.hash === last, "a good answer after the hostile ones");
    await health.stop();
    const failed = health.polls.filter((p) => !p.ok).map((p) => `${p.phase}: ${p.detail}`);
    console.log(
      `# /healthz: ${health.polls.length} polls, slowest ${Math.max(...health.polls.map((p) => p.ms)).toFixed(0)} ms; peak RSS ${((await agent.peakRssKiB()) / 1024).toFixed(0)} MiB`,
    );
    assert.deepEqual(failed, []);
  });
});
