/**
 * `sfu-agent status --format json` agrees with the real SFU's own `/status`
 * after each sequence that used to mislead it, with real processes: the
 * agent (`agent/cli.ts run`) and the SFU (`sfu/cli.ts`, dialing the agent).
 *
 * - v1 -> H4 (nacked RESTART_REQUIRED: another server.port) -> H2 (acked)
 *   -> H4 again: H4 is pushed again and settles again;
 * - the SFU restarts and takes H4 at boot: applied, lastError cleared;
 * - the agent restarts: the SFU's hello.applied settles applied with the
 *   SFU's version, and the next change is applied above it.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { agentRunArgs, freePort, NodeProcess, SFU_CLI } from "../../../scripts/local/processes.ts";
import { cli } from "../../helpers/cli-run.ts";
import { configHash, configText } from "../../helpers/config-text.ts";
import { parseStrictJson } from "../../helpers/strict-json.ts";
import { until } from "../../helpers/until.ts";

/** Config `n` with `server.port` set to `port` (the real SFU nacks a port change with RESTART_REQUIRED). */
const cfg = (n: number, port: number) => configText(n).replace("port: 8080", `port: ${port}`);

interface Row {
  ok: boolean;
  status: {
    desired: { version: number; hash: string } | null;
    applied: { version: number; hash: string } | null;
    lastError: { code: string } | null;
    previousError?: { code: string } | null;
    settlements: { hash: string; version: number | null; outcome: string }[];
  };
}

describe("sfu-agent status agrees with the real SFU's /status", { timeout: 120_000 }, () => {
  let dir: string;
  let logs: string;
  let writer: AtomicWriter;
  let agent: NodeProcess | null = null;
  let sfu: NodeProcess | null = null;
  const env = { PATH: process.env["PATH"] ?? "", POD_NAME: "sfu-agreement" };
  let listen: number;
  let http: number;
  let p1: number;
  let p2: number;
  let sfuPort: number;

  const agentUrl = () => `http://127.0.0.1:${http}`;

  async function startAgent(): Promise<void> {
    agent = new NodeProcess(
      `agent-${Date.now()}`,
      [...agentRunArgs(dir, `127.0.0.1:${listen}`, `127.0.0.1:${http}`), "--log-level", "debug"],
      logs,
      env,
    );
    await agent.waitHttpOk(`${agentUrl()}/healthz`, 20_000);
  }

  async function startSfu(port: number): Promise<void> {
    sfu = new NodeProcess(
      `sfu-${Date.now()}`,
      [SFU_CLI, "--agent", `ws://127.0.0.1:${listen}`, "--host", "127.0.0.1"],
      logs,
      env,
    );
    sfuPort = port;
    await sfu.waitHttpOk(`http://127.0.0.1:${port}/healthz`, 30_000);
  }

  /** `sfu-agent status --format json` and the SFU's /status, side by side. */
  async function both(): Promise<{ code: number; row: Row; sfuApplied: { version: number; hash: string } | null }> {
    const r = await cli("status", "--format", "json", agentUrl());
    const rows = JSON.parse(r.stdout) as Row[];
    assert.equal(rows.length, 1);
    assert.ok(rows[0]?.ok, r.stdout);
    const res = await fetch(`http://127.0.0.1:${sfuPort}/status`, { signal: AbortSignal.timeout(3_000) });
    const body = (await res.json()) as { applied: { version: number; hash: string } | null };
    return { code: r.code, row: rows[0] as Row, sfuApplied: body.applied };
  }

  /** Waits until the agent's status satisfies `check`, then asserts that it agrees with the SFU. */
  async function agreeWhen(check: (row: Row) => boolean, what: string) {
    const got = await until(
      async () => {
        const b = await both();
        return check(b.row) && b.row.status.applied?.hash === b.sfuApplied?.hash ? b : null;
      },
      30_000,
      what,
      100,
    );
    assert.deepEqual(got.row.status.applied && { ...got.row.status.applied, at: undefined }, {
      ...got.sfuApplied,
      at: undefined,
    });
    const converged = got.row.status.desired?.hash === got.row.status.applied?.hash;
    assert.equal(got.code, converged ? 0 : 1, "exit code says whether the pod converged");
    return got;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-agreement-"));
    logs = await mkdtemp(join(tmpdir(), "sfu-agreement-logs-"));
    writer = new AtomicWriter(dir);
    [listen, http, p1, p2] = [await freePort(), await freePort(), await freePort(), await freePort()];
    await writer.write({ "config.yaml": cfg(1, p1) });
    await startAgent();
    await startSfu(p1);
  });

  after(async () => {
    await sfu?.stop(3_000);
    await agent?.stop(3_000);
    await rm(dir, { recursive: true, force: true });
    await rm(logs, { recursive: true, force: true });
  });

  test("v1 -> H4 nack -> H2 ack -> H4 again: pushed again, settles again, status agrees", async () => {
    const [v1, h4, h2] = [await configHash(cfg(1, p1)), await configHash(cfg(4, p2)), await configHash(cfg(2, p1))];
    await agreeWhen((r) => r.status.applied?.hash === v1, "v1 applied");
    await writer.write({ "config.yaml": cfg(4, p2) });
    const nacked = await agreeWhen((r) => r.status.lastError?.code === "RESTART_REQUIRED", "H4 nacked");
    assert.equal(nacked.sfuApplied?.hash, v1, "the SFU still runs v1");
    assert.equal(nacked.code, 1, "behind");
    await writer.write({ "config.yaml": cfg(2, p1) });
    const at2 = await agreeWhen((r) => r.status.applied?.hash === h2, "H2 applied");
    assert.equal(at2.code, 0);
    await writer.write({ "config.yaml": cfg(4, p2) });
    const again = await agreeWhen(
      (r) => r.status.settlements.filter((s) => s.hash === h4 && s.outcome === "rejected").length === 2,
      "H4 pushed again and settled again",
    );
    assert.equal(again.row.status.desired?.hash, h4);
    assert.equal(again.sfuApplied?.hash, h2);
    assert.equal(again.row.status.lastError?.code, "RESTART_REQUIRED");
  });

  test("the SFU restarts and takes H4 at boot: applied, lastError cleared, status agrees", async () => {
    const h4 = await configHash(cfg(4, p2));
    await sfu?.stop(5_000);
    await startSfu(p2);
    const got = await agreeWhen((r) => r.status.applied?.hash === h4, "H4 applied at boot");
    assert.equal(got.code, 0);
    assert.equal(got.row.status.lastError, null);
    assert.equal(got.row.status.previousError?.code, "RESTART_REQUIRED");
    assert.equal(got.row.status.settlements.at(-1)?.outcome, "applied");
  });

  test("the agent restarts: hello.applied settles applied with the SFU's version; the next change goes above it", async () => {
    const [h4, h5] = [await configHash(cfg(4, p2)), await configHash(cfg(5, p2))];
    const before = await both();
    const sfuVersion = before.sfuApplied?.version;
    await agent?.stop(5_000);
    await startAgent();
    const got = await agreeWhen(
      (r) => r.status.settlements.length === 1 && r.status.applied?.hash === h4,
      "the adopted config settled",
    );
    assert.deepEqual(
      got.row.status.settlements.map((s) => [s.hash, s.version, s.outcome]),
      [[h4, sfuVersion, "applied"]],
    );
    assert.equal(got.row.status.desired?.version, sfuVersion);
    await writer.write({ "config.yaml": cfg(5, p2) });
    const next = await agreeWhen((r) => r.status.applied?.hash === h5, "H5 applied");
    assert.equal(next.sfuApplied?.version, (sfuVersion as number) + 1);
    assert.deepEqual(
      next.row.status.settlements.map((s) => s.outcome),
      ["applied", "applied"],
      "no superseded settlement with a version the SFU never had",
    );
  });

  test("the agent processes wrote one JSON object per line, each key once ('agent started' has pod once)", async () => {
    let lines = 0;
    let started = 0;
    for (const f of (await readdir(logs)).filter((n) => n.startsWith("agent-"))) {
      for (const line of (await readFile(join(logs, f), "utf8")).split("\n").filter(Boolean)) {
        const o = parseStrictJson(line) as Record<string, unknown>;
        lines++;
        if (o["msg"] === "agent started") {
          started++;
          assert.equal(o["pod"], "sfu-agreement");
        }
      }
    }
    assert.equal(started, 2, "two agent starts");
    assert.ok(lines > 20, `${lines} lines checked`);
  });
});
