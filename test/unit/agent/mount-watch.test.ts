/**
 * The bounded directory watch (agent/sidecar/mount-watch.ts) on real directories: a
 * kubelet `..data` swap is reported at once when asked; a burst of plain
 * writes is one call; a steady stream of events cannot postpone the call
 * past maxDebounceMs; nothing is called after stop.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type MountChange, MountWatch, type MountWatchOptions } from "../../../agent/sidecar/mount-watch.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "sfu-mount-watch-"));
});
after(() => rm(root, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function started(name: string, options: Omit<MountWatchOptions, "dir">) {
  const dir = join(root, name);
  await mkdir(dir);
  const changes: MountChange[] = [];
  const errors: unknown[] = [];
  const watch = new MountWatch(
    { dir, ...options },
    { onChange: (c) => changes.push(c), onError: (e) => errors.push(e) },
  );
  await watch.start();
  return { dir, watch, changes, errors };
}

async function until(what: string, ok: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("MountWatch", () => {
  it("reports a kubelet ..data swap at once with swapAtOnce, though the debounce is a minute", async () => {
    const t = await started("swap", { debounceMs: 60_000, maxDebounceMs: 60_000, swapAtOnce: true });
    try {
      await new AtomicWriter(t.dir).write({ "config.yaml": "a: 1\n" });
      await until("a swap", () => t.changes.includes("swap"));
      assert.ok(!t.changes.includes("file"), "the rest of the swap's events wait for the debounce");
    } finally {
      await t.watch.stop();
    }
  });

  it("without swapAtOnce a swap joins the debounce: one call for the whole burst", async () => {
    // A quiet time well above any gap between these writes, even on a loaded machine.
    const t = await started("burst", { debounceMs: 500, maxDebounceMs: 60_000, swapAtOnce: false });
    try {
      const writer = new AtomicWriter(t.dir);
      await writer.write({ "config.yaml": "a: 1\n" });
      for (let i = 0; i < 5; i++) await writeFile(join(t.dir, "plain"), `${i}`);
      await until("the debounced call", () => t.changes.length > 0);
      await sleep(700);
      assert.deepEqual(t.changes, ["file"]);
    } finally {
      await t.watch.stop();
    }
  });

  it("a steady stream of events is bounded: calls arrive within maxDebounceMs, not after the stream", async () => {
    // A one-minute quiet time that the stream never grants: only the bound can call.
    const t = await started("stream", { debounceMs: 60_000, maxDebounceMs: 100, swapAtOnce: false });
    try {
      for (let i = 0; i < 40 && t.changes.length < 2; i++) {
        await writeFile(join(t.dir, "plain"), `${i}`);
        await sleep(25);
      }
      assert.ok(t.changes.length >= 2, `calls during the stream: ${t.changes.length}`);
      assert.ok(t.changes.every((c) => c === "file"));
    } finally {
      await t.watch.stop();
    }
  });

  it("stop drops a pending call and ignores later events", async () => {
    // The event is pending (150 ms in) when stop comes, long before the 1.5 s quiet time ends.
    const t = await started("stop", { debounceMs: 1_500, maxDebounceMs: 60_000, swapAtOnce: true });
    await writeFile(join(t.dir, "plain"), "x");
    await sleep(150);
    await t.watch.stop();
    await t.watch.stop();
    await writeFile(join(t.dir, "plain"), "y");
    await sleep(1_700);
    assert.deepEqual(t.changes, []);
    assert.deepEqual(t.errors, []);
  });

  it("options are checked at construction", () => {
    const deps = { onChange: () => {}, onError: () => {} };
    assert.throws(
      () => new MountWatch({ dir: "", debounceMs: 1, maxDebounceMs: 1, swapAtOnce: true }, deps),
      TypeError,
    );
    assert.throws(
      () => new MountWatch({ dir: "/x", debounceMs: -1, maxDebounceMs: 1, swapAtOnce: true }, deps),
      /debounceMs/,
    );
    assert.throws(
      () => new MountWatch({ dir: "/x", debounceMs: 1, maxDebounceMs: 0.5, swapAtOnce: true }, deps),
      /maxDebounceMs/,
    );
  });
});
