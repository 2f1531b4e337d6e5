/**
 * Fault suite, S3 (the rollout state): every answer S3 can give, between
 * fauxqs and three real agents (per-pod queues, fake SFUs) and the driver,
 * through a fault-injecting proxy (test/helpers/fault-proxy.ts). After a
 * halt, whatever S3 returns (404, a delete marker, 403, 500 with a 50 MB
 * body, a 200 of garbage or of 3 MB, slow, hanging) and across agent and pod
 * restarts, no SFU ever receives the halted hash, the agents keep the stable
 * config and report why; the driver rerun on a deleted state writes nothing.
 * During a rollout step S3 down briefly is retried through; down for longer
 * than the timeout ends in a recorded halt once S3 answers again.
 * Durations are scaled down with the stores' deadlines (800 ms a read).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import type { RolloutState } from "../../../protocol/rollout-schema.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION } from "../../../scripts/local/fauxqs.ts";
import { type Fault, type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { until } from "../../helpers/until.ts";
import { BUCKET, type Fleet, hashOf, ROLLOUT_EVENT, STATE_URL, startFleet } from "../rollout/fleet.ts";
import { writtenState } from "./rollout-faults.ts";

const KEY = STATE_URL.slice(`s3://${BUCKET}/`.length);

describe("fault suite: S3", { timeout: 240_000 }, () => {
  let proxy: FaultProxy;
  let fleet: Fleet;
  let upstream = "";
  const h: string[] = [];
  const names = ["sfu-a", "sfu-b", "sfu-c"];
  const lowest = () => [...names].sort((a, b) => rankOf(a) - rankOf(b))[0];
  const rankOf = (n: string) => fleet?.pods.find((p) => p.name === n)?.rank ?? 0;
  /** Hashes each pod's SFU received since the halt (must never hold the halted hash). */
  const receivedSince = new Map<string, number>();

  before(async () => {
    for (const n of [1, 3, 4, 5]) h[n] = await hashOf(n);
    fleet = await startFleet({
      names,
      initial: 1,
      resyncIntervalMs: 500,
      endpoint: async (fauxqs) => {
        upstream = fauxqs;
        proxy = await startFaultProxy(fauxqs);
        return proxy.url;
      },
      stateReads: { readTimeoutMs: 800, backoff: { baseMs: 50, maxMs: 200 } },
      stateCache: true,
      // Config 3 is refused by the lowest-ranked pod's SFU: its rollout halts at step 1.
      reply: (name) => (msg) =>
        msg.hash === h[3] && name === lowest() ? { kind: "nack", code: "UNSUPPORTED", message: "no" } : { kind: "ack" },
    });
  });
  after(async () => {
    await fleet?.dispose();
    await proxy?.stop();
  });

  const stateGets = (fault: Fault | null) =>
    proxy.setRule(fault === null ? null : (r) => (r.service === "s3" && r.method === "GET" ? fault : null));
  /** A read that starts now (a re-read joins a read in flight, which may predate the fault). */
  const freshRead = async (p: Fleet["pods"][number]) => {
    await p.agent.rollout.onRolloutEvent(ROLLOUT_EVENT);
    await p.agent.rollout.onRolloutEvent(ROLLOUT_EVENT);
  };
  const markReceived = () => {
    for (const p of fleet.pods) receivedSince.set(p.name, p.received().length);
  };
  const assertNeverHalted = (why: string) => {
    for (const p of fleet.pods) {
      const since = p.received().slice(receivedSince.get(p.name) ?? 0);
      assert.ok(!since.includes(h[3] as string), `${why}: ${p.name} received the halted hash`);
    }
  };

  it("bootstrap, then a change halted at step 1 (the cohort NACKs)", async () => {
    for (const p of fleet.pods) await until(() => p.applied() === h[1], 10_000, `${p.name} on config 1`);
    const first = await fleet.rollout(1);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const run = fleet.rollout(3, { timeout: "30" });
    await fleet.mount(3);
    const r = await run;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /halted at step 1/);
    for (const p of fleet.pods) await until(() => p.applied() === h[1], 10_000, `${p.name} back on config 1`);
    markReceived();
  });

  const faults: Array<[string, Fault, string]> = [
    ["403", { kind: "status", status: 403, body: "<Error><Code>AccessDenied</Code></Error>" }, "STATE_READ_FAILED"],
    ["500 with a 50 MB body", { kind: "status", status: 500, bodyBytes: 50 * 1024 * 1024 }, "STATE_READ_FAILED"],
    ["200 of garbage", { kind: "garbage", bodyBytes: 4096 }, "STATE_INVALID"],
    ["200 of 3 MB", { kind: "garbage", bodyBytes: 3 * 1024 * 1024 }, "STATE_TOO_LARGE"],
    ["slow past the deadline", { kind: "slow", delayMs: 1_500 }, "STATE_READ_FAILED"],
    ["hanging", { kind: "hang" }, "STATE_READ_FAILED"],
    [
      "404 with a delete marker",
      {
        kind: "status",
        status: 404,
        headers: { "x-amz-delete-marker": "true" },
        body: "<Error><Code>NoSuchKey</Code></Error>",
      },
      "STATE_MISSING",
    ],
  ];
  for (const [label, fault, code] of faults) {
    it(`S3 answers ${label}: every agent keeps the stable config and reports ${code}; a restarted agent too`, async () => {
      stateGets(fault);
      try {
        await Promise.all(fleet.pods.map(freshRead));
        for (const p of fleet.pods) {
          assert.equal(p.agent.status().rollout?.stateError?.code, code, `${p.name}: ${label}`);
          assert.equal(p.agent.store.desired()?.hash, h[1], p.name);
        }
        // An agent restart (its SFU keeps running) while S3 answers so: it starts, is ready, keeps config 1.
        const name = names[1] as string;
        const pod = await fleet.restart(name);
        assert.equal(pod.agent.notReadyReason(), null, `${name} ready during the fault`);
        await until(() => pod.agent.status().rollout !== null, 5_000, "rollout status");
        assert.equal(pod.agent.store.desired()?.hash, h[1]);
        receivedSince.set(name, 0);
        assertNeverHalted(label);
      } finally {
        stateGets(null);
      }
      await Promise.all(fleet.pods.map(freshRead));
      for (const p of fleet.pods) assert.equal(p.agent.status().rollout?.stateError, null, p.name);
    });
  }

  it("the state object deleted (404): agents, restarted agents and the rerun driver never take the halted hash", async () => {
    const saved = (await fleet.state.read()) as RolloutState;
    assert.equal(saved.candidate?.state, "halted");
    const s3 = createS3Client({
      endpointUrl: upstream,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    });
    try {
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: KEY }));
      for (const p of fleet.pods) {
        await freshRead(p);
        assert.equal(p.agent.status().rollout?.stateError?.code, "STATE_MISSING", p.name);
      }
      // Restart every agent (their SFUs keep running): the cache file remembers the halt.
      for (const n of names) await fleet.restart(n);
      for (const n of names) receivedSince.set(n, 0);
      await fleet.mount(3);
      await new Promise((r) => setTimeout(r, 1_500)); // resyncs of the mount and the state
      for (const p of fleet.pods) {
        assert.equal(p.agent.store.desired()?.hash, h[1], p.name);
        assert.equal(p.agent.status().rollout?.stateError?.code, "STATE_MISSING", p.name);
      }
      // The hook rerun for the halted config: nobody vouches for it, nothing is written.
      const r = await fleet.rollout(3, { timeout: "3" });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /STATE_MISSING: no rollout state, and only 0\/3 pods report/);
      assert.equal(await fleet.state.read(), null, "nothing written");
      assertNeverHalted("404");
    } finally {
      await fleet.state.write(saved);
      s3.destroy();
    }
  });

  it("a new pod while the state is a delete marker holds (alive and ready), never applying the mounted halted hash", async () => {
    stateGets({ kind: "status", status: 404, headers: { "x-amz-delete-marker": "true" }, body: "" });
    try {
      const name = names[2] as string;
      const pod = await fleet.restart(name, { newPod: true });
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(pod.agent.store.desired(), null);
      // Ready all the same (readiness never waits on S3: its startup probe passes); /status says why.
      assert.equal(pod.agent.notReadyReason(), null);
      assert.match(pod.agent.status().rollout?.reason ?? "", /holding/);
      assert.deepEqual(pod.received(), []);
    } finally {
      stateGets(null);
    }
    const pod = fleet.pods.find((p) => p.name === names[2]);
    await until(() => pod?.applied() === h[1], 10_000, "the new pod takes the stable config once S3 answers");
  });

  /**
   * Runs the rollout of config `n` with S3 down for `ms` from the driver's write of its first step
   * (threshold above 0; the discovery write has 0), that write included: the outage meets the
   * driver's write path however fast or slow the machine.
   */
  const rolloutWithS3Down = async (n: number, ms: number, timeout: string) => {
    let downUntil = 0;
    proxy.setRule((r) => {
      if (r.service !== "s3") return null;
      const c = writtenState(r)?.candidate;
      if (downUntil === 0 && c && c.hash === h[n] && c.threshold > 0) downUntil = performance.now() + ms;
      return performance.now() < downUntil ? { kind: "down" } : null;
    });
    try {
      const run = fleet.rollout(n, { timeout });
      await fleet.mount(n);
      const r = await run;
      assert.ok(downUntil > 0, "the outage began");
      return r;
    } finally {
      proxy.setRule(null);
    }
  };

  it("S3 down briefly during a step: the driver retries and the rollout completes", async () => {
    const r = await rolloutWithS3Down(4, 2_000, "40");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /failed \(attempt \d+, retrying/);
    for (const p of fleet.pods) await until(() => p.applied() === h[4], 10_000, `${p.name} on config 4`);
  });

  it("S3 down for longer than the timeout: the halt is recorded once S3 is back; the cohort reverts", async () => {
    const r = await rolloutWithS3Down(5, 8_000, "6");
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /driver-error/);
    const s = await fleet.state.read();
    assert.equal(s?.candidate?.hash, h[5]);
    assert.equal(s?.candidate?.state, "halted");
    for (const p of fleet.pods) await until(() => p.applied() === h[4], 10_000, `${p.name} back on config 4`);
  });
});
