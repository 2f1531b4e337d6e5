/**
 * The local kubelet model (scripts/local/kubelet-model.ts) on a manual clock:
 * periodic syncs 60-90 s apart per pod at random phases, a pod update syncs
 * that pod at once and restarts its period, stop() ends everything.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeletModel, type SyncCause } from "../../../scripts/local/kubelet-model.ts";
import { ManualTimers } from "../queue/manual-timers.ts";

function model(random: () => number = Math.random) {
  const timers = new ManualTimers();
  const start = timers.now();
  const syncs: Array<{ pod: string; cause: SyncCause; at: number }> = [];
  const kubelet = new KubeletModel({
    timers,
    random,
    sync: async (pod, cause) => {
      syncs.push({ pod, cause, at: timers.now() - start });
    },
    options: { syncMs: 60_000, updateDelayMs: 50 },
  });
  return { timers, syncs, kubelet };
}

describe("KubeletModel", () => {
  it("syncs each pod periodically, 60-90 s apart, at its own phase", () => {
    const { timers, syncs, kubelet } = model();
    kubelet.start(["a", "b", "c"]);
    timers.advance(20 * 60_000);
    for (const pod of ["a", "b", "c"]) {
      const at = syncs.filter((s) => s.pod === pod).map((s) => s.at);
      assert.ok(at[0] !== undefined && at[0] <= 90_000, `${pod}: first sync within one period`);
      const gaps = at.slice(1).map((t, i) => t - (at[i] ?? 0));
      assert.ok(gaps.length >= 12, `${pod}: ${gaps.length} gaps`);
      for (const g of gaps) assert.ok(g >= 60_000 && g <= 90_000, `${pod}: gap ${g}`);
    }
    assert.ok(syncs.every((s) => s.cause === "periodic"));
  });

  it("a pod update syncs that pod 50 ms later and restarts its period; other pods are not touched", () => {
    const { timers, syncs, kubelet } = model(() => 0.5); // every period 75 s, every phase 37.5 s
    kubelet.start(["a", "b"]);
    timers.advance(10_000);
    kubelet.podUpdated("a");
    timers.advance(50);
    assert.deepEqual(syncs, [{ pod: "a", cause: "pod-update", at: 10_050 }]);
    timers.advance(37_500 - 10_050);
    assert.deepEqual(syncs.at(-1), { pod: "b", cause: "periodic", at: 37_500 });
    timers.advance(10_050 + 75_000 - 37_500);
    assert.deepEqual(syncs.at(-1), { pod: "a", cause: "periodic", at: 85_050 });
    kubelet.podUpdated("unknown");
    assert.equal(syncs.length, 3);
  });

  it("stop() ends every sync; a failing sync does not stop the model", () => {
    const timers = new ManualTimers();
    let n = 0;
    const kubelet = new KubeletModel({
      timers,
      sync: async () => {
        n++;
        throw new Error("disk full");
      },
      options: { syncMs: 1_000, jitter: 0 },
    });
    kubelet.start(["a"]);
    timers.advance(5_000);
    assert.ok(n >= 4, `${n} syncs`);
    kubelet.stop();
    const before = n;
    timers.advance(10_000);
    assert.equal(n, before);
    assert.equal(timers.pending, 0);
  });

  it("checks its options", () => {
    const timers = new ManualTimers();
    const sync = async () => {};
    assert.throws(() => new KubeletModel({ timers, sync, options: { syncMs: 0 } }), RangeError);
    assert.throws(() => new KubeletModel({ timers, sync, options: { syncMs: 1, jitter: -1 } }), RangeError);
  });
});
