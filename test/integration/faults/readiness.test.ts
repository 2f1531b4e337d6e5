/**
 * Fault suite, readiness during an S3 outage: readiness never depends on S3.
 * Real agents (per-pod queues, fake SFUs) on fauxqs behind a fault proxy.
 * A pod restarted during the outage (both containers, its emptyDir state
 * cache kept) serves the remembered stable config at once; a brand-new pod
 * (no cache) holds: it pushes nothing, stays alive and ready (its startup
 * probe, /readyz, passes: the kubelet never kills it), says why in /status
 * and `sfu_agent_rollout_holding`, and applies the stable config once S3
 * answers. Its SFU, with no config applied, is what stays unready.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { until } from "../../helpers/until.ts";
import { type Fleet, hashOf, ROLLOUT_EVENT, startFleet } from "../rollout/fleet.ts";

describe("fault suite: readiness during an S3 outage", { timeout: 120_000 }, () => {
  let proxy: FaultProxy;
  let fleet: Fleet;
  const h: string[] = [];
  const names = ["sfu-a", "sfu-b"];

  before(async () => {
    for (const n of [1, 2]) h[n] = await hashOf(n);
    fleet = await startFleet({
      names,
      initial: 1,
      resyncIntervalMs: 500,
      endpoint: async (fauxqs) => {
        proxy = await startFaultProxy(fauxqs);
        return proxy.url;
      },
      stateReads: { readTimeoutMs: 500, backoff: { baseMs: 50, maxMs: 100 } },
      stateCache: true,
    });
    for (const p of fleet.pods) await until(() => p.applied() === h[1], 10_000, `${p.name} on config 1`);
    const r = await fleet.rollout(1);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const p of fleet.pods) {
      await p.agent.rollout.onRolloutEvent(ROLLOUT_EVENT);
      assert.equal(p.agent.status().rollout?.stable, h[1], `${p.name} read the state (and cached it)`);
    }
  });
  after(async () => {
    await fleet?.dispose();
    await proxy?.stop();
  });

  const get = async (pod: Fleet["pods"][number], path: string) => {
    const res = await fetch(`${pod.agent.httpUrl}${path}`, { signal: AbortSignal.timeout(2_000) });
    return { status: res.status, text: await res.text() };
  };
  const gauge = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);

  it("a pod restarted during the outage serves its remembered stable config", async () => {
    proxy.fail("s3", { kind: "down" });
    try {
      const pod = await fleet.restart(names[0] as string, { sfuRestarted: true });
      await until(() => pod.applied() === h[1], 10_000, "the remembered stable config applied during the outage");
      assert.deepEqual(pod.received(), [h[1]]);
      assert.equal((await get(pod, "/readyz")).status, 200);
      assert.equal(pod.agent.status().rollout?.stateError?.code, "STATE_READ_FAILED");
      const metrics = (await get(pod, "/metrics")).text;
      assert.equal(gauge(metrics, "sfu_agent_rollout_state_unreadable"), 1);
      assert.equal(gauge(metrics, "sfu_agent_rollout_holding"), 0);
    } finally {
      proxy.fail("s3", null);
    }
  });

  it("a new pod during the outage holds, alive and ready, and applies once S3 answers", async () => {
    await fleet.mount(2); // a change committed meanwhile: the new pod must not take it unannounced
    proxy.fail("s3", { kind: "down" });
    let pod: Fleet["pods"][number];
    try {
      pod = await fleet.restart(names[1] as string, { newPod: true });
      // Probe it as the kubelet does, for a while: never a failure, nothing pushed.
      for (let i = 0; i < 6; i++) {
        assert.equal((await get(pod, "/healthz")).status, 200, "liveness");
        const ready = await get(pod, "/readyz");
        assert.equal(ready.status, 200, `startup probe: ${ready.text}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(pod.agent.store.desired(), null);
      assert.deepEqual(pod.received(), []);
      const rollout = pod.agent.status().rollout;
      assert.equal(rollout?.stage, "held");
      assert.match(rollout?.reason ?? "", /could not be read/);
      assert.equal(rollout?.stateError?.code, "STATE_READ_FAILED");
      const metrics = (await get(pod, "/metrics")).text;
      assert.equal(gauge(metrics, "sfu_agent_rollout_holding"), 1);
      assert.equal(gauge(metrics, "sfu_agent_rollout_state_unreadable"), 1);
    } finally {
      proxy.fail("s3", null);
    }
    // S3 answers: config 2 is unknown to the state, so the pod takes the stable config 1.
    await until(() => pod.applied() === h[1], 15_000, "the new pod takes the stable config once S3 answers");
    assert.deepEqual(pod.received(), [h[1]]);
    const metrics = (await get(pod, "/metrics")).text;
    assert.equal(gauge(metrics, "sfu_agent_rollout_holding"), 0);
    assert.equal(gauge(metrics, "sfu_agent_rollout_state_unreadable"), 0);
  });
});
