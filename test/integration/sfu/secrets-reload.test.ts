/**
 * secrets-reload over the real control connection: the SFU advertises the
 * feature and schema versions [1, 2] in hello; a reload after the mounted
 * auth secret changed is acked with the applied version and hash and the
 * next joiner's credential comes from the new secret; an unreadable file is
 * nacked APPLY_FAILED with the field's pointer while joins keep getting
 * credentials from the previous secret; a reload naming another version is
 * nacked; outcomes are counted; the secret appears in no log, status or metric.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";
import { type SfuUnderTest, startWithAgent, testConfig } from "./harness.ts";

const FIRST = "Kp4-first-auth-secret-Kp4";
const SECOND = "Kp4-second-auth-secret-Kp4";

describe("secrets-reload on the SFU", { timeout: 60_000 }, () => {
  let sfu: SfuUnderTest;
  let dir: string;
  let writer: AtomicWriter;
  const clients: WeriftTestClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-reload-"));
    writer = new AtomicWriter(dir);
    await writer.write({ "turn-auth-secret": `${FIRST}\n` }, { defaultMode: 0o440 });
    const base = testConfig();
    sfu = await startWithAgent(
      {
        ...base,
        schemaVersion: 2,
        webrtc: {
          ...(base.webrtc as Record<string, unknown>),
          turnServers: [{ urls: ["turn:127.0.0.1:3478"], authSecretFile: join(dir, "turn-auth-secret") }],
        },
      },
      { secretsDir: dir },
    );
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await sfu?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const joinedCredential = async (name: string) => {
    const c = await WeriftTestClient.join({ url: sfu.wsUrl, room: "r", name, publish: { audio: false, video: false } });
    clients.push(c);
    const server = c.joined.iceServers[0] as { username: string; credential: string };
    return { ...server, id: c.joined.id as string };
  };
  const signedBy = (secret: string, s: { username: string; credential: string }) =>
    createHmac("sha1", secret).update(s.username).digest("base64") === s.credential;

  it("hello lists schemaVersions [1, 2] and the secrets-reload feature", async () => {
    const hello = (await sfu.agent!.waitForHello(0)) as Record<string, unknown>;
    assert.deepEqual(hello.schemaVersions, [1, 2]);
    assert.deepEqual(hello.features, ["secrets-reload"]);
  });

  it("acks a reload and mints from the new secret; nacks an unreadable file and keeps the previous secret", async () => {
    const first = await joinedCredential("a");
    assert.ok(signedBy(FIRST, first));
    assert.equal(first.username.split(":")[1], first.id);

    await writer.write({ "turn-auth-secret": `${SECOND}\n` }, { defaultMode: 0o440 });
    const applied = sfu.server.state.applied!;
    const ack = await sfu.agent!.secretsReloadAndWait(applied, 1);
    assert.deepEqual(ack, { type: "ack", nonce: ack.nonce, version: applied.version, hash: applied.hash });
    assert.ok(signedBy(SECOND, await joinedCredential("b")));

    // The kubelet drops the key (Secret edited without it): the file is gone.
    await writer.write({ "other-key": "x" }, { defaultMode: 0o440 });
    const nack = await sfu.agent!.secretsReloadAndWait(applied, 2);
    assert.equal(nack.type, "nack");
    if (nack.type === "nack") {
      assert.equal(nack.error.code, "APPLY_FAILED");
      assert.equal(nack.error.path, "/webrtc/turnServers/0/authSecretFile");
      assert.match(nack.error.message, /does not exist/);
      assert.deepEqual(nack.applied, applied);
    }
    assert.ok(signedBy(SECOND, await joinedCredential("c")), "previous secret still in use");

    const stale = await sfu.agent!.secretsReloadAndWait({ version: applied.version + 5, hash: applied.hash }, 3);
    assert.equal(stale.type, "nack");
    assert.deepEqual(sfu.server.state.applied, applied, "reloads never change the applied version");

    const metrics = await (await fetch(`${sfu.httpUrl}/metrics`)).text();
    assert.match(metrics, /sfu_secrets_reloads_total\{outcome="ack"\} 1/);
    assert.match(metrics, /sfu_secrets_reloads_total\{outcome="nack"\} 2/);
    const status = await (await fetch(`${sfu.httpUrl}/status`)).text();
    for (const text of [metrics, status, ...sfu.logs.raw]) {
      assert.ok(!text.includes(FIRST) && !text.includes(SECOND), "a secret leaked");
    }
  });
});
