import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SNSClient } from "@aws-sdk/client-sns";
import { pino } from "pino";
import { Registry } from "prom-client";
import { createQueueMetrics } from "../../../agent/sidecar/queue/metrics.ts";
import { StatusPublisher } from "../../../agent/sidecar/queue/status-publisher.ts";
import type { Settlement } from "../../../agent/sidecar/snapshot-store.ts";
import { until } from "../../helpers/until.ts";

/** An SNS client that fails while `down` and records what it published. */
function sns() {
  const published: Array<{ hash: string; stage: string | null }> = [];
  const c = {
    down: true,
    published,
    async send(cmd: { input: { Message?: string } }) {
      if (c.down) throw Object.assign(new Error("connect ECONNREFUSED"), { name: "Error" });
      const e = JSON.parse(cmd.input.Message ?? "{}") as { hash: string; stage?: string };
      published.push({ hash: e.hash, stage: e.stage ?? null });
      return {};
    },
  };
  return c;
}

const settlement = (hash: string, stage?: "canary" | "held"): Settlement => ({
  revision: null,
  hash,
  version: 1,
  outcome: "applied",
  error: null,
  at: new Date().toISOString(),
  ...(stage ? { stage, rank: 0.1, rollout: { id: "r", hash, step: 0 } } : {}),
});

describe("StatusPublisher", () => {
  it("retries the newest stage report through an SNS outage (a plain settlement stays best effort)", async () => {
    // Fails on main: a stage report lost to a 2 s SNS outage left the driver waiting until its timeout.
    const client = sns();
    const p = new StatusPublisher({
      sns: client as unknown as SNSClient,
      topicArn: "arn:aws:sns:us-east-1:000000000000:status",
      pod: "sfu-0",
      logger: pino({ level: "silent" }),
      metrics: createQueueMetrics(new Registry()),
      retryBackoff: { baseMs: 20, maxMs: 40 },
    });
    p.publish(settlement("sha256:plain"));
    p.publish(settlement("sha256:old", "held"));
    p.publish(settlement("sha256:new", "canary"));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(client.published, []);
    client.down = false;
    await until(() => client.published.length > 0, 2_000, "the stage report published once SNS answers");
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(client.published, [{ hash: "sha256:new", stage: "canary" }], "only the newest, once");
    p.stop();
    await p.flush();
  });

  it("stop() ends the retries", async () => {
    const client = sns();
    const p = new StatusPublisher({
      sns: client as unknown as SNSClient,
      topicArn: "arn:aws:sns:us-east-1:000000000000:status",
      pod: "sfu-0",
      logger: pino({ level: "silent" }),
      metrics: createQueueMetrics(new Registry()),
      retryBackoff: { baseMs: 20, maxMs: 40 },
    });
    p.publish(settlement("sha256:a", "held"));
    await new Promise((r) => setTimeout(r, 50));
    p.stop();
    client.down = false;
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(client.published, []);
  });
});
