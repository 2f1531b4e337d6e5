/**
 * Standalone `sfu-server --config FILE` (no agent, so no secrets-reload):
 * the SFU watches its secrets directory itself. A rotation written as the
 * kubelet writes a projected Secret (AtomicWriter) is picked up: the next
 * joiner's credential comes from the new secret while a participant already
 * in the room stays connected; a file that disappears keeps the previous
 * secret in use (counted once as nack); it comes back and is used again.
 * The secret appears in no log, status or metric.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import WebSocket from "ws";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { SfuServer } from "../../../sfu/server.ts";
import { until } from "../../helpers/until.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";
import { LogCapture, sleep, testConfig } from "./harness.ts";

const FIRST = "St4-first-auth-secret-St4";
const SECOND = "St4-second-auth-secret-St4";
const THIRD = "St4-third-auth-secret-St4";

describe("standalone sfu-server: a rotated authSecretFile", { timeout: 60_000 }, () => {
  let dir: string;
  let secrets: string;
  let writer: AtomicWriter;
  let server: SfuServer;
  const logs = new LogCapture();
  const clients: WeriftTestClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-standalone-secrets-"));
    secrets = join(dir, "secrets");
    writer = new AtomicWriter(secrets);
    await writer.write({ "turn-auth-secret": `${FIRST}\n` }, { defaultMode: 0o440 });
    const base = testConfig({ logLevel: "info" });
    const config = {
      ...base,
      schemaVersion: 2,
      webrtc: {
        ...(base.webrtc as Record<string, unknown>),
        turnServers: [{ urls: ["turn:127.0.0.1:3478"], authSecretFile: join(secrets, "turn-auth-secret") }],
      },
    };
    const file = join(dir, "config.yaml");
    await writeFile(file, JSON.stringify(config));
    server = new SfuServer({
      logger: pino({ level: "info" }, logs.stream),
      configFile: file,
      port: 0,
      host: "127.0.0.1",
      secretsDir: secrets,
      secretWatch: { debounceMs: 20, resyncIntervalMs: 0 },
    });
    await server.start();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const wsUrl = () => `ws://127.0.0.1:${server.port}/ws`;
  const join_ = async (name: string) => {
    const c = await WeriftTestClient.join({ url: wsUrl(), room: "r", name, publish: { audio: false, video: false } });
    clients.push(c);
    return c;
  };
  const credential = (c: WeriftTestClient) => c.joined.iceServers[0] as { username: string; credential: string };
  const signedBy = (secret: string, s: { username: string; credential: string }) =>
    createHmac("sha1", secret).update(s.username).digest("base64") === s.credential;
  const logged = (msg: string) => logs.lines.filter((l) => l.msg === msg).length;

  it("new joiners get the rotated secret, the live participant stays, a missing file keeps the previous one", async () => {
    const a = await join_("a");
    assert.ok(signedBy(FIRST, credential(a)));
    const applied = server.state.applied;

    await writer.write({ "turn-auth-secret": `${SECOND}\n` }, { defaultMode: 0o440 });
    await until(() => logged("secret rotation applied") === 1, 10_000, "the rotation to be applied");
    const b = await join_("b");
    assert.ok(signedBy(SECOND, credential(b)), "the new joiner's credential comes from the new secret");
    assert.equal(a.ws.readyState, WebSocket.OPEN, "the participant in the room is untouched");
    assert.ok(!a.messages.some((m) => m.type === "error"));
    assert.deepEqual(server.state.applied, applied, "a rotation never changes the applied version or hash");
    const status = (await (await fetch(`http://127.0.0.1:${server.port}/status`)).json()) as { participants: number };
    assert.equal(status.participants, 2);

    // The key is dropped from the Secret: the file is gone; the previous secret stays in use.
    await writer.write({ "other-key": "x" }, { defaultMode: 0o440 });
    await until(() => logs.lines.some((l) => l.msg === "secrets reload failed; previous secrets stay in use"), 10_000);
    assert.ok(signedBy(SECOND, credential(await join_("c"))), "previous secret still in use");

    await writer.write({ "turn-auth-secret": `${THIRD}\n` }, { defaultMode: 0o440 });
    await until(() => logged("secret rotation applied") === 2, 10_000, "the second rotation");
    assert.ok(signedBy(THIRD, credential(await join_("d"))));
    await sleep(100);

    const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    assert.match(metrics, /sfu_secrets_reloads_total\{outcome="ack"\} 2/);
    assert.match(metrics, /sfu_secrets_reloads_total\{outcome="nack"\} 1/);
    const statusText = await (await fetch(`http://127.0.0.1:${server.port}/status`)).text();
    for (const text of [metrics, statusText, ...logs.raw]) {
      for (const s of [FIRST, SECOND, THIRD]) assert.ok(!text.includes(s), "a secret leaked");
    }
  });
});
