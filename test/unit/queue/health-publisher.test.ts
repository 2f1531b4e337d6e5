/**
 * agent/sidecar/queue/health-publisher.ts on a manual clock with a recording SNS
 * client: publishes only while a rollout runs and the SFU has reported, at
 * once on start and on a stage change, then every interval; stops when the
 * rollout stops; a failed publish is counted and the next tick goes on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SNSClient } from "@aws-sdk/client-sns";
import { pino } from "pino";
import { Registry } from "prom-client";
import { HealthPublisher } from "../../../agent/sidecar/queue/health-publisher.ts";
import { createQueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import { configHash } from "../../../protocol/hash.ts";
import { parseHealthEvent } from "../../../protocol/messages.ts";
import type { HealthCounters } from "../../../protocol/messages-schema.ts";
import { ManualTimers } from "./manual-timers.ts";

const M = configHash({ m: 1 });
const S = configHash({ s: 1 });

function setup(opts: { fail?: () => boolean } = {}) {
  const timers = new ManualTimers();
  const sent: { TopicArn: string; Message: string }[] = [];
  const sns = {
    send: async (cmd: { input: { TopicArn: string; Message: string } }) => {
      if (opts.fail?.()) throw Object.assign(new Error("boom"), { name: "InternalError" });
      sent.push(cmd.input);
      return {};
    },
  } as unknown as SNSClient;
  let health: HealthCounters | null = {
    hash: S,
    since: "2026-12-02T05:00:00.000Z",
    joins: 4,
    joinFailures: 0,
    iceConnected: 4,
    iceFailures: 0,
  };
  const registry = new Registry();
  const metrics = createQueueMetrics(registry);
  const publisher = new HealthPublisher({
    sns,
    topicArn: "arn:aws:sns:us-east-1:000000000000:status",
    pod: "pod-a",
    logger: pino({ level: "silent" }),
    metrics,
    timers,
    intervalMs: 10_000,
    health: () => health,
  });
  const events = () => sent.map((s) => parseHealthEvent(s.Message)).map((r) => (r.ok ? r.event : r.reason));
  const counted = async (result: string) =>
    (await metrics.healthEvents.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  const settle = () => new Promise((r) => setImmediate(r));
  return {
    timers,
    publisher,
    events,
    counted,
    settle,
    setHealth: (h: HealthCounters | null) => {
      health = h;
    },
  };
}

describe("HealthPublisher", () => {
  it("publishes nothing without a running rollout", async () => {
    const t = setup();
    t.publisher.setRollout(null);
    t.publisher.setRollout({ running: false, hash: M, rank: 0.5, stage: "applied" });
    t.timers.advance(60_000);
    await t.settle();
    assert.deepEqual(t.events(), []);
    assert.equal(t.timers.pending, 0);
  });

  it("publishes at once, every interval, at once again on a stage change, and stops with the rollout", async () => {
    const t = setup();
    t.publisher.setRollout({ running: true, hash: M, rank: 0.5, stage: "held" });
    await t.settle();
    assert.equal(t.events().length, 1);
    const [first] = t.events() as Exclude<ReturnType<typeof t.events>[number], string>[];
    assert.deepEqual(first, {
      type: "sfu-config.health",
      pod: "pod-a",
      rank: 0.5,
      hash: M,
      stage: "held",
      health: {
        hash: S,
        since: "2026-12-02T05:00:00.000Z",
        joins: 4,
        joinFailures: 0,
        iceConnected: 4,
        iceFailures: 0,
      },
      at: new Date(t.timers.now()).toISOString(),
    });
    t.publisher.setRollout({ running: true, hash: M, rank: 0.5, stage: "held" }); // unchanged: no extra event
    await t.settle();
    t.timers.advance(9_999);
    await t.settle();
    assert.equal(t.events().length, 1);
    t.timers.advance(1);
    await t.settle();
    assert.equal(t.events().length, 2);
    t.setHealth({
      hash: M,
      since: "2026-12-02T05:00:20.000Z",
      joins: 0,
      joinFailures: 0,
      iceConnected: 0,
      iceFailures: 0,
    });
    t.publisher.setRollout({ running: true, hash: M, rank: 0.5, stage: "canary" });
    await t.settle();
    const events = t.events() as { stage: string; health: { hash: string } }[];
    assert.equal(events.length, 3);
    assert.equal(events[2]!.stage, "canary");
    assert.equal(events[2]!.health.hash, M);
    t.publisher.setRollout({ running: false, hash: M, rank: 0.5, stage: "applied" });
    t.timers.advance(60_000);
    await t.settle();
    assert.equal(t.events().length, 3);
    assert.equal(t.timers.pending, 0);
    assert.equal(await t.counted("published"), 3);
  });

  it("skips ticks before the SFU's first report, and keeps going after a failed publish", async () => {
    let failing = false;
    const t = setup({ fail: () => failing });
    t.setHealth(null);
    t.publisher.setRollout({ running: true, hash: M, rank: 0.1, stage: "canary" });
    await t.settle();
    assert.equal(t.events().length, 0);
    t.setHealth({
      hash: M,
      since: "2026-12-02T05:00:00.000Z",
      joins: 1,
      joinFailures: 0,
      iceConnected: 0,
      iceFailures: 1,
    });
    failing = true;
    t.timers.advance(10_000);
    await t.settle();
    assert.equal(t.events().length, 0);
    assert.equal(await t.counted("failed"), 1);
    failing = false;
    t.timers.advance(10_000);
    await t.settle();
    assert.equal(t.events().length, 1);
    await t.publisher.stop();
    t.timers.advance(60_000);
    await t.settle();
    assert.equal(t.events().length, 1, "stopped");
  });

  it("refuses an interval below 100 ms", () => {
    assert.throws(
      () =>
        new HealthPublisher({
          sns: {} as SNSClient,
          topicArn: "arn:aws:sns:us-east-1:000000000000:s",
          pod: "p",
          logger: pino({ level: "silent" }),
          health: () => null,
          intervalMs: 5,
        }),
      /intervalMs/,
    );
  });
});
