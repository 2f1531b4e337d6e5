/**
 * A secret file is read in one step with its check: a swapper racing in the
 * secrets directory (a worker thread renaming a timestamped directory away
 * and putting a symlink to a directory outside in its place, and swapping
 * the file itself for a symlink out) never gets a read of the outside file,
 * while reads through the kubelet's own `..data` links keep succeeding.
 * Bounded: the swapper stops after a fixed number of swaps.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { readSecretFile } from "../../../protocol/secret-paths.ts";

const SWAPS = 4000;

/** The swapper: alternates the inside directory with a symlink out, and the file with a symlink out. */
const SWAPPER = `
const { workerData, parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const { secrets, outsideDir, stamp, swaps } = workerData;
const dir = secrets + "/" + stamp;
const hold = secrets + "/..hold";
for (let i = 0; i < swaps; i++) {
  try {
    if (i % 2 === 0) {
      fs.renameSync(dir, hold);
      fs.symlinkSync(outsideDir, dir);
      fs.unlinkSync(dir);
      fs.renameSync(hold, dir);
    } else {
      fs.renameSync(dir + "/turn", dir + "/turn.hold");
      fs.symlinkSync(outsideDir + "/turn", dir + "/turn");
      fs.unlinkSync(dir + "/turn");
      fs.renameSync(dir + "/turn.hold", dir + "/turn");
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err) });
    break;
  }
}
parentPort.postMessage({ done: true });
`;

describe("readSecretFile under a racing swapper", () => {
  let root: string;
  let secrets: string;
  const stamp = "..2026_12_07_01_00_00.000000001";
  before(() => {
    root = mkdtempSync(join(tmpdir(), "sfu-secret-race-"));
    secrets = join(root, "secrets");
    mkdirSync(join(secrets, stamp), { recursive: true });
    writeFileSync(join(secrets, stamp, "turn"), "inside-secret\n");
    symlinkSync(stamp, join(secrets, "..data"));
    symlinkSync("..data/turn", join(secrets, "turn"));
    mkdirSync(join(root, "outside"));
    writeFileSync(join(root, "outside", "turn"), "OUTSIDE-FILE\n");
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("never returns the content of a file outside the directory", async () => {
    const worker = new Worker(SWAPPER, {
      eval: true,
      workerData: { secrets, outsideDir: join(root, "outside"), stamp, swaps: SWAPS },
    });
    let running = true;
    let swapError: string | null = null;
    const finished = new Promise<void>((resolve) => {
      worker.on("message", (m: { done?: boolean; error?: string }) => {
        if (m.error !== undefined) swapError = m.error;
        if (m.done === true) {
          running = false;
          resolve();
        }
      });
      worker.on("exit", () => {
        running = false;
        resolve();
      });
    });
    let inside = 0;
    let outside = 0;
    let refused = 0;
    const reader = async (): Promise<void> => {
      while (running) {
        const r = await readSecretFile(join(secrets, "turn"), secrets);
        if (!r.ok) {
          refused++;
          continue;
        }
        const text = r.value.toString("utf8");
        if (text === "OUTSIDE-FILE\n") outside++;
        else if (text === "inside-secret\n") inside++;
        else assert.fail(`unexpected content read: ${JSON.stringify(text)}`);
      }
    };
    await Promise.all([reader(), reader(), reader(), reader(), finished]);
    await worker.terminate();
    assert.equal(swapError, null);
    assert.equal(outside, 0, `${outside} reads of the outside file (${inside} inside, ${refused} refused)`);
    assert.ok(inside > 0, `no read succeeded (${refused} refused): the kubelet's links must keep working`);
    // Once the swapper has stopped, the file reads as before.
    const settled = await readSecretFile(join(secrets, "turn"), secrets);
    assert.ok(settled.ok);
    assert.equal(settled.value.toString("utf8"), "inside-secret\n");
  });
});
