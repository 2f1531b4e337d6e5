/**
 * A health-based halt on real parts: three pods, each the real agent (per-pod
 * queue over fauxqs, rollout state in fauxqs S3) with the real SFU, and real
 * werift clients calling them. A bad change (a `listenIp` the IPv4-only test
 * clients cannot reach: every new call's ICE fails) is rolled out with
 * `sfu-agent rollout`; the canary's ICE failures halt it at the first step,
 * the canary reverts live, the other pods never apply the bad hash, and no
 * call that was up before the rollout drops, on any pod (counted before and
 * after, as in the restart-vs-reload benchmark).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { SfuServer } from "../../../sfu/server.ts";
import { configHash } from "../../helpers/config-text.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";
import { until } from "../queue/harness.ts";
import { LogCapture } from "../sfu/harness.ts";
import { configText, type Fleet, type FleetPod, hashOf, startFleet } from "./fleet.ts";

const POLICY = `schemaVersion: 1
steps:
  - { percent: 30, bake: 30s }
  - { percent: 100, bake: 1s }
halt:
  health: { minJoins: 3, maxJoinFailureRate: 0.5, maxIceFailureRate: 0.2, maxRatioToBaseline: 3 }
  noTraffic: wait
`;
/** Config 2 with a listen address the test clients cannot reach. */
const BAD = configText(2).replace("listenIp: 127.0.0.1", 'listenIp: "::1"');

interface RealPod {
  pod: FleetPod;
  sfu: SfuServer;
  url: string;
  /** Every config hash its SFU ran (sampled every 20 ms). */
  ran: Set<string>;
}

describe("a health-based halt with real SFUs and werift clients", { timeout: 150_000 }, () => {
  let fleet: Fleet;
  const real: RealPod[] = [];
  const calls: Array<{ pod: string; client: WeriftTestClient }> = [];
  const churn: WeriftTestClient[] = [];
  let sampler: ReturnType<typeof setInterval> | null = null;

  before(async () => {
    fleet = await startFleet({ names: ["sfu-x", "sfu-y", "sfu-z"], initial: 1, policy: POLICY });
    for (const pod of fleet.pods) {
      // The fake SFU leaves; the real one takes its place on the agent's socket.
      await pod.sfu.close();
      const sfu = new SfuServer({
        logger: pino({ level: "warn" }, new LogCapture().stream),
        agentUrl: pod.agent.pushUrl,
        port: 0,
        host: "127.0.0.1",
        initialBackoffMs: 100,
        maxBackoffMs: 400,
        healthIntervalMs: 200,
        iceConnectTimeoutMs: 3_000,
      });
      await sfu.start();
      await until(() => sfu.state.current !== null && sfu.port !== null, 10_000, `${pod.name}'s SFU`);
      real.push({ pod, sfu, url: `ws://127.0.0.1:${sfu.port}/ws`, ran: new Set() });
    }
    sampler = setInterval(() => {
      for (const r of real) if (r.sfu.state.current) r.ran.add(r.sfu.state.current.hash);
    }, 20);
  });
  after(async () => {
    if (sampler) clearInterval(sampler);
    for (const c of [...calls.map((x) => x.client), ...churn]) await c.close().catch(() => {});
    for (const r of real) await r.sfu.stop().catch(() => {});
    await fleet?.dispose();
  });

  it("halts on the canary's ICE failures, reverts it live, and drops no call anywhere", async () => {
    const h1 = await hashOf(1);
    const h2 = await configHash(BAD);
    const boot = await fleet.rollout(1, { policy: POLICY });
    assert.equal(boot.code, 0, boot.stdout + boot.stderr);

    // Two calls per pod, up before the rollout.
    for (const r of real) {
      for (const name of ["long-1", "long-2"]) {
        const client = await WeriftTestClient.join({
          url: r.url,
          room: `room-${r.pod.name}`,
          name,
          publish: { audio: true, video: false },
          timeoutMs: 8_000,
        });
        await client.waitConnected();
        calls.push({ pod: r.pod.name, client });
      }
    }
    const before = new Map<string, number>();
    for (const r of real) before.set(r.pod.name, r.sfu.rooms.participantCount);

    // New calls keep arriving on every pod while the rollout runs.
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop && i < 200; i++) {
        await Promise.all(
          real.map(async (r) => {
            try {
              const c = await WeriftTestClient.join({
                url: r.url,
                room: `churn-${r.pod.name}-${i}`,
                name: `c${i}`,
                publish: { audio: true, video: false },
                timeoutMs: 4_000,
              });
              churn.push(c);
              await c.waitConnected().catch(() => {});
              await c.close().catch(() => {});
            } catch {
              // A refused or failed join is what the SFU counts.
            }
          }),
        );
        await new Promise((res) => setTimeout(res, 200));
      }
    })();

    const run = fleet.rollout(BAD, { policy: POLICY, timeout: "90s" });
    // The kubelet swaps every pod's mount to the bad config.
    for (const pod of fleet.pods) await pod.writer.write({ "config.yaml": BAD, "rollout.yaml": POLICY });
    const r = await run;
    stop = true;
    await traffic;

    const canary = fleet.pods[0]?.name as string;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`halted at step 1 \\(30%\\): (ice|join)-failure-rate on ${canary}: `));
    assert.match(r.stderr, new RegExp(`reverted: ${canary}`));
    const s = await fleet.state.read();
    assert.equal(s?.candidate?.state, "halted");
    assert.equal(s?.candidate?.hash, h2);
    assert.equal(s?.stable?.hash, h1);

    // The canary ran the bad config and is back on the stable one; the others never ran it.
    const canaryReal = real.find((x) => x.pod.name === canary);
    assert.ok(canaryReal?.ran.has(h2), "the canary applied the bad config");
    await until(() => canaryReal?.sfu.state.current?.hash === h1, 10_000, "the canary back on config 1");
    for (const x of real) {
      if (x.pod.name === canary) continue;
      assert.deepEqual([...x.ran], [h1], `${x.pod.name} only ever ran config 1`);
    }

    // 0 dropped sessions: every call that was up before is still up, on every pod.
    for (const { pod, client } of calls) {
      assert.equal(client.pc.connectionState, "connected", `${pod}/${client.joined.id} still connected`);
      assert.equal(client.ws.readyState, client.ws.OPEN, `${pod}'s signalling socket still open`);
    }
    for (const x of real) {
      await until(
        () => x.sfu.rooms.participantCount === before.get(x.pod.name),
        10_000,
        `${x.pod.name}: the calls of before, and only those`,
      );
    }
  });
});
