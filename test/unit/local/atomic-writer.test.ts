/**
 * scripts/local/atomic-writer.ts lays out a directory as the kubelet's
 * AtomicWriter lays out a ConfigMap / Secret / projected volume: nested keys
 * (a projected Secret item's `path: secrets/turn-credential`) under a
 * user-visible symlink of their first path element, file modes from the
 * volume's `defaultMode` or an item's `mode`, keys the kubelet refuses
 * refused, and a swap that replaces the whole payload at once.
 */
import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AtomicWriter, BadPayloadPathError, validatePayloadPath } from "../../../scripts/local/atomic-writer.ts";

let root = "";
before(async () => {
  root = await mkdtemp(join(tmpdir(), "atomic-writer-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe("AtomicWriter", () => {
  it("writes a projected volume: config key and nested Secret item, defaultMode 0440, one symlink per first element", async () => {
    const dir = join(root, "projected");
    const w = new AtomicWriter(dir);
    await w.write(
      { "config.yaml": "a: 1\n", "secrets/turn-credential": { content: "s3cret" } },
      { defaultMode: 0o440 },
    );
    assert.equal(await readFile(join(dir, "config.yaml"), "utf8"), "a: 1\n");
    assert.equal(await readFile(join(dir, "secrets", "turn-credential"), "utf8"), "s3cret");
    assert.equal(await readlink(join(dir, "config.yaml")), join("..data", "config.yaml"));
    assert.equal(await readlink(join(dir, "secrets")), join("..data", "secrets"));
    assert.ok((await lstat(join(dir, "secrets"))).isSymbolicLink());
    assert.equal(await modeOf(join(dir, "config.yaml")), 0o440);
    assert.equal(await modeOf(join(dir, "secrets", "turn-credential")), 0o440);
    assert.equal(await modeOf(join(dir, "secrets")), 0o755, "directories 0755, as the kubelet makes them");
    const visible = (await readdir(dir)).filter((e) => !e.startsWith("..")).sort();
    assert.deepEqual(visible, ["config.yaml", "secrets"]);
  });

  it("gives an item its own mode over the default, and 0644 without either", async () => {
    const dir = join(root, "modes");
    const w = new AtomicWriter(dir);
    await w.write({ a: "1", "b/c": { content: "2", mode: 0o400 }, d: { content: "3" } });
    assert.equal(await modeOf(join(dir, "a")), 0o644);
    assert.equal(await modeOf(join(dir, "b", "c")), 0o400);
    assert.equal(await modeOf(join(dir, "d")), 0o644);
  });

  it("swaps the whole payload: a nested key that disappears takes its symlink with it", async () => {
    const dir = join(root, "swap");
    const w = new AtomicWriter(dir);
    const first = await w.write({ "config.yaml": "v1", "secrets/turn-credential": "old" }, { defaultMode: 0o440 });
    const second = await w.write({ "config.yaml": "v2", "secrets/turn-credential": "new" }, { defaultMode: 0o440 });
    assert.notEqual(first.dataDir, second.dataDir);
    assert.equal(await readFile(join(dir, "secrets", "turn-credential"), "utf8"), "new");
    await w.write({ "config.yaml": "v3" });
    await assert.rejects(lstat(join(dir, "secrets")), { code: "ENOENT" });
    const hidden = (await readdir(dir)).filter((e) => e.startsWith("..") && e !== "..data");
    assert.deepEqual(hidden, [await readlink(join(dir, "..data"))], "only the current timestamped directory is left");
  });

  it("refuses the keys the kubelet refuses, before touching the directory", async () => {
    const dir = join(root, "bad");
    const w = new AtomicWriter(dir);
    for (const key of ["", "/etc/passwd", "../x", "a/../b", "..data", "..x/y", "a//b", "a/./b", "x".repeat(256)]) {
      await assert.rejects(w.write({ [key]: "x" }), BadPayloadPathError, JSON.stringify(key));
    }
    await assert.rejects(w.write({ secrets: "x", "secrets/turn-credential": "y" }), /is a file, not a directory/);
    await assert.rejects(lstat(dir), { code: "ENOENT" }, "nothing was created");
    assert.doesNotThrow(() => validatePayloadPath("secrets/turn-credential"));
    assert.doesNotThrow(() => validatePayloadPath("a..b/c"));
    assert.throws(
      () => validatePayloadPath("../x"),
      (err: unknown) => err instanceof BadPayloadPathError && err.code === "BAD_PAYLOAD_PATH",
    );
  });
});
