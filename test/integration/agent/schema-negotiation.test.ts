/**
 * schemaVersion negotiation through the real push server: a v2 config is
 * pushed only to an SFU whose hello lists 2; a v1-only SFU is not pushed to,
 * the outcome is UNSUPPORTED_SCHEMA in /status (lastError, settlement) and
 * metrics, the connection stays open, and a later v1 config is pushed as
 * usual. A hello with no version in common closes with 4007.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { configText, hashOf, sleep, trackedStarters, until } from "./harness.ts";

const start = trackedStarters();
let root: string;
let secretsDir: string;
let authFile: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "sfu-agent-negotiation-"));
  secretsDir = join(root, "secrets");
  await mkdir(secretsDir);
  await new AtomicWriter(secretsDir).write({ "turn-auth-secret": "negotiation-secret\n" });
  authFile = join(secretsDir, "turn-auth-secret");
});
after(() => rm(root, { recursive: true, force: true }));

describe("schemaVersion negotiation", { timeout: 30_000 }, () => {
  it("a v1-only SFU gets no v2 config: UNSUPPORTED_SCHEMA in /status and metrics, connection kept; a later v1 config is pushed", async () => {
    const v2 = configText(1, { authSecretFile: authFile });
    const a = await start.agent({ initial: v2, secretsDir });
    const sfu = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [1] });
    const status = await until(async () => {
      const s = await a.status();
      return s.lastError?.code === "UNSUPPORTED_SCHEMA" ? s : null;
    });
    assert.equal(status.lastError.message, "the SFU supports schemaVersions [1]; this config is schemaVersion 2");
    const v2Hash = await hashOf(v2, secretsDir);
    assert.equal(status.desired.hash, v2Hash);
    assert.deepEqual(
      status.settlements.map((x: { outcome: string; hash: string; error: { code: string } | null }) => [
        x.hash,
        x.outcome,
        x.error?.code,
      ]),
      [[v2Hash, "rejected", "UNSUPPORTED_SCHEMA"]],
    );
    assert.equal(status.sfu.connected, true);
    const metrics = (await a.get("/metrics")).text;
    assert.match(metrics, /sfu_agent_push_outcomes_total\{transport="websocket",outcome="unsupported_schema"\} 1/);
    assert.match(metrics, /sfu_agent_reloads_total\{outcome="rejected"\} 1/);
    assert.match(metrics, /sfu_agent_pushes_total 0/);
    await sleep(200);
    assert.equal(sfu.received.length, 0, "nothing was pushed");
    assert.ok(sfu.open, "the connection stays open");

    const v1 = configText(2);
    await a.writer.write({ "config.yaml": v1 });
    const pushed = await sfu.waitForHash(await hashOf(v1));
    assert.equal(pushed.schemaVersion, 1);
    const after = await until(async () => {
      const s = await a.status();
      return s.converged ? s : null;
    });
    assert.equal(after.lastError, null);
    assert.equal(after.previousError.code, "UNSUPPORTED_SCHEMA");
  });

  it("an SFU listing 2 gets the v2 config (schemaVersion 2, authSecretFile path, credentialTtl filled in)", async () => {
    const v2 = configText(3, { authSecretFile: authFile });
    const a = await start.agent({ initial: v2, secretsDir });
    const sfu = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [1, 2] });
    const m = await sfu.waitForHash(await hashOf(v2, secretsDir));
    assert.equal(m.schemaVersion, 2);
    const config = m.config as { schemaVersion: number; webrtc: { turnServers: Record<string, unknown>[] } };
    assert.equal(config.schemaVersion, 2);
    assert.deepEqual(config.webrtc.turnServers, [
      { authSecretFile: authFile, credentialTtl: 3600, urls: ["turn:turn.example.com:3478"] },
    ]);
    assert.ok(!JSON.stringify(m).includes("negotiation-secret"), "the secret itself is never pushed");
    await until(async () => (await a.status()).converged);
  });

  it("a hello with no schema version in common closes with 4007", async () => {
    const a = await start.agent({ initial: configText(4) });
    const sfu = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [3] });
    const closed = await sfu.closed;
    assert.equal(closed.code, 4007);
    assert.match(closed.reason, /no common schema version: this agent pushes schemaVersions 1, 2/);
  });
});
