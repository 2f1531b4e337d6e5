/**
 * The secret watch on real files: a kubelet-style swap with new content bumps
 * the generation once; a swap with identical content, or an unrelated file,
 * does not; a file that becomes unreadable does; a new desired config that
 * names other files re-baselines without a bump. The fingerprints are not
 * reachable from outside and never appear in the logs.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SecretWatch } from "../../../agent/sidecar/secret-watch.ts";
import { SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { configText, offerConfig } from "../../helpers/config-text.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "sfu-secret-watch-"));
});
after(() => rm(root, { recursive: true, force: true }));

async function setup(name: string, files: Record<string, string>) {
  const dir = join(root, name);
  await mkdir(dir);
  const writer = new AtomicWriter(dir);
  await writer.write(files);
  const store = new SnapshotStore({ clock: () => new Date() });
  const offer = async (text: string) => {
    const r = await loadConfigText(text, { secretsDir: dir });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    offerConfig(store, r.config, r.hash);
  };
  const { logger, logs } = capturedLogger("trace");
  // Resync off and a long debounce: every check in these tests is explicit.
  const watch = new SecretWatch({ logger, store }, { secretsDir: dir, resyncIntervalMs: 0, debounceMs: 60_000 });
  const bumps: number[] = [];
  watch.subscribe((g) => bumps.push(g));
  return { dir, writer, store, offer, watch, bumps, logs };
}

describe("SecretWatch", () => {
  it("bumps the generation once per content change, not for a same-content swap or another file", async () => {
    const t = await setup("a", { "turn-auth-secret": "first-watch-secret\n", other: "x" });
    await t.offer(configText(1, { authSecretFile: join(t.dir, "turn-auth-secret") }));
    await t.watch.start();
    try {
      assert.equal(t.watch.generation, 1);
      assert.equal(t.watch.hasSecrets, true);
      await t.writer.write({ "turn-auth-secret": "first-watch-secret\n", other: "y" });
      await t.watch.check();
      assert.deepEqual(t.bumps, [], "same content under a new timestamped directory is no change");
      await t.writer.write({ "turn-auth-secret": "second-watch-secret\n", other: "y" });
      await t.watch.check();
      await t.watch.check();
      assert.deepEqual(t.bumps, [2]);
      assert.equal(t.watch.generation, 2);
      await t.writer.write({ other: "z" }); // the key disappears from the projection
      await t.watch.check();
      assert.deepEqual(t.bumps, [2, 3], "a file that can no longer be read is a change");
      for (const line of t.logs) {
        assert.ok(!line.includes("first-watch-secret") && !line.includes("second-watch-secret"), line);
      }
      assert.ok(t.logs.some((l) => l.includes('"generation":2') && l.includes("/webrtc/turnServers/0/authSecretFile")));
      assert.deepEqual(Object.keys(t.watch), [], "no enumerable state (fingerprints are private)");
    } finally {
      await t.watch.stop();
    }
  });

  it("a new desired config naming other files re-baselines without a bump; no secret files = nothing to reload", async () => {
    const t = await setup("b", { a: "secret-a\n", b: "secret-b\n" });
    await t.offer(configText(1, { authSecretFile: join(t.dir, "a") }));
    await t.watch.start();
    try {
      await t.offer(configText(2, { authSecretFile: join(t.dir, "b") }));
      await t.watch.check();
      assert.deepEqual(t.bumps, []);
      await t.offer(configText(3));
      await t.watch.check();
      assert.equal(t.watch.hasSecrets, false);
      await t.writer.write({ a: "changed\n", b: "changed\n" });
      await t.watch.check();
      assert.deepEqual(t.bumps, [], "files the desired config does not name are not watched");
    } finally {
      await t.watch.stop();
    }
  });

  it("the directory watch notices a kubelet swap on its own (no explicit check)", { timeout: 10_000 }, async () => {
    const dir = join(root, "c");
    await mkdir(dir);
    const writer = new AtomicWriter(dir);
    await writer.write({ s: "one\n" });
    const store = new SnapshotStore({ clock: () => new Date() });
    const r = await loadConfigText(configText(1, { authSecretFile: join(dir, "s") }), { secretsDir: dir });
    assert.ok(r.ok);
    offerConfig(store, r.config, r.hash);
    const { logger } = capturedLogger("info");
    const watch = new SecretWatch({ logger, store }, { secretsDir: dir, resyncIntervalMs: 0, debounceMs: 20 });
    const bumped = new Promise<number>((resolve) => watch.subscribe(resolve));
    await watch.start();
    try {
      await writer.write({ s: "two\n" });
      assert.equal(await bumped, 2);
    } finally {
      await watch.stop();
    }
  });

  it("rejects bad options", () => {
    const store = new SnapshotStore({ clock: () => new Date() });
    const { logger } = capturedLogger("info");
    assert.throws(() => new SecretWatch({ logger, store }, { secretsDir: "" }), /secretsDir/);
    assert.throws(() => new SecretWatch({ logger, store }, { debounceMs: -1 }), /debounceMs/);
  });
});
