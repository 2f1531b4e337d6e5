/**
 * Fault suite, SQS: the agents' per-pod queues (reload events) and the
 * hook's status queue (the agents' reports) are both behind the proxy. At
 * each rollout step SQS is down briefly (at step 2: answering 500 with a 50 MB body) (the agents re-read the state on
 * their resync, the driver's long poll retries and the reports wait in the
 * queue: the rollout completes) and for longer than the driver's timeout (it
 * hears nothing, halts on its timeout; every pod ends on the stable config).
 * In every run no pod
 * receives a halted hash after its halt, and the rollout ends complete or
 * halted, never running.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type FaultFleet, runWithFault, startFaultFleet } from "./rollout-faults.ts";

describe("fault suite: SQS", { timeout: 240_000 }, () => {
  let ff: FaultFleet;
  before(async () => {
    ff = await startFaultFleet({ names: ["sfu-a", "sfu-b", "sfu-c"] });
  });
  after(async () => {
    await ff?.dispose();
  });

  let n = 2;
  for (const step of [0, 2]) {
    it(`SQS down 2 s at step ${step + 1}: the rollout completes`, async () => {
      const r = await runWithFault(ff, { n: n++, step, service: "sqs", outageMs: 2_000, timeout: "40" });
      assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
    });
  }
  it("SQS answering 500 with a 50 MB body for 2 s at step 2: the rollout completes", async () => {
    const r = await runWithFault(ff, {
      n: n++,
      step: 1,
      service: "sqs",
      fault: { kind: "status", status: 500, bodyBytes: 50 * 1024 * 1024 },
      outageMs: 2_000,
      timeout: "40",
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });
  for (const step of [0, 2]) {
    it(`SQS down past the driver's timeout at step ${step + 1}: halted on its timeout, every pod on the stable config`, async () => {
      const r = await runWithFault(ff, { n: n++, step, service: "sqs", outageMs: "past-timeout", timeout: "8" });
      assert.equal(r.outcome, "halted", r.result.stdout + r.result.stderr);
      assert.match(r.result.stderr, /halted at step \d/);
    });
  }
});
