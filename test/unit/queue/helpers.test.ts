import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { regionFromResource } from "../../../agent/aws/aws-clients.ts";
import { AgentError } from "../../../agent/shared/errors.ts";
import { QUEUE_DEFAULTS, resolveQueueOptions } from "../../../agent/sidecar/queue/options.ts";
import { queuePolicy } from "../../../agent/sidecar/queue/per-pod-queue.ts";
import { isValidQueueName, perPodQueueName, queueNameFromUrl } from "../../../agent/sidecar/queue/queue-name.ts";

const TOPIC = "arn:aws:sns:eu-west-1:123456789012:sfu-config-reload";

describe("perPodQueueName", () => {
  it("keeps valid names as they are", () => {
    assert.equal(perPodQueueName("sfu-config-", "sfu-server-7d9f-abcde"), "sfu-config-sfu-server-7d9f-abcde");
  });

  it("sanitises and suffixes a hash when characters are replaced", () => {
    const name = perPodQueueName("sfu-config-", "pod.name/x");
    assert.match(name, /^sfu-config-pod-name-x-[0-9a-f]{8}$/);
    assert.notEqual(name, perPodQueueName("sfu-config-", "pod-name-x"));
  });

  it("truncates long names to 80 characters with a distinguishing hash", () => {
    const a = perPodQueueName("sfu-config-", `${"a".repeat(100)}-1`);
    const b = perPodQueueName("sfu-config-", `${"a".repeat(100)}-2`);
    assert.equal(a.length, 80);
    assert.notEqual(a, b);
  });

  it("always yields a valid, deterministic SQS name (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (pod) => {
        const n = perPodQueueName("sfu-config-", pod);
        return isValidQueueName(n) && n === perPodQueueName("sfu-config-", pod) && n.startsWith("sfu-config-");
      }),
    );
  });

  it("reads the name from queue URLs", () => {
    assert.equal(queueNameFromUrl("https://sqs.eu-west-1.amazonaws.com/123456789012/sfu-config-a"), "sfu-config-a");
    assert.equal(queueNameFromUrl("http://127.0.0.1:4566/000000000000/q/"), "q");
  });
});

describe("resolveQueueOptions", () => {
  const base = { podName: "p", queuePrefix: "sfu-config-", propagationTimeoutMs: 300_000 };

  it("merges the documented defaults", () => {
    const o = resolveQueueOptions({ ...base, topicArn: TOPIC });
    assert.equal(o.mode, "per-pod");
    assert.equal(o.waitTimeSeconds, QUEUE_DEFAULTS.waitTimeSeconds);
    assert.equal(o.heartbeatIntervalMs, 15 * 60_000);
    assert.equal(o.staleAfterMs, 45 * 60_000);
    assert.equal(o.messageRetentionSeconds, 3600);
    assert.equal(resolveQueueOptions({ ...base, queueUrl: "https://sqs.eu-west-1.amazonaws.com/1/q" }).mode, "given");
  });

  it("rejects bad options with one error naming each problem", () => {
    const bad = (o: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(
        () => resolveQueueOptions({ ...base, ...o } as never),
        (e: unknown) => e instanceof AgentError && e.code === "QUEUE_OPTIONS" && pattern.test(e.message),
      );
    bad({}, /exactly one of topicArn/);
    bad({ topicArn: TOPIC, queueUrl: "https://x/1/q" }, /exactly one/);
    bad({ topicArn: "arn:aws:sqs:eu-west-1:1:q" }, /not an SNS topic ARN/);
    bad({ topicArn: `${TOPIC}.fifo` }, /FIFO/);
    bad({ topicArn: TOPIC, queuePrefix: "bad prefix" }, /queuePrefix/);
    bad({ topicArn: TOPIC, waitTimeSeconds: 21 }, /waitTimeSeconds/);
    bad({ topicArn: TOPIC, heartbeatIntervalMs: 60_000, staleAfterMs: 90_000 }, /at least 2 x heartbeatIntervalMs/);
    bad({ topicArn: TOPIC, propagationTimeoutMs: 0 }, /propagationTimeoutMs/);
    bad({ topicArn: TOPIC, statusTopicArn: "nope" }, /statusTopicArn/);
  });
});

describe("regionFromResource and queuePolicy", () => {
  it("derives the region from ARNs and queue URLs", () => {
    assert.equal(regionFromResource(TOPIC), "eu-west-1");
    assert.equal(regionFromResource("https://sqs.us-west-2.amazonaws.com/1/q"), "us-west-2");
    assert.equal(regionFromResource("http://127.0.0.1:4566/000000000000/q"), null);
    assert.equal(regionFromResource(null), null);
  });

  it("lets only the topic send to the queue", () => {
    const p = JSON.parse(queuePolicy("arn:aws:sqs:eu-west-1:123456789012:sfu-config-a", TOPIC));
    assert.equal(p.Statement.length, 1);
    assert.deepEqual(p.Statement[0].Principal, { Service: "sns.amazonaws.com" });
    assert.equal(p.Statement[0].Action, "sqs:SendMessage");
    assert.deepEqual(p.Statement[0].Condition, { ArnEquals: { "aws:SourceArn": TOPIC } });
  });
});
