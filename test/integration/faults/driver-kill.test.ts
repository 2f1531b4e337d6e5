/**
 * Fault suite, the driver itself: a real `sfu-agent rollout` process killed
 * with SIGKILL, then run again, as the hook Job's retry does. Killed mid-step,
 * the rerun finds the running candidate and resumes at its step (no pod
 * flips) to completion. Killed after its halt landed in S3 (the answer lost,
 * so it had not exited), the rerun refuses
 * the halted hash and every pod stays on the stable config. Killed, then
 * rerun while S3 is down for 4 s, it retries and resumes. In every run no pod
 * receives a halted hash after its halt, and the rollout ends complete or
 * halted, never running.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ConfigMessage } from "../../../protocol/messages-schema.ts";
import type { CliRun } from "../../helpers/cli-run.ts";
import { until } from "../../helpers/until.ts";
import { type FaultFleet, runWithAction, startFaultFleet, writtenState } from "./rollout-faults.ts";

describe("fault suite: the driver killed and rerun", { timeout: 240_000 }, () => {
  let ff: FaultFleet;
  let refused = "";
  const names = ["sfu-a", "sfu-b", "sfu-c"];

  before(async () => {
    ff = await startFaultFleet({
      names,
      // The lowest-ranked pod refuses `refused`: that rollout halts at step 1.
      reply: (name) => (msg: ConfigMessage) =>
        msg.hash === refused && name === ff.fleet.pods[0]?.name
          ? { kind: "nack", code: "UNSUPPORTED", message: "no" }
          : { kind: "ack" },
    });
  });
  after(async () => {
    await ff?.dispose();
  });

  /** Spawns the driver for config `k`, SIGKILLs it when `act` says, spawns it again; resolves with the rerun. */
  const killAndRerun = (k: number, beforeRerun?: () => Promise<void>) => {
    let first: ReturnType<FaultFleet["fleet"]["spawnRollout"]> | null = null;
    let killed!: () => void;
    const kill = new Promise<void>((r) => {
      killed = r;
    });
    return {
      run: async (): Promise<CliRun> => {
        first = ff.fleet.spawnRollout(k, { timeout: "40" });
        await kill;
        first.child.kill("SIGKILL");
        const r1 = await first.done;
        assert.equal(r1.signal, "SIGKILL", r1.stdout + r1.stderr);
        await beforeRerun?.();
        return await ff.fleet.spawnRollout(k, { timeout: "40" }).done;
      },
      act: async () => killed(),
    };
  };

  it("killed at step 2: the rerun resumes at step 2 and completes", async () => {
    const k = killAndRerun(2);
    const r = await runWithAction(ff, { n: 2, step: 1, timeout: "40", run: k.run, act: k.act });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
    assert.match(r.result.stdout, /resuming rollout .* at step 2/);
  });

  it("killed after recording a halt: the rerun refuses the halted hash, every pod on the stable config", async () => {
    refused = await ff.hash(3);
    // The halt's write lands but its answer is lost, so the driver is still retrying it (it
    // cannot have exited) when it is killed: the worst moment, the halt recorded and unannounced.
    ff.proxy.setRule((req) => (writtenState(req)?.candidate?.state === "halted" ? { kind: "lost" } : null));
    try {
      const r = await runWithAction(ff, {
        n: 3,
        step: 0,
        timeout: "40",
        run: async () => {
          const first = ff.fleet.spawnRollout(3, { timeout: "40" });
          await until(
            async () => (await ff.fleet.state.read())?.candidate?.state === "halted",
            30_000,
            "the halt recorded",
          );
          first.child.kill("SIGKILL");
          const r1 = await first.done;
          assert.equal(r1.signal, "SIGKILL", r1.stdout + r1.stderr);
          assert.match(r1.stdout + r1.stderr, /halting at step 1/);
          ff.proxy.setRule(null);
          return await ff.fleet.spawnRollout(3, { timeout: "40" }).done;
        },
        act: async () => {},
      });
      assert.equal(r.outcome, "halted");
      assert.match(r.result.stderr, /was halted by rollout .*commit a new change/);
    } finally {
      ff.proxy.setRule(null);
    }
  });

  it("killed at step 1, rerun while S3 is down for 4 s: it retries, resumes and completes", async () => {
    let killedId: string | null = null;
    let duringOutage: string | null | undefined;
    const k = killAndRerun(4, async () => {
      killedId = (await ff.fleet.state.read())?.candidate?.id ?? null;
      ff.proxy.fail("s3", { kind: "down" });
      setTimeout(() => {
        // Still the killed driver's rollout: the rerun could not write while S3 was down.
        void ff.fleet.state.read().then((s) => {
          duringOutage = s?.candidate?.id ?? null;
          ff.proxy.fail("s3", null);
        });
      }, 4_000).unref();
    });
    const r = await runWithAction(ff, { n: 4, step: 0, timeout: "40", run: k.run, act: k.act });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
    assert.ok(killedId !== null);
    assert.equal(duringOutage, killedId, "the outage came before the rerun's first write");
    assert.notEqual(r.state.candidate?.id, killedId);
    assert.match(r.result.stdout, /resuming rollout .* at step 1/);
  });
});
