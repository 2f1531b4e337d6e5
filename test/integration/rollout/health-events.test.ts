/**
 * Call-health events during a rollout, end to end on real parts: fauxqs
 * (SNS, SQS, S3), the real agent in per-pod queue mode with a rollout
 * policy mounted, the real SFU dialing it, and a werift client in a call.
 * While the rollout state says the candidate is running, the agent
 * publishes `sfu-config.health` events to the status topic with the SFU's
 * real counters (the call is counted on the canary's new hash); once the
 * state says complete, the events stop.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import { RolloutStateStore } from "../../../agent/aws/state-store.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { parseHealthEvent } from "../../../protocol/messages.ts";
import type { HealthEvent } from "../../../protocol/messages-schema.ts";
import type { RolloutState } from "../../../protocol/rollout-schema.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION } from "../../../scripts/local/fauxqs.ts";
import { SfuServer } from "../../../sfu/server.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { configText } from "../../helpers/config-text.ts";
import { type QueuePod, startQueuePod, testPodQueue } from "../../helpers/queue-pod.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";
import { drainStatus, type QueueFixture, startQueueFixture, until } from "../queue/harness.ts";
import { LogCapture } from "../sfu/harness.ts";

const BUCKET = "sfu-health";
const STATE_URL = `s3://${BUCKET}/sfu/rollout-state.json`;
const POLICY = "schemaVersion: 1\nsteps:\n  - { percent: 50, bake: 30s }\n  - { percent: 100 }\n";
const POD = "sfu-health-a";

async function loaded(n: number) {
  const r = await loadConfigText(configText(n), { checkFiles: false });
  if (!r.ok) throw new Error("bad fixture");
  return r;
}

describe("call-health events while a rollout runs", { timeout: 120_000 }, () => {
  let f: QueueFixture;
  let state: RolloutStateStore;
  let pod: QueuePod;
  let sfu: SfuServer;
  let client: WeriftTestClient | null = null;
  let destroyClients = () => {};

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
  });
  after(async () => {
    await client?.close().catch(() => {});
    await sfu?.stop().catch(() => {});
    await pod?.agent.stop(500).catch(() => {});
    destroyClients();
    if (pod) await rm(pod.dir, { recursive: true, force: true });
    await f.dispose();
  });

  it("publishes the SFU's counters on the canary's hash every interval, and stops when the rollout completes", async () => {
    const stable = await loaded(1);
    const candidate = await loaded(2);
    const id = "7c1f4b0e-0000-4000-8000-000000000001";
    const write = async (s: "running" | "complete") => {
      const doc: RolloutState = {
        type: "sfu-config.rollout-state",
        updatedAt: new Date().toISOString(),
        stable: (s === "running"
          ? { hash: stable.hash, revision: "rev-1", config: stable.config }
          : { hash: candidate.hash, revision: "rev-2", config: candidate.config }) as RolloutState["stable"],
        candidate: { id, hash: candidate.hash, revision: "rev-2", state: s, step: 0, threshold: 1, reason: null },
      } as RolloutState;
      await state.write(doc);
    };
    await write("running");
    const { logger } = capturedLogger("info");
    const clients = f.fx.clients();
    destroyClients = () => clients.destroy();
    pod = await startQueuePod({
      name: POD,
      tmpPrefix: "sfu-health-test-",
      initialConfig: configText(2),
      files: { "rollout.yaml": POLICY },
      logger,
      clients,
      resyncIntervalMs: 1_000,
      queue: testPodQueue(f),
      agentOptions: {
        rolloutState: STATE_URL,
        rolloutAws: { region: FAUXQS_REGION, endpointUrl: f.fx.endpoint, credentials: FAUXQS_CREDENTIALS },
        healthReportIntervalMs: 500,
      },
    });
    // The real SFU takes the fake one's place.
    await pod.sfu.close();
    sfu = new SfuServer({
      logger: pino({ level: "warn" }, new LogCapture().stream),
      agentUrl: pod.agent.pushUrl,
      port: 0,
      host: "127.0.0.1",
      initialBackoffMs: 100,
      maxBackoffMs: 400,
      healthIntervalMs: 100,
    });
    await sfu.start();
    await until(() => sfu.state.current?.hash === candidate.hash, 15_000, "the canary SFU to apply the candidate");
    assert.equal(pod.agent.status().rollout?.stage, "canary");
    client = await WeriftTestClient.join({
      url: `ws://127.0.0.1:${sfu.port}/ws`,
      room: "r",
      name: "a",
      publish: { audio: true, video: false },
    });
    await client.waitConnected();

    const events: HealthEvent[] = [];
    await until(
      async () => {
        for (const body of await drainStatus(f)) {
          const r = parseHealthEvent(JSON.stringify(body));
          if (r.ok) events.push(r.event);
        }
        return events.some((e) => e.health.iceConnected >= 1);
      },
      20_000,
      "a health event counting the connected call",
    );
    const last = events.at(-1)!;
    assert.equal(last.pod, POD);
    assert.equal(last.hash, candidate.hash);
    assert.equal(last.stage, "canary");
    assert.equal(last.rank, cohortRank(POD));
    assert.deepEqual(
      { ...last.health, since: undefined },
      { hash: candidate.hash, since: undefined, joins: 1, joinFailures: 0, iceConnected: 1, iceFailures: 0 },
    );
    // The first event may already count the call: collect one more interval.
    await until(
      async () => {
        for (const body of await drainStatus(f)) {
          const r = parseHealthEvent(JSON.stringify(body));
          if (r.ok) events.push(r.event);
        }
        return events.length >= 2;
      },
      5_000,
      "a second health event",
    );
    assert.ok(events.length >= 2, `events repeat every interval (${events.length})`);

    // The rollout completes: after the agent re-reads the state (resync 1 s), no more health events.
    await write("complete");
    await until(() => pod.agent.status().rollout?.stage === "applied", 15_000, "the stage to become applied");
    await drainStatus(f, 2);
    const later = (await drainStatus(f, 3)).filter((b) => b.type === "sfu-config.health");
    assert.deepEqual(later, [], "no health events once the rollout is complete");
  });
});
