/**
 * Secret rotation through the real agent: the secrets directory is updated
 * exactly as the kubelet updates a projected Secret volume (AtomicWriter),
 * config.yaml stays byte-identical. An SFU advertising `secrets-reload` gets
 * one per change (generation counting up, version/hash of the applied
 * config); its ack or nack shows in /status `secrets` and
 * `sfu_agent_secret_rotations_total`; an SFU without the feature never gets
 * one (outcome `unsupported`); a new connection to an SFU already running
 * the desired config gets one reload. The config hash never changes with the
 * secret, and the secret's text is nowhere in logs, /status or /metrics.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { HttpSfu } from "../../helpers/http-sfu.ts";
import { configText, hashOf, sleep, type TestAgent, trackedStarters, until } from "./harness.ts";

const SECRET_1 = "rotation-Secret-One-7f3a9c";
const SECRET_2 = "rotation-Secret-Two-b81e44";
const SECRET_3 = "rotation-Secret-Three-0c5d21";
const SECRET_4 = "rotation-Secret-Four-e9a077";

const start = trackedStarters();
let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "sfu-agent-rotation-"));
});
after(() => rm(root, { recursive: true, force: true }));

async function secretsFixture(name: string, secret: string): Promise<{ dir: string; writer: AtomicWriter }> {
  const dir = join(root, name);
  await mkdir(dir);
  const writer = new AtomicWriter(dir);
  await writer.write({ "turn-auth-secret": `${secret}\n` });
  return { dir, writer };
}

function assertNoSecret(a: TestAgent, texts: string[]): void {
  for (const secret of [SECRET_1, SECRET_2, SECRET_3, SECRET_4]) {
    for (const line of a.logs) assert.ok(!line.includes(secret), `log line leaks ${secret}: ${line}`);
    for (const t of texts) assert.ok(!t.includes(secret), `leaks ${secret}`);
  }
}

describe("secret rotation", { timeout: 60_000 }, () => {
  it("reload per change, acked and nacked, in /status and metrics; the config hash never moves", async () => {
    const { dir, writer } = await secretsFixture("a", SECRET_1);
    const text = configText(1, { authSecretFile: join(dir, "turn-auth-secret") });
    const hash = await hashOf(text, dir);
    const a = await start.agent({ initial: text, secretsDir: dir, logLevel: "trace" });
    const sfu = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [1, 2], features: ["secrets-reload"] });
    const pushed = await sfu.waitForHash(hash);
    let s = await until(async () => {
      const x = await a.status();
      return x.converged && x.secrets.applied === 1 ? x : null;
    });
    assert.deepEqual(
      { ...s.secrets, at: typeof s.secrets.at },
      {
        generation: 1,
        applied: 1,
        at: "string",
        lastError: null,
      },
    );
    await sleep(300);
    assert.equal(sfu.reloads.length, 0, "a config ack covers the files it read: no reload");

    // Rotation 1: acked.
    await writer.write({ "turn-auth-secret": `${SECRET_2}\n` });
    const r2 = await sfu.waitForReload((m) => m.generation === 2);
    assert.deepEqual(r2, {
      type: "secrets-reload",
      nonce: r2.nonce,
      version: pushed.version,
      hash,
      generation: 2,
    });
    assert.ok(r2.nonce > pushed.nonce);
    s = await until(async () => {
      const x = await a.status();
      return x.secrets.applied === 2 ? x : null;
    });
    assert.equal(s.secrets.lastError, null);
    assert.equal(s.desired.hash, hash, "the config hash is the Git content's, whatever the secret");
    assert.equal(s.applied.hash, hash);

    // Rotation 2: the SFU cannot read the new file.
    sfu.setReloadReply({
      kind: "nack",
      code: "APPLY_FAILED",
      message: "/webrtc/turnServers/0/authSecretFile: unreadable",
    });
    await writer.write({ "turn-auth-secret": `${SECRET_3}\n` });
    await sfu.waitForReload((m) => m.generation === 3);
    s = await until(async () => {
      const x = await a.status();
      return x.secrets.lastError ? x : null;
    });
    assert.equal(s.secrets.generation, 3);
    assert.equal(s.secrets.applied, 2, "the SFU still reads generation 2");
    assert.equal(s.secrets.lastError.code, "APPLY_FAILED");

    // Rotation 3: fixed.
    sfu.setReloadReply({ kind: "ack" });
    await writer.write({ "turn-auth-secret": `${SECRET_4}\n` });
    await sfu.waitForReload((m) => m.generation === 4);
    s = await until(async () => {
      const x = await a.status();
      return x.secrets.applied === 4 ? x : null;
    });
    assert.equal(s.secrets.lastError, null);
    assert.equal(sfu.received.length, 1, "no config was pushed for a rotation");
    assert.equal(sfu.reloads.length, 3, "one reload per change, the nacked one not re-sent");

    const metrics = (await a.get("/metrics")).text;
    assert.match(metrics, /sfu_agent_secret_rotations_total\{outcome="ack"\} 2/);
    assert.match(metrics, /sfu_agent_secret_rotations_total\{outcome="nack"\} 1/);
    assert.match(metrics, /sfu_agent_secret_rotations_total\{outcome="unsupported"\} 0/);
    assertNoSecret(a, [(await a.get("/status")).text, metrics]);
    assert.ok(
      a.logs.some((l) => l.includes("secret files changed") && l.includes("/webrtc/turnServers/0/authSecretFile")),
      "the change is logged by pointer",
    );
  });

  it("an SFU without the feature never gets secrets-reload; the change is recorded as unsupported", async () => {
    const { dir, writer } = await secretsFixture("b", SECRET_1);
    const text = configText(2, { authSecretFile: join(dir, "turn-auth-secret") });
    const a = await start.agent({ initial: text, secretsDir: dir });
    const sfu = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [1, 2] });
    await sfu.waitForHash(await hashOf(text, dir));
    await until(async () => (await a.status()).converged);
    await writer.write({ "turn-auth-secret": `${SECRET_2}\n` });
    const s = await until(async () => {
      const x = await a.status();
      return x.secrets.lastError ? x : null;
    });
    assert.equal(s.secrets.lastError.code, "SECRETS_RELOAD_UNSUPPORTED");
    assert.equal(s.secrets.generation, 2);
    assert.equal(s.secrets.applied, 1);
    await sleep(200);
    assert.ok(sfu.open, "an unknown message type would have closed the connection");
    assert.equal(sfu.reloads.length, 0);
    assert.match((await a.get("/metrics")).text, /sfu_agent_secret_rotations_total\{outcome="unsupported"\} 1/);
  });

  it("a new connection to an SFU already running the desired config gets one reload; a timeout is reported", async () => {
    const { dir, writer } = await secretsFixture("c", SECRET_1);
    const text = configText(3, { authSecretFile: join(dir, "turn-auth-secret") });
    const hash = await hashOf(text, dir);
    const a = await start.agent({ initial: text, secretsDir: dir, ackTimeoutMs: 300 });
    const first = await start.sfu({ url: a.agent.pushUrl, schemaVersions: [1, 2], features: ["secrets-reload"] });
    const pushed = await first.waitForHash(hash);
    await until(async () => (await a.status()).secrets.applied === 1);
    await first.close();
    // The files change while no SFU is connected.
    await writer.write({ "turn-auth-secret": `${SECRET_2}\n` });
    await until(async () => (await a.status()).secrets.generation === 2);
    const again = await start.sfu({
      url: a.agent.pushUrl,
      schemaVersions: [1, 2],
      features: ["secrets-reload"],
      applied: { version: pushed.version, hash },
      reloadReply: { kind: "stall" },
    });
    const r = await again.waitForReload();
    assert.equal(r.generation, 2);
    assert.equal(r.hash, hash);
    const s = await until(async () => {
      const x = await a.status();
      return x.secrets.lastError ? x : null;
    });
    assert.equal(s.secrets.lastError.code, "SECRETS_RELOAD_TIMEOUT");
    assert.equal(s.secrets.applied, null, "not confirmed on this connection");
    assert.equal(again.received.length, 0, "the SFU runs the desired config: no push");
    assert.match((await a.get("/metrics")).text, /sfu_agent_secret_rotations_total\{outcome="timeout"\} 1/);
  });

  it("HTTP push mode has no secrets-reload: a change is recorded as unsupported", async () => {
    const { dir, writer } = await secretsFixture("e", SECRET_1);
    const text = configText(5, { authSecretFile: join(dir, "turn-auth-secret") });
    const httpSfu = await HttpSfu.start();
    try {
      const a = await start.agent({ initial: text, secretsDir: dir, push: httpSfu.url() });
      await until(async () => (await a.status()).converged);
      await writer.write({ "turn-auth-secret": `${SECRET_2}\n` });
      const s = await until(async () => {
        const x = await a.status();
        return x.secrets.lastError ? x : null;
      });
      assert.equal(s.secrets.lastError.code, "SECRETS_RELOAD_UNSUPPORTED");
      assert.match(s.secrets.lastError.message, /HTTP push mode has no secrets-reload/);
      assert.equal(s.desired.hash, await hashOf(text, dir));
      assert.equal(s.secrets.applied, 1);
      // A new config is applied: the SFU read the files again, as of generation 2.
      await a.writer.write({ "config.yaml": configText(6, { authSecretFile: join(dir, "turn-auth-secret") }) });
      const after = await until(async () => {
        const x = await a.status();
        return x.secrets.applied === 2 ? x : null;
      });
      assert.equal(after.secrets.lastError, null);
    } finally {
      await httpSfu.close();
    }
  });

  it("a referenced file that disappears is a change too (the SFU's nack tells why)", async () => {
    const { dir, writer } = await secretsFixture("d", SECRET_1);
    const text = configText(4, { authSecretFile: join(dir, "turn-auth-secret") });
    const a = await start.agent({ initial: text, secretsDir: dir });
    const sfu = await start.sfu({
      url: a.agent.pushUrl,
      schemaVersions: [1, 2],
      features: ["secrets-reload"],
      reloadReply: { kind: "nack", code: "APPLY_FAILED" },
    });
    await sfu.waitForHash(await hashOf(text, dir));
    await writer.write({ other: "x\n" });
    const r = await sfu.waitForReload();
    assert.equal(r.generation, 2);
    await until(async () => (await a.status()).secrets.lastError?.code === "APPLY_FAILED");
  });
});
