import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { configHash } from "../../../protocol/index.ts";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { ConfigState } from "../../../sfu/config-state.ts";

function setup(portOverride: number | null = null) {
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
  return { state, logger, lines, applier: new ConfigApplier({ state, logger, portOverride, now: () => 42 }) };
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
    const v2 = { ...cfg(), schemaVersion: 2 };
    const a = await applier.apply(input(v2, 1, { schemaVersion: 2 }));
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
      const { state, applier, lines } = setup();
      const config = cfg({
        turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credentialFile: join(dir, "turn") }],
      });
      const out = await applier.apply(input(config));
      assert.equal(out.ok, true);
      assert.deepEqual(state.current!.iceServers, [
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
    const { applier } = setup();
    const config = cfg({
      turnServers: [{ urls: ["turn:t.example:3478"], username: "u", credentialFile: "/nonexistent/turn" }],
    });
    const out = await applier.apply(input(config));
    assert.ok(!out.ok && out.error.path === "/webrtc/turnServers/0/credentialFile");
    assert.equal(out.ok ? null : out.error.code, "APPLY_FAILED");
  });
});
