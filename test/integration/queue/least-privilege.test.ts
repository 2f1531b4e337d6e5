/**
 * Least privilege (an IAM policy that grants more than is used widens what a
 * stolen pod credential can do; one that grants less breaks in production,
 * not in tests): every AWS action the agent and the hook
 * (`sfu-agent notify`, `sfu-agent rollout`) make, recorded through the
 * client factory's call recorder over one scenario that exercises every code
 * path that calls AWS (per-pod provisioning, heartbeat, orphan sweep, held
 * message with a visibility extension, settlement + status event, shutdown,
 * given-queue mode, notify --wait, the rollout state read by the agent and
 * read and written by the driver, a halted rollout's status event), must
 * equal the Action lists of the `AgentPolicy` and `HookPolicy` resources in
 * k8s/aws/cloudformation.yaml: nothing used that is not granted, nothing
 * granted that is not used.
 *
 * One permission is needed by a call without being a call of its own:
 * s3:ListBucket lets S3 answer a GetObject of a missing object with 404
 * (there is no rollout state yet) instead of 403; {@link IMPLIED} adds it
 * for every s3:GetObject used.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  TagQueueCommand,
} from "@aws-sdk/client-sqs";
import { parse } from "yaml";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import { RolloutStateStore } from "../../../agent/aws/state-store.ts";
import { runRolloutCommand } from "../../../agent/commands/rollout.ts";
import { TAG_HEARTBEAT, TAG_SUBSCRIPTION } from "../../../agent/sidecar/queue/per-pod-queue.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION } from "../../../scripts/local/fauxqs.ts";
import { captureRun } from "../../helpers/cli-run.ts";
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
const BUCKET = "sfu-rollout";
const STATE_URL = `s3://${BUCKET}/sfu/rollout-state.json`;
const POLICY = "schemaVersion: 1\nsteps:\n  - { percent: 50, bake: 1s }\n  - { percent: 100, bake: 1s }\n";

/** Permissions a call needs besides its own action (see the module documentation). */
const IMPLIED: Record<string, string[]> = { "s3:GetObject": ["s3:ListBucket"] };

/** The used actions with the permissions they imply. */
function needed(used: Set<string>): Set<string> {
  return new Set([...used].flatMap((a) => [a, ...(IMPLIED[a] ?? [])]));
}

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
    // The rollout state's bucket (the fixture's own client: not recorded).
    const s3 = createS3Client({
      endpointUrl: f.fx.endpoint,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    s3.destroy();
    const stateStore = (onCall: (a: string) => void) =>
      new RolloutStateStore({
        url: STATE_URL,
        region: FAUXQS_REGION,
        endpointUrl: f.fx.endpoint,
        credentials: FAUXQS_CREDENTIALS,
        callLogFile: null,
        onCall,
      });
    const pod = await f.startPod("sfu-lp", {
      queue: { heartbeatIntervalMs: 500, staleAfterMs: 5_000, sweepIntervalMs: 300, visibilityTimeoutSeconds: 2 },
      files: { "rollout.yaml": POLICY },
      agentOptions: { rolloutState: STATE_URL },
      agentDeps: { rolloutState: stateStore((a) => f.actions.add(a)) },
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
    const h2 = await hashOf(2);
    assert.equal(pod.agent.tracker.settlements().find((s) => s.hash === h2)?.outcome, "applied");

    // rollout (the hook with a policy): the first run records the stable config;
    // the second waits for two pods where there is one, and halts (state write,
    // reload events, the halted status event).
    const policyFile = join(dir, "rollout.yaml");
    await writeFile(policyFile, POLICY);
    const file3 = join(dir, "config-3.yaml");
    await writeFile(file3, configText(3));
    const rolloutArgv = (config: string, extra: string[]) => [
      ...["--topic-arn", f.topicArn, "--config", config, "--policy", policyFile, "--rollout-state", STATE_URL],
      ...["--status-queue-url", f.statusQueueUrl, "--status-topic-arn", f.statusTopicArn, ...extra],
    ];
    const hookStore = stateStore((a) => hookActions.add(a));
    const rollout = (argv: string[]) =>
      captureRun((io) =>
        runRolloutCommand(argv, io, { env: {}, clients: hookClients, store: hookStore, waitTimeSeconds: 1 }),
      );
    const first = await rollout(rolloutArgv(file, ["--expect", "1"]));
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const halted = await rollout(rolloutArgv(file3, ["--expect", "2", "--timeout", "3s"]));
    assert.equal(halted.code, 1, halted.stdout + halted.stderr);
    assert.match(halted.stderr, /halted at step 1/);
    // The agent reads the state at start, on every rollout event and every resync.
    await until(() => f.actions.has("s3:GetObject"), 10_000, "the agent to read the rollout state");
    hookStore.destroy();
    hookClients.destroy();
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
    const agentNeeds = needed(f.actions);
    const hookNeeds = needed(hookActions);
    assert.ok(f.actions.has("s3:GetObject") && hookActions.has("s3:PutObject"), "the rollout paths ran");
    assert.deepEqual(
      [...agentNeeds].sort(),
      [...agentGranted].sort(),
      `AgentPolicy: ${diff(agentNeeds, agentGranted)}`,
    );
    assert.deepEqual([...hookNeeds].sort(), [...hookGranted].sort(), `HookPolicy: ${diff(hookNeeds, hookGranted)}`);
    const union = new Set([...agentGranted, ...hookGranted]);
    assert.deepEqual([...new Set([...agentNeeds, ...hookNeeds])].sort(), [...union].sort());
  });
});
