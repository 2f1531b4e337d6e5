/**
 * `sfu-agent rollout` end to end on real parts: fauxqs (SNS, SQS, S3), four
 * in-process agents (the real Agent, per-pod queues, the rollout state read
 * from S3) with fake SFUs, ConfigMap directories holding `config.yaml` and
 * `rollout.yaml` written the kubelet's way. The driver runs in-process as
 * the hook would run it. Fake SFUs report no calls, so the policy here
 * proceeds without traffic (health-based halts: health-halt.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { drainStatus, until } from "../queue/harness.ts";
import { type Fleet, hashOf, startFleet } from "./fleet.ts";

const SLOW_POLICY = `schemaVersion: 1
steps:
  - { percent: 25, bake: 60s }
  - { percent: 100, bake: 1s }
halt:
  noTraffic: proceed
`;

describe("sfu-agent rollout over fauxqs with four agents", { timeout: 180_000 }, () => {
  let fleet: Fleet;
  const h: string[] = [];

  before(async () => {
    for (const n of [1, 2, 3, 4, 5, 6]) h[n] = await hashOf(n);
    fleet = await startFleet({
      names: ["sfu-a", "sfu-b", "sfu-c", "sfu-d"],
      initial: 1,
      // The agent's own default: no resync re-read hides a stale "no state" between two hook runs.
      resyncIntervalMs: 60_000,
      // Config 3 is one that the lowest-ranked pod's SFU refuses.
      reply: (name) => (msg) =>
        msg.hash === h[3] && name === lowest() ? { kind: "nack", code: "UNSUPPORTED", message: "no" } : { kind: "ack" },
    });
  });
  after(async () => {
    await fleet?.dispose();
  });
  const lowest = () => ["sfu-a", "sfu-b", "sfu-c", "sfu-d"].sort((a, b) => rank(a) - rank(b))[0];
  const rank = (n: string) => fleet?.pods.find((p) => p.name === n)?.rank ?? 0;

  it("first run without state records config 1 as stable and says so", async () => {
    for (const p of fleet.pods) await until(() => p.applied() === h[1], 10_000, `${p.name} on config 1`);
    const r = await fleet.rollout(1);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /no rollout state yet: sha256:\w+ is now the stable config/);
    const s = await fleet.state.read();
    assert.equal(s?.stable?.hash, h[1]);
    assert.equal(s?.candidate, null);
  });

  it("a good change reaches 100% in steps (1, 2, 4 pods), nested, and becomes stable", async () => {
    const run = fleet.rollout(2);
    await fleet.mount(2);
    const r = await run;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rows = r.stdout.split("\n").filter((l) => /^\d+\s+\d+%/.test(l));
    assert.deepEqual(
      rows.map((l) => l.split(/\s+/).slice(0, 3)),
      [
        ["1", "25%", "1"],
        ["2", "50%", "2"],
        ["3", "100%", "4"],
      ],
    );
    assert.match(r.stdout, /rolled out sha256:\w+ to every pod in 3 steps/);
    const s = await fleet.state.read();
    assert.equal(s?.stable?.hash, h[2]);
    assert.equal(s?.candidate?.state, "complete");
    for (const p of fleet.pods) {
      assert.equal(p.applied(), h[2], p.name);
      // The completion event reaches the agents after the driver exits.
      await until(() => p.agent.status().rollout?.stage === "applied", 10_000, `${p.name} stage applied`);
    }
    // Right after the first run (the agents' last read found no state), config 2
    // reached each pod once, at its step: never applied early and then held.
    for (const p of fleet.pods) {
      const got = p.received();
      assert.deepEqual(got.slice(got.indexOf(h[2] as string)), [h[2]], `${p.name} received ${got.join(", ")}`);
    }
  });

  it("a NACKing canary halts at the first step; no other pod ever receives the hash", async () => {
    const run = fleet.rollout(3);
    await fleet.mount(3);
    const r = await run;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const canary = fleet.pods[0]?.name as string;
    assert.match(r.stderr, new RegExp(`halted at step 1 \\(25%\\): nack on ${canary}: .*UNSUPPORTED`));
    const s = await fleet.state.read();
    assert.equal(s?.candidate?.state, "halted");
    assert.equal(s?.candidate?.reason?.criterion, "nack");
    assert.equal(s?.stable?.hash, h[2]);
    for (const p of fleet.pods.slice(1)) {
      assert.ok(!p.received().includes(h[3] as string), `${p.name} never received config 3`);
      assert.equal(p.applied(), h[2]);
    }
    assert.equal(fleet.pods[0]?.applied(), h[2], "the canary stays on the stable config");
    const events = await until(
      async () => {
        const got = (await drainStatus(fleet.f, 2)).filter((e) => e.outcome === "halted");
        return got.length > 0 ? got : null;
      },
      10_000,
      "the halted status event",
    );
    assert.equal(events[0]?.pod, "sfu-config-rollout");
    assert.equal(events[0]?.hash, h[3]);
    assert.match(String((events[0]?.error as { message?: string })?.message), /halted at step 1 \(25%\): nack/);
  });

  it("the halted hash again is refused without touching the state", async () => {
    const before = await fleet.state.read();
    const r = await fleet.rollout(3);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /was halted by rollout .* at step 1 \(nack: .*\); commit a new change/);
    assert.deepEqual(await fleet.state.read(), before);
  });

  it("two rollouts in a row: the second supersedes the running first and ends on its config", async () => {
    await fleet.mount(4, SLOW_POLICY);
    const first = fleet.rollout(4, { policy: SLOW_POLICY });
    // Wait for the first rollout's canary to bake (step 1 of a 60 s bake).
    await until(
      async () => {
        const s = await fleet.state.read();
        return s?.candidate?.hash === h[4] && (s?.candidate?.threshold ?? 0) > 0 && fleet.pods[0]?.applied() === h[4];
      },
      30_000,
      "the first rollout's canary",
    );
    const second = fleet.rollout(5);
    await fleet.mount(5);
    const [r1, r2] = await Promise.all([first, second]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.equal(r1.code, 1, r1.stdout + r1.stderr);
    assert.match(r1.stderr, /was superseded by [0-9a-f-]{36}; that rollout decides now/);
    const s = await fleet.state.read();
    assert.equal(s?.stable?.hash, h[5]);
    assert.equal(s?.candidate?.state, "complete");
    for (const p of fleet.pods) assert.equal(p.applied(), h[5], p.name);
  });

  it("the hook times out cleanly: pods that never report halt the rollout at its timeout; nobody moves", async () => {
    const t0 = performance.now();
    const run = fleet.rollout(6, { expect: 5, timeout: "4s" });
    await fleet.mount(6);
    const r = await run;
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /halted at step 1 \(25%\): timeout on no pod: timed out after 4s waiting for pods: 4\/5 reported/,
    );
    assert.ok(seconds < 15, `ended ${seconds.toFixed(1)} s after start`);
    const s = await fleet.state.read();
    assert.equal(s?.candidate?.state, "halted");
    assert.equal(s?.candidate?.reason?.criterion, "timeout");
    for (const p of fleet.pods) {
      assert.ok(!p.received().includes(h[6] as string), p.name);
      assert.equal(p.applied(), h[5]);
    }
  });

  it("without a policy file it is notify --wait and records the stable config", async () => {
    await fleet.mount(7, null);
    const r = await fleet.rollout(7, { policy: null });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /no rollout policy at .*: every pod applies sha256:\w+ at once/);
    assert.match(r.stdout, /4\/4 pods applied/);
    const s = await fleet.state.read();
    assert.equal(s?.stable?.hash, await hashOf(7));
    assert.equal(s?.candidate, null);
  });
});
