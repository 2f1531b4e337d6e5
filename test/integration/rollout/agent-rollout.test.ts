/**
 * The agent's side of a progressive rollout, end to end on real parts:
 * fauxqs (SNS, SQS and S3), several in-process agents (the real Agent in
 * per-pod queue mode) each with a fake SFU, ConfigMap directories written
 * the kubelet's way with a `rollout.yaml` next to `config.yaml`. The test
 * plays the rollout driver by hand (it writes the state object and publishes
 * reload events with a `rollout` field), so every agent-side rule is checked
 * on its own: held pods never move, the cohort applies the candidate, a halt
 * reverts the cohort, and the halted hash never reaches a pod again, across
 * an agent restart (with the SFU still running the bad config), an SFU
 * restart, a pod created later, lost and duplicated events.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import { RolloutStateStore } from "../../../agent/aws/state-store.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import type { RolloutCandidate, RolloutState } from "../../../protocol/rollout-schema.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION } from "../../../scripts/local/fauxqs.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { configText } from "../../helpers/config-text.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { byRank } from "../../helpers/fleet-sim.ts";
import { type QueuePod, startQueuePod, testPodQueue } from "../../helpers/queue-pod.ts";
import { drainStatus, type QueueFixture, startQueueFixture, until } from "../queue/harness.ts";

const BUCKET = "sfu-rollout";
const STATE_URL = `s3://${BUCKET}/sfu/rollout-state.json`;
const POLICY = "schemaVersion: 1\nsteps:\n  - { percent: 25, bake: 30s }\n  - { percent: 100 }\n";

interface Pod extends QueuePod {
  name: string;
  rank: number;
  logs: string[];
  destroyClients: () => void;
}

async function loaded(n: number) {
  const r = await loadConfigText(configText(n), { checkFiles: false });
  if (!r.ok) throw new Error("bad fixture");
  return r;
}

describe("agent rollout decision with S3 state, SNS/SQS events and several agents", { timeout: 120_000 }, () => {
  let f: QueueFixture;
  let state: RolloutStateStore;
  const pods: Pod[] = [];
  const dirs: string[] = [];
  const hashes: string[] = [];
  let stable1: { hash: string; revision: string; config: unknown };
  /** Hashes received by the fake SFUs of stopped agents, per pod name. */
  const archived = new Map<string, string[]>();

  const startPod = async (
    name: string,
    o: { dir?: string; initial?: number; sfuApplied?: { version: number; hash: string } | null } = {},
  ) => {
    const { logger, logs } = capturedLogger("debug");
    const clients = f.fx.clients();
    const pod = await startQueuePod({
      name,
      tmpPrefix: "sfu-rollout-test-",
      initialConfig: configText(o.initial ?? 1),
      files: { "rollout.yaml": POLICY },
      ...(o.dir === undefined ? {} : { dir: o.dir }),
      logger,
      clients,
      resyncIntervalMs: 1_000,
      queue: testPodQueue(f),
      agentOptions: {
        rolloutState: STATE_URL,
        rolloutAws: { region: FAUXQS_REGION, endpointUrl: f.fx.endpoint, credentials: FAUXQS_CREDENTIALS },
        healthReportIntervalMs: 500,
      },
      ...(o.sfuApplied === undefined ? {} : { sfuApplied: o.sfuApplied }),
    });
    if (o.dir === undefined) dirs.push(pod.dir);
    return { ...pod, name, rank: cohortRank(name), logs, destroyClients: () => clients.destroy() } as Pod;
  };
  /** Hashes pushed to this pod's fake SFUs (earlier ones of agent restarts included), in order. */
  const received = (name: string): string[] => {
    const current = pods.find((p) => p.name === name);
    return [...(archived.get(name) ?? []), ...(current ? current.sfu.received.map((r) => r.message.hash) : [])];
  };
  const stopPod = async (p: Pod) => {
    archived.set(p.name, [...(archived.get(p.name) ?? []), ...p.sfu.received.map((r) => r.message.hash)]);
    await p.sfu.close();
    await p.agent.stop(500);
    p.destroyClients();
  };
  const writeState = async (
    candidate: (Omit<RolloutCandidate, "revision" | "reason"> & { reason?: RolloutCandidate["reason"] }) | null,
    stable = stable1,
  ) => {
    const s: RolloutState = {
      type: "sfu-config.rollout-state",
      updatedAt: new Date().toISOString(),
      stable: stable as RolloutState["stable"],
      candidate: candidate === null ? null : { revision: "rev-x", reason: null, ...candidate },
    };
    await state.write(s);
  };
  const publish = (n: number, rollout: { id: string; step: number; threshold: number }) => f.publish(n, { rollout });
  const stage = (p: Pod) => p.agent.status().rollout?.stage ?? null;
  const applied = (p: Pod) => p.agent.status().applied?.hash ?? null;

  before(async () => {
    f = await startQueueFixture();
    const s3 = createS3Client({
      endpointUrl: f.fx.endpoint,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    state = new RolloutStateStore({ url: STATE_URL, s3 });
    for (const n of [1, 2, 3]) hashes[n] = (await loaded(n)).hash;
    const c1 = await loaded(1);
    stable1 = { hash: c1.hash, revision: "rev-1", config: c1.config };
    await writeState(null);
    // Four pods; the test's cohort is the lowest-ranked one.
    const started: Pod[] = [];
    for (const name of ["sfu-a", "sfu-b", "sfu-c", "sfu-d"]) started.push(await startPod(name));
    pods.push(...byRank(started));
  });
  after(async () => {
    for (const p of pods) await stopPod(p).catch(() => {});
    await f.dispose();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("with the stable config mounted, every pod applies it and reports stage applied", async () => {
    for (const p of pods) {
      await until(() => applied(p) === hashes[1], 10_000, `${p.name} applied config 1`);
      assert.equal(stage(p), "applied");
      assert.equal(p.agent.status().rollout?.stable, hashes[1]);
    }
  });

  it("a new config in the mount, unknown to the state (an Argo self-heal, no hook yet): every pod holds", async () => {
    for (const p of pods) await p.writer.write({ "config.yaml": configText(2), "rollout.yaml": POLICY });
    for (const p of pods) {
      await until(
        () => p.agent.status().source.valid && p.agent.store.fileHash() === hashes[2],
        10_000,
        `${p.name} read config 2`,
      );
      await until(() => stage(p) === "held", 5_000, `${p.name} held`);
      assert.match(p.agent.status().rollout?.reason ?? "", /waiting for rollout of sha256:/);
      assert.equal(applied(p), hashes[1]);
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const p of pods) assert.ok(!received(p.name).includes(hashes[2]!), `${p.name} never got config 2`);
  });

  it("rollout starts (threshold 0): every pod reports held with its rank; nobody moves", async () => {
    await writeState({ id: "r-1", hash: hashes[2]!, state: "running", step: 0, threshold: 0 });
    await publish(2, { id: "r-1", step: 0, threshold: 0 });
    for (const p of pods) await until(() => p.agent.status().rollout?.id === "r-1", 10_000, `${p.name} read r-1`);
    const events = await until(
      async () => {
        const got = (await drainStatus(f, 2)).filter((e) => (e.rollout as { id?: string } | null)?.id === "r-1");
        return got.length >= pods.length ? got : null;
      },
      20_000,
      "held reports of r-1",
    );
    for (const p of pods) {
      const e = events.find((x) => x.pod === p.name);
      assert.ok(e, `${p.name} reported`);
      assert.equal(e.stage, "held");
      assert.equal(e.hash, hashes[1]);
      assert.equal(e.outcome, "applied");
      assert.equal(e.rank, p.rank);
    }
    for (const p of pods) assert.equal(applied(p), hashes[1]);
  });

  it("step 1: the cohort (lowest rank) applies the candidate as canary; the others never move", async () => {
    const cohort = pods[0]!;
    const threshold = pods[1]!.rank;
    await writeState({ id: "r-1", hash: hashes[2]!, state: "running", step: 1, threshold });
    await publish(2, { id: "r-1", step: 1, threshold });
    await until(() => applied(cohort) === hashes[2], 10_000, "the canary applied config 2");
    assert.equal(stage(cohort), "canary");
    const events = await until(
      async () => {
        const got = (await drainStatus(f, 1)).filter((e) => e.pod === cohort.name && e.stage === "canary");
        return got.length > 0 ? got : null;
      },
      10_000,
      "canary report",
    );
    assert.equal(events[0]!.hash, hashes[2]);
    assert.equal(events[0]!.outcome, "applied");
    assert.deepEqual(events[0]!.rollout, { id: "r-1", hash: hashes[2], step: 1 });
    for (const p of pods.slice(1)) {
      assert.equal(stage(p), "held");
      assert.ok(!received(p.name).includes(hashes[2]!), `${p.name} never got config 2`);
    }
  });

  it("halt: the canary reverts to the stable config live; the others never move", async () => {
    const cohort = pods[0]!;
    const countsBefore = pods.map((p) => received(p.name).length);
    await writeState({
      id: "r-1",
      hash: hashes[2]!,
      state: "halted",
      step: 1,
      threshold: pods[1]!.rank,
      reason: { step: 1, criterion: "iceFailureRate", pods: [cohort.name], detail: "0.8 > 0.1" },
    });
    await publish(2, { id: "r-1", step: 1, threshold: pods[1]!.rank });
    await until(() => applied(cohort) === hashes[1], 10_000, "the canary reverted to config 1");
    assert.equal(stage(cohort), "reverted");
    assert.equal(cohort.agent.status().rollout?.haltReason?.criterion, "iceFailureRate");
    const reverted = await until(
      async () => {
        const got = (await drainStatus(f, 1)).filter((e) => e.pod === cohort.name && e.stage === "reverted");
        return got.length > 0 ? got : null;
      },
      10_000,
      "reverted report",
    );
    assert.equal(reverted[0]!.hash, hashes[1]);
    assert.equal(reverted[0]!.outcome, "applied");
    const reversal = received(cohort.name);
    assert.equal(reversal.at(-1), hashes[1]);
    for (const [i, p] of pods.entries()) {
      if (i === 0) continue;
      assert.equal(received(p.name).length, countsBefore[i], `${p.name} got no push`);
      assert.equal(stage(p), "held");
    }
  });

  it("a restarted agent whose SFU still runs the halted config pushes the stable one at once", async () => {
    const old = pods[0]!;
    const dir = old.dir;
    const runningBad = { version: old.agent.store.highestVersion(), hash: hashes[2]! };
    await stopPod(old);
    pods.splice(0, 1);
    const fresh = await startPod(old.name, { dir, sfuApplied: runningBad });
    pods.unshift(fresh);
    await until(() => applied(fresh) === hashes[1], 10_000, "restarted agent pushed config 1");
    await new Promise((r) => setTimeout(r, 300));
    const mine = fresh.sfu.received.map((r) => r.message.hash);
    assert.deepEqual(mine, [hashes[1]], "the only config pushed after the restart is the stable one");
    assert.equal(stage(fresh), "reverted");
  });

  it("an SFU restart (hello without applied) gets the stable config, never the halted one", async () => {
    const p = pods[1]!;
    archived.set(p.name, [...(archived.get(p.name) ?? []), ...p.sfu.received.map((r) => r.message.hash)]);
    await p.sfu.close();
    const sfu = await FakeSfu.connect({ url: p.agent.pushUrl, name: p.name, reply: { kind: "ack" } });
    p.sfu = sfu;
    const m = await sfu.waitForConfig(() => true, 10_000);
    assert.equal(m.hash, hashes[1]);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      sfu.received.map((r) => r.message.hash),
      [hashes[1]],
    );
  });

  it("a pod created during the halt, with the halted config mounted, never applies it", async () => {
    const late = await startPod("sfu-late", { initial: 2 });
    try {
      await until(() => applied(late) === hashes[1], 10_000, "the new pod applied the stable config");
      assert.ok(stage(late) === "held" || stage(late) === "reverted");
      assert.ok(!late.sfu.received.some((r) => r.message.hash === hashes[2]));
    } finally {
      await stopPod(late);
    }
  });

  it("the halted hash reached no SFU after the halt, on any pod", () => {
    for (const p of pods.slice(1)) assert.ok(!received(p.name).includes(hashes[2]!), p.name);
    const canary = received(pods[0]!.name);
    const firstStable = canary.lastIndexOf(hashes[1]!);
    assert.ok(canary.slice(firstStable).every((h) => h !== hashes[2]));
  });

  it("a lost event heals by the state re-read: a new rollout reaches pods without any event", async () => {
    for (const p of pods) await p.writer.write({ "config.yaml": configText(3), "rollout.yaml": POLICY });
    // The driver writes the state but its event is lost: the mount change and the resync re-read do it.
    await writeState({ id: "r-2", hash: hashes[3]!, state: "running", step: 1, threshold: 1 });
    for (const p of pods) {
      await until(() => applied(p) === hashes[3], 15_000, `${p.name} applied config 3 without an event`);
      assert.equal(stage(p), "canary");
    }
  });

  it("a duplicated event changes nothing; completion applies everywhere", async () => {
    const counts = pods.map((p) => received(p.name).length);
    await publish(3, { id: "r-2", step: 1, threshold: 1 });
    await publish(3, { id: "r-2", step: 1, threshold: 1 });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(
      pods.map((p) => received(p.name).length),
      counts,
    );
    const c3 = await loaded(3);
    await writeState(
      { id: "r-2", hash: hashes[3]!, state: "complete", step: 2, threshold: 1 },
      { hash: c3.hash, revision: "rev-3", config: c3.config },
    );
    await publish(3, { id: "r-2", step: 2, threshold: 1 });
    for (const p of pods) await until(() => stage(p) === "applied", 10_000, `${p.name} applied stage`);
    assert.deepEqual(
      pods.map((p) => received(p.name).length),
      counts,
    );
  });

  it("every event above was taken as a rollout event: none was settled by timing out", () => {
    for (const p of pods) assert.ok(!p.logs.some((l) => l.includes('"outcome":"timeout"')), p.name);
  });
});
