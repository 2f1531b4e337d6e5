/**
 * Least privilege (an IAM policy that grants more than is used widens what a
 * stolen pod credential can do; one that grants less breaks in production,
 * not in tests): every AWS action the agent and the hook
 * (`sfu-agent notify`) make, recorded through the client factory's call
 * recorder over one scenario that exercises every code path that calls AWS
 * (per-pod provisioning, heartbeat, orphan sweep, held message with a
 * visibility extension, settlement + status event, shutdown, given-queue
 * mode, notify --wait), must equal the Action lists of the `AgentPolicy`
 * and `HookPolicy` resources in k8s/aws/cloudformation.yaml: nothing used
 * that is not granted, nothing granted that is not used.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  TagQueueCommand,
} from "@aws-sdk/client-sqs";
import { parse } from "yaml";
import { TAG_HEARTBEAT, TAG_SUBSCRIPTION } from "../../../agent/queue/per-pod-queue.ts";
import {
  configText,
  hashOf,
  notifyWaitArgv,
  type QueueFixture,
  runNotifyCaptured,
  startQueueFixture,
  until,
} from "./harness.ts";

const CFN = new URL("../../../k8s/aws/cloudformation.yaml", import.meta.url);

/** The Action lists of a policy resource in the CloudFormation template. */
function policyActions(template: unknown, resource: string): Set<string> {
  type Statement = { Effect: string; Action: string | string[] };
  type PolicyResource = { Properties?: { PolicyDocument?: { Statement?: Statement[] } } };
  const r = (template as { Resources?: Record<string, PolicyResource> }).Resources?.[resource];
  assert.ok(r, `${resource} is missing from k8s/aws/cloudformation.yaml`);
  const statements = r.Properties?.PolicyDocument?.Statement ?? [];
  const out = new Set<string>();
  for (const s of statements) {
    if (s.Effect !== "Allow") continue;
    for (const a of Array.isArray(s.Action) ? s.Action : [s.Action]) out.add(a);
  }
  return out;
}

function diff(used: Set<string>, granted: Set<string>): string {
  const missing = [...used].filter((a) => !granted.has(a)).sort();
  const unused = [...granted].filter((a) => !used.has(a)).sort();
  return `used but not granted: [${missing.join(", ")}]; granted but never used: [${unused.join(", ")}]`;
}

describe("least privilege of the AWS policies", { timeout: 60_000 }, () => {
  let f: QueueFixture;
  let dir: string;
  const hookActions = new Set<string>();

  before(async () => {
    f = await startQueueFixture();
    dir = await mkdtemp(join(tmpdir(), "sfu-lp-test-"));
  });
  after(async () => {
    await f?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("exercises every AWS call path of the agent and the hook", async () => {
    // An orphan: a managed queue of a dead pod, subscribed, with an old heartbeat.
    const orphan = await f.clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-config-zz-dead" }));
    const orphanArn = (
      await f.clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: orphan.QueueUrl, AttributeNames: ["QueueArn"] }),
      )
    ).Attributes!.QueueArn!;
    const sub = await f.clients.sns.send(
      new SubscribeCommand({ TopicArn: f.topicArn, Protocol: "sqs", Endpoint: orphanArn, ReturnSubscriptionArn: true }),
    );
    await f.clients.sqs.send(
      new TagQueueCommand({
        QueueUrl: orphan.QueueUrl,
        Tags: {
          [TAG_HEARTBEAT]: String(Math.floor(Date.now() / 1000) - 3600),
          [TAG_SUBSCRIPTION]: sub.SubscriptionArn!,
        },
      }),
    );
    const pod = await f.startPod("sfu-lp", {
      queue: { heartbeatIntervalMs: 500, staleAfterMs: 5_000, sweepIntervalMs: 300, visibilityTimeoutSeconds: 2 },
    });
    await until(async () => !(await f.listQueues()).includes("sfu-config-zz-dead"), 10_000, "the orphan sweep");

    // notify --wait (the hook) while the agent holds the event past a visibility extension
    const file = join(dir, "config-2.yaml");
    await writeFile(file, configText(2));
    const hookClients = f.fx.clients({ onCall: (a) => hookActions.add(a) });
    const run = runNotifyCaptured(notifyWaitArgv(f, file, { expect: 1, timeout: "20" }), hookClients);
    await until(() => pod.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await until(() => f.actions.has("sqs:ChangeMessageVisibility"), 5_000, "a visibility extension");
    await pod.swap(2);
    const r = await run;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    hookClients.destroy();
    const h2 = await hashOf(2);
    assert.equal(pod.agent.tracker.settlements().find((s) => s.hash === h2)?.outcome, "applied");
    await pod.stop();

    // given-queue mode uses a subset (receive, delete, extend)
    const given = await f.clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-config-shared" }));
    const g = await f.startPod("sfu-given", {
      queue: { topicArn: null, queueUrl: given.QueueUrl!, statusTopicArn: null },
    });
    await f.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: given.QueueUrl,
        MessageBody: JSON.stringify({
          type: "sfu-config.reload",
          revision: null,
          hash: await hashOf(1),
          configMap: null,
          issuedAt: new Date().toISOString(),
        }),
      }),
    );
    await until(() => g.agent.tracker.settlements().length === 1, 10_000, "the given-queue settlement");
    await g.stop();
  });

  it("the agent's actions equal AgentPolicy and the hook's equal HookPolicy", async (t) => {
    let text: string;
    try {
      text = await readFile(CFN, "utf8");
    } catch {
      assert.fail(
        `k8s/aws/cloudformation.yaml is missing; observed agent actions: ${[...f.actions].sort().join(", ")}`,
      );
    }
    const template = parse(text, { logLevel: "silent" });
    const agentGranted = policyActions(template, "AgentPolicy");
    const hookGranted = policyActions(template, "HookPolicy");
    t.diagnostic(`agent used: ${[...f.actions].sort().join(", ")}`);
    t.diagnostic(`hook used: ${[...hookActions].sort().join(", ")}`);
    assert.deepEqual([...f.actions].sort(), [...agentGranted].sort(), `AgentPolicy: ${diff(f.actions, agentGranted)}`);
    assert.deepEqual([...hookActions].sort(), [...hookGranted].sort(), `HookPolicy: ${diff(hookActions, hookGranted)}`);
    const union = new Set([...agentGranted, ...hookGranted]);
    assert.deepEqual([...new Set([...f.actions, ...hookActions])].sort(), [...union].sort());
  });
});
