import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { configHash } from "../../../protocol/index.ts";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { ConfigState } from "../../../sfu/config-state.ts";
import { iceServersFor } from "../../../sfu/ice-servers.ts";

function setup(portOverride: number | null = null, secretsDir?: string) {
  const lines: string[] = [];
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  );
  const state = new ConfigState();
  return {
    state,
    logger,
    lines,
    applier: new ConfigApplier({
      state,
      logger,
      portOverride,
      now: () => 42,
      ...(secretsDir !== undefined ? { secretsDir } : {}),
    }),
  };
}

const cfg = (patch: Record<string, unknown> = {}) => ({
  schemaVersion: 1,
  server: { port: 8080 },
  webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"], ...patch },
  logging: { level: "warn" },
});
const input = (config: unknown, version = 1, extra: Record<string, unknown> = {}) => ({
  version,
  hash: configHash(config),
  revision: null,
  schemaVersion: 1,
  config,
  ...extra,
});

describe("ConfigApplier", () => {
  it("applies a valid version: frozen snapshot, log level at once", async () => {
    const { state, logger, applier } = setup();
    const out = await applier.apply(input(cfg()));
    assert.equal(out.ok, true);
    assert.deepEqual(state.applied, { version: 1, hash: configHash(cfg()) });
    assert.equal(logger.level, "warn");
    assert.ok(Object.isFrozen(state.current!.config.webrtc.codecs));
    assert.equal(state.current!.appliedAt, 42);
  });

  it("nacks a server.port change with RESTART_REQUIRED and keeps the old version", async () => {
    const { state, applier } = setup();
    await applier.apply(input(cfg()));
    const changed = { ...cfg(), server: { port: 9090 } };
    const out = await applier.apply(input(changed, 2));
    assert.equal(out.ok, false);
    if (!out.ok) assert.deepEqual([out.error.code, out.error.path], ["RESTART_REQUIRED", "/server/port"]);
    assert.equal(state.applied!.version, 1);
  });

  it("acks a server.port change when --port overrides it", async () => {
    const { applier } = setup(0);
    await applier.apply(input(cfg()));
    const out = await applier.apply(input({ ...cfg(), server: { port: 9090 } }, 2));
    assert.ok(out.ok && out.portIgnored);
  });

  it("nacks UNSUPPORTED_SCHEMA, INVALID_CONFIG (with path) and hash mismatches", async () => {
    const { applier, state } = setup();
    const v3 = { ...cfg(), schemaVersion: 3 };
    const a = await applier.apply(input(v3, 1, { schemaVersion: 3 }));
    assert.ok(!a.ok && a.error.code === "UNSUPPORTED_SCHEMA");
    const b = await applier.apply(input(cfg({ icePortRange: [30000, 20000] })));
    assert.ok(!b.ok && b.error.code === "INVALID_CONFIG" && b.error.path === "/webrtc/icePortRange");
    const c = await applier.apply(input(cfg(), 1, { hash: configHash({}) }));
    assert.ok(!c.ok && c.error.code === "INVALID_CONFIG" && /hash mismatch/.test(c.error.message));
    const d = await applier.apply(input(cfg(), 1, { schemaVersion: 3 }));
    assert.ok(!d.ok && d.error.code === "UNSUPPORTED_SCHEMA");
    assert.equal(state.applied, null);
  });

  it("reads TURN credentials from credentialFile for clients, never logging them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-cred-"));
    try {
      await writeFile(join(dir, "turn"), "hunter2\n");
      const { state, applier, lines } = setup(null, dir);
      const config = cfg({
        turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credentialFile: join(dir, "turn") }],
      });
      const out = await applier.apply(input(config));
      assert.equal(out.ok, true);
      assert.deepEqual(iceServersFor(state.current!.turn, "p"), [
        { urls: ["turn:t.example:3478"], username: "u", credential: "hunter2" },
      ]);
      assert.ok(!lines.join("").includes("hunter2"));
      const inline = cfg({
        turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credential: "inline-secret" }],
      });
      assert.equal((await applier.apply(input(inline, 2))).ok, true);
      assert.ok(!lines.join("").includes("inline-secret"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("nacks APPLY_FAILED (not INVALID_CONFIG) when the credential file is missing: it can appear later", async () => {
    const { applier } = setup(null, "/nonexistent");
    const config = cfg({
      turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credentialFile: "/nonexistent/turn" }],
    });
    const out = await applier.apply(input(config));
    assert.ok(!out.ok && out.error.path === "/webrtc/turnServers/0/credentialFile");
    assert.equal(out.ok ? null : out.error.code, "APPLY_FAILED");
  });

  it("refuses secret files outside the secrets directory: INVALID_CONFIG naming the pointer, nothing read", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-secrets-"));
    const outside = await mkdtemp(join(tmpdir(), "sfu-outside-"));
    try {
      await writeFile(join(outside, "leak"), "outside-content\n");
      await symlink(join(outside, "leak"), join(dir, "escape"));
      const { applier, state } = setup(null, dir);
      const cases: [string, string, RegExp][] = [
        ["/etc/passwd", "INVALID_CONFIG", /outside the secrets directory/],
        [`${dir}/../${basename(outside)}/leak`, "INVALID_CONFIG", /"\.\." segment/],
        [join(dir, "escape"), "APPLY_FAILED", /symlink leading outside the secrets directory/],
      ];
      for (const [path, code, message] of cases) {
        const config = cfg({ turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credentialFile: path }] });
        const out = await applier.apply(input(config));
        assert.ok(!out.ok, path);
        if (!out.ok) {
          assert.equal(out.error.code, code, path);
          assert.equal(out.error.path, "/webrtc/turnServers/0/credentialFile", path);
          assert.match(out.error.message, message);
          assert.ok(!out.error.message.includes("outside-content"));
        }
      }
      assert.equal(state.applied, null);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });

  it("accepts the kubelet's ..data symlinks inside the secrets directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-secrets-"));
    try {
      await mkdir(join(dir, "..2026_12_02_00_00_00.1"));
      await writeFile(join(dir, "..2026_12_02_00_00_00.1", "turn-auth-secret"), "kubelet-secret\n");
      await symlink("..2026_12_02_00_00_00.1", join(dir, "..data"));
      await symlink("..data/turn-auth-secret", join(dir, "turn-auth-secret"));
      const { applier, state } = setup(null, dir);
      const config = v2cfg([{ urls: ["turn:t.example:3478"], authSecretFile: join(dir, "turn-auth-secret") }]);
      const out = await applier.apply(input(config, 1, { schemaVersion: 2 }));
      assert.ok(out.ok, JSON.stringify(out));
      const [server] = iceServersFor(state.current!.turn, "p1", 1_700_000_000_000);
      const username = `${1_700_000_000 + 3600}:p1`;
      assert.deepEqual(server, {
        urls: ["turn:t.example:3478"],
        username,
        credential: createHmac("sha1", "kubelet-secret").update(username).digest("base64"),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("v2 authSecretFile: per-participant credentials with credentialTtl; the secret in no log line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-secrets-"));
    try {
      await writeFile(join(dir, "auth"), "Qx7-auth-secret-Qx7\n");
      const { applier, state, lines } = setup(null, dir);
      const config = v2cfg([
        { urls: ["turn:t.example:3478"], authSecretFile: join(dir, "auth"), credentialTtl: 120 },
        { urls: ["stun:s.example:3478"] },
      ]);
      const out = await applier.apply(input(config, 1, { schemaVersion: 2 }));
      assert.ok(out.ok, JSON.stringify(out));
      const a = iceServersFor(state.current!.turn, "alice", 1_000_000);
      const b = iceServersFor(state.current!.turn, "bob", 1_000_000);
      assert.equal(a[0]!.username, "1120:alice");
      assert.equal(b[0]!.username, "1120:bob");
      assert.notEqual(a[0]!.credential, b[0]!.credential);
      assert.deepEqual(a[1], { urls: ["stun:s.example:3478"] });
      assert.ok(!lines.join("").includes("Qx7-auth-secret-Qx7"));
      assert.ok(!JSON.stringify(state.current).includes("Qx7-auth-secret-Qx7"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reloadSecrets: a rotated secret is used for the next credentials; a failed read keeps the previous one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sfu-secrets-"));
    try {
      await writeFile(join(dir, "auth"), "first\n");
      const { applier, state } = setup(null, dir);
      const config = v2cfg([{ urls: ["turn:t.example:3478"], authSecretFile: join(dir, "auth") }]);
      assert.ok((await applier.apply(input(config, 7, { schemaVersion: 2 }))).ok);
      const applied = state.applied!;
      const sign = (secret: string, user: string) => createHmac("sha1", secret).update(user).digest("base64");
      const now = 1_000_000;
      const user = `${1000 + 3600}:p`;
      assert.equal(iceServersFor(state.current!.turn, "p", now)[0]!.credential, sign("first", user));

      let listenerCalls = 0;
      state.onChange(() => listenerCalls++);
      assert.deepEqual(await applier.reloadSecrets(applied), { ok: true, changed: false });
      await writeFile(join(dir, "auth"), "second\n");
      assert.deepEqual(await applier.reloadSecrets(applied), { ok: true, changed: true });
      assert.equal(iceServersFor(state.current!.turn, "p", now)[0]!.credential, sign("second", user));
      assert.deepEqual(state.applied, applied, "a reload keeps version and hash");
      assert.equal(listenerCalls, 0, "a reload is not a config change for listeners");

      await rm(join(dir, "auth"));
      const failed = await applier.reloadSecrets(applied);
      assert.ok(!failed.ok);
      if (!failed.ok) {
        assert.equal(failed.error.code, "APPLY_FAILED");
        assert.equal(failed.error.path, "/webrtc/turnServers/0/authSecretFile");
        assert.match(failed.error.message, /does not exist/);
      }
      assert.equal(iceServersFor(state.current!.turn, "p", now)[0]!.credential, sign("second", user));

      const stale = await applier.reloadSecrets({ version: 6, hash: applied.hash });
      assert.ok(!stale.ok && stale.error.code === "APPLY_FAILED" && /version 7/.test(stale.error.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reloadSecrets before any config is APPLY_FAILED", async () => {
    const { applier } = setup();
    const out = await applier.reloadSecrets({ version: 1, hash: configHash({}) });
    assert.ok(!out.ok && out.error.code === "APPLY_FAILED");
  });
});

function v2cfg(turnServers: unknown[], extra: Record<string, unknown> = {}) {
  return {
    schemaVersion: 2,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"], turnServers },
    logging: { level: "warn" },
    ...extra,
  };
}
