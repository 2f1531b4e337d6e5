/**
 * Fault suite, the SFU each agent pushes to (fake SFUs speaking
 * sfu-config/1), during a rollout on fauxqs: the cohort pod's SFU hanging
 * without an ACK (its push times out: the rollout halts and the pod reverts
 * once its SFU answers again), down for a moment and down past the driver's
 * timeout (it comes back to the stable config, never the halted hash),
 * restarted mid-push (it disconnects on the candidate and dials in again
 * running nothing), sending garbage frames, an agent restarted mid-rollout,
 * and a canary pod restarted during an S3 outage (memory vouches for the
 * stable config only). In every run no pod receives a halted hash after its halt, and
 * the rollout ends complete or halted, never running.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ConfigMessage } from "../../../protocol/messages-schema.ts";
import type { FakeSfuReply } from "../../helpers/fake-sfu.ts";
import { until } from "../../helpers/until.ts";
import { type FaultFleet, runWithAction, startFaultFleet, untilHalted } from "./rollout-faults.ts";

describe("fault suite: the SFU", { timeout: 240_000 }, () => {
  let ff: FaultFleet;
  /** How the cohort's first pod (lowest rank) answers the candidate now. */
  let candidateReply: FakeSfuReply = { kind: "ack" };
  let candidate = "";
  const names = ["sfu-a", "sfu-b", "sfu-c"];
  const first = () => ff.fleet.pods[0] as (typeof ff.fleet.pods)[number];

  before(async () => {
    ff = await startFaultFleet({
      names,
      reply: (name) => (msg: ConfigMessage) =>
        msg.hash === candidate && name === first().name ? candidateReply : { kind: "ack" },
    });
  });
  after(async () => {
    await ff?.dispose();
  });

  let n = 2;
  const next = async () => {
    const k = n++;
    candidate = await ff.hash(k);
    return k;
  };

  it("the cohort's SFU hangs without an ACK: the push times out, the rollout halts, the pod reverts", async () => {
    candidateReply = { kind: "stall" };
    const r = await runWithAction(ff, { n: await next(), step: 0, timeout: "30", act: async () => {} });
    assert.equal(r.outcome, "halted");
    assert.equal(r.state.candidate?.reason?.criterion, "propagation-timeout");
    assert.deepEqual(r.state.candidate?.reason?.pods, [first().name]);
    candidateReply = { kind: "ack" };
  });

  it("the cohort's SFU down 2 s at step 1: it dials in again, takes the candidate, the rollout completes", async () => {
    const r = await runWithAction(ff, {
      n: await next(),
      step: 0,
      timeout: "40",
      act: () => first().restartSfu({ downMs: 2_000 }),
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });

  it("the cohort's SFU down past the driver's timeout: halted; back up, it takes the stable config", async () => {
    const k = await next();
    const pod = first();
    const halted = candidate;
    // Down before the config is even mounted (so no push can reach it first) until after the
    // driver has given up on this candidate.
    const closed = pod.sfuNow().closed;
    const down = pod.restartSfu({
      downUntil: async () => {
        while ((await ff.fleet.state.read())?.candidate?.hash !== halted)
          await new Promise((res) => setTimeout(res, 50));
        await untilHalted(ff.fleet);
      },
    });
    await closed;
    const r = await runWithAction(ff, { n: k, step: 0, timeout: "6", act: () => down });
    assert.equal(r.outcome, "halted");
    assert.equal(r.state.candidate?.reason?.criterion, "timeout");
  });

  it("the cohort's SFU restarted mid-push (it drops the connection on the candidate): it dials in, the rollout completes", async () => {
    candidateReply = { kind: "disconnect" };
    const k = await next();
    const pod = first();
    const r = await runWithAction(ff, {
      n: k,
      step: 0,
      timeout: "40",
      act: async () => {
        await until(() => pod.received().includes(candidate), 10_000, "the candidate pushed to the SFU", 50);
        candidateReply = { kind: "ack" };
        await pod.restartSfu({ downMs: 300 });
      },
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });

  it("every SFU sends garbage frames during a step: the agent closes each, the SFUs dial in again, the rollout completes", async () => {
    const r = await runWithAction(ff, {
      n: await next(),
      step: 1,
      timeout: "40",
      act: async () => {
        for (const p of ff.fleet.pods) {
          const sfu = p.sfuNow();
          sfu.send("{not json");
          sfu.send({ type: "ack", nonce: "0", version: 999_999, hash: "sha256:garbage" });
          sfu.send({ type: "mystery", a: [[[[]]]] });
          sfu.send("x".repeat(64 * 1024));
          // The agent closes a connection that speaks garbage (PROTOCOL.md): a real SFU dials in again.
          await sfu.closed;
          await p.restartSfu({ keepApplied: true });
        }
      },
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });

  it("a cohort pod restarted (both containers) during an S3 outage: the remembered stable config, never the candidate from memory", async () => {
    const k = await next();
    const hash = candidate;
    const stable = await ff.hash(k - 1);
    const name = first().name;
    const r = await runWithAction(ff, {
      n: k,
      step: 0,
      timeout: "40",
      act: async () => {
        await until(() => first().applied() === hash, 10_000, "the canary running the candidate", 50);
        ff.proxy.fail("s3", { kind: "down" });
        try {
          const pod = await ff.fleet.restart(name, { sfuRestarted: true });
          ff.watch.rebase(name);
          await until(() => pod.applied() === stable, 10_000, "the restarted pod running the stable config", 50);
          await new Promise((res) => setTimeout(res, 1_000));
          // The rollout may have halted meanwhile: memory vouches for the stable config only.
          assert.deepEqual(pod.received(), [stable]);
          assert.match(pod.agent.status().rollout?.reason ?? "", /only remembered/);
        } finally {
          ff.proxy.fail("s3", null);
        }
      },
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });

  it("an agent restarted at step 2 (its SFU keeps running): the rollout completes", async () => {
    const r = await runWithAction(ff, {
      n: await next(),
      step: 1,
      timeout: "40",
      act: async () => {
        const name = first().name;
        await ff.fleet.restart(name);
        ff.watch.rebase(name);
      },
    });
    assert.equal(r.outcome, "complete", r.result.stdout + r.result.stderr);
  });
});
