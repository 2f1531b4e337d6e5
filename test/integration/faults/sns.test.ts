/**
 * Fault suite, SNS (the reload topic the driver publishes to, the status
 * topic the agents report on): at each rollout step SNS is down briefly
 * (the driver retries its publishes and the agents their reports: the
 * rollout completes) and for longer than the driver's timeout (it gives up
 * and the halt is recorded; every pod ends on the stable config). In every
 * run no pod receives a halted hash after its halt, and the rollout ends
 * complete or halted, never running.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type FaultFleet, runWithFault, startFaultFleet } from "./rollout-faults.ts";

describe("fault suite: SNS", { timeout: 240_000 }, () => {
  let ff: FaultFleet;
  before(async () => {
    ff = await startFaultFleet({ names: ["sfu-a", "sfu-b", "sfu-c"] });
  });
  after(async () => {
    await ff?.dispose();
  });

  let n = 2;
  for (const step of [0, 1, 2]) {
    it(`SNS down 2 s at step ${step + 1}: retried through, the rollout completes`, async () => {
      const r = await runWithFault(ff, { n: n++, step, service: "sns", outageMs: 2_000, timeout: "40" });
      assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
    });
  }
  for (const step of [0, 2]) {
    it(`SNS down past the driver's timeout at step ${step + 1}: the halt is recorded, every pod on the stable config`, async () => {
      const r = await runWithFault(ff, { n: n++, step, service: "sns", outageMs: "past-timeout", timeout: "8" });
      assert.equal(r.outcome, "halted", r.result.stdout + r.result.stderr);
      assert.match(r.result.stderr, /driver-error|timeout/);
    });
  }
});
