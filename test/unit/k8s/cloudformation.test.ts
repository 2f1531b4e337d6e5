/**
 * k8s/aws/cloudformation.yaml: plain YAML (long-form intrinsics only), every
 * reference resolves, the two IAM policies grant literal least-privilege
 * action lists scoped to the queue prefix, the topics and the one rollout
 * state object, and the names agree with the Kubernetes manifests and the
 * agent's defaults.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parseDocument } from "yaml";
import { RUN_FLAGS } from "../../../agent/commands/run-options.ts";
import { findObject, K8S_DIR, type K8sObject, renderK8s } from "./manifests.ts";

const PSEUDO = new Set([
  "AWS::AccountId",
  "AWS::Region",
  "AWS::Partition",
  "AWS::StackName",
  "AWS::URLSuffix",
  "AWS::NoValue",
]);

let template: K8sObject;
let base: K8sObject[];

/** Statements of a managed policy. */
const statements = (logicalId: string): K8sObject[] =>
  template.Resources[logicalId].Properties.PolicyDocument.Statement;
/** The union of a policy's actions. */
const actions = (logicalId: string) => new Set(statements(logicalId).flatMap((s) => s.Action as string[]));
/** A parameter's default. */
const param = (name: string): string => template.Parameters[name].Default;

/** Walks every value of the template, calling `visit` with each object node. */
function walk(node: unknown, visit: (o: K8sObject) => void): void {
  if (Array.isArray(node)) for (const x of node) walk(x, visit);
  else if (node && typeof node === "object") {
    visit(node as K8sObject);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

/** Replaces `${Name}` in a Fn::Sub string with the parameters' defaults / placeholders. */
function sub(text: string): string {
  return text.replace(/\$\{([\w:.]+)\}/g, (_m, name: string) => {
    if (name === "AWS::AccountId") return "111122223333";
    if (name === "AWS::Partition") return "aws";
    if (name === "AWS::Region") return "us-east-1";
    if (name === "OidcProvider") return "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    return param(name);
  });
}

before(async () => {
  const text = readFileSync(join(K8S_DIR, "aws", "cloudformation.yaml"), "utf8");
  const doc = parseDocument(text);
  assert.deepEqual(doc.errors, []);
  assert.deepEqual(doc.warnings, [], "no custom tags: long-form intrinsics only");
  template = doc.toJS() as K8sObject;
  base = await renderK8s("base");
});

describe("CloudFormation template", () => {
  it("resolves every Ref, Fn::GetAtt and Fn::Sub variable", () => {
    const known = new Set([...Object.keys(template.Parameters), ...Object.keys(template.Resources), ...PSEUDO]);
    walk(template, (o) => {
      if (typeof o.Ref === "string") assert.ok(known.has(o.Ref), `Ref ${o.Ref}`);
      if (Array.isArray(o["Fn::GetAtt"]))
        assert.ok(template.Resources[o["Fn::GetAtt"][0]], `GetAtt ${o["Fn::GetAtt"][0]}`);
      if (typeof o["Fn::Sub"] === "string") {
        for (const m of (o["Fn::Sub"] as string).matchAll(/\$\{([\w:.]+)\}/g)) {
          // ${Resource.Attribute} is a GetAtt of that resource.
          const name = (m[1] as string).includes("::") ? (m[1] as string) : (m[1] as string).split(".")[0];
          assert.ok(known.has(name as string), `Sub ${m[1]}`);
        }
      }
    });
  });

  it("has AgentPolicy and HookPolicy as managed policies attached to the IRSA roles", () => {
    for (const [policy, role] of [
      ["AgentPolicy", "AgentRole"],
      ["HookPolicy", "HookRole"],
    ]) {
      const r = template.Resources[policy as string];
      assert.equal(r.Type, "AWS::IAM::ManagedPolicy");
      assert.deepEqual(r.Properties.Roles, [{ Ref: role }]);
      assert.equal(template.Resources[role as string].Type, "AWS::IAM::Role");
    }
  });

  it("grants literal actions only: allow statements, no wildcards, no NotAction", () => {
    for (const policy of ["AgentPolicy", "HookPolicy"]) {
      for (const s of statements(policy)) {
        assert.equal(s.Effect, "Allow");
        assert.equal(s.NotAction, undefined);
        assert.equal(s.NotResource, undefined);
        assert.ok(Array.isArray(s.Action), `${policy}/${s.Sid}: Action is a literal array`);
        for (const a of s.Action) assert.match(a, /^(sqs|sns|s3):[A-Z][A-Za-z]+$/, `${policy}/${s.Sid}: ${a}`);
      }
    }
  });

  it("lists actions literally, without wildcards (the observed set is checked in test/integration/queue/least-privilege.test.ts)", () => {
    for (const id of ["AgentPolicy", "HookPolicy"]) {
      assert.ok(actions(id).size > 0, `${id} grants something`);
      for (const a of actions(id)) assert.match(a, /^(sqs|sns|s3):[A-Za-z]+$/, `${id}: ${a} is one literal action`);
    }
  });

  /** Checks an S3 statement: object actions on the state object only, ListBucket on its bucket for that key only. */
  const checkS3 = (s: K8sObject): boolean => {
    if (!s.Action.some((a: string) => a.startsWith("s3:"))) return false;
    const resources = [s.Resource].flat();
    if (s.Action.includes("s3:ListBucket")) {
      assert.deepEqual(s.Action, ["s3:ListBucket"]);
      assert.deepEqual(resources, [{ "Fn::GetAtt": ["RolloutBucket", "Arn"] }]);
      assert.deepEqual(s.Condition, { StringEquals: { "s3:prefix": { Ref: "RolloutStateKey" } } });
    } else {
      assert.ok(
        s.Action.every((a: string) => a === "s3:GetObject" || a === "s3:PutObject"),
        s.Sid,
      );
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
      assert.deepEqual(resources, [{ "Fn::Sub": "${RolloutBucket.Arn}/${RolloutStateKey}" }]);
    }
    return true;
  };

  it("scopes the agent's queue actions to the queue prefix, its SNS actions to the topics, S3 to the state object", () => {
    for (const s of statements("AgentPolicy")) {
      const resources = [s.Resource].flat();
      if (checkS3(s)) {
        assert.ok(!s.Action.includes("s3:PutObject"), "only the hook writes the rollout state");
      } else if (s.Action.includes("sqs:ListQueues")) {
        assert.deepEqual(s.Action, ["sqs:ListQueues"], "only ListQueues (no resource-level permissions) gets *");
        assert.deepEqual(resources, ["*"]);
      } else if (s.Action.every((a: string) => a.startsWith("sqs:"))) {
        assert.deepEqual(resources, [
          // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
          { "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueuePrefix}*" },
        ]);
      } else if (s.Action.includes("sns:Publish")) {
        assert.deepEqual(resources, [{ Ref: "StatusTopic" }]);
      } else {
        // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
        assert.deepEqual(resources, [{ Ref: "ReloadTopic" }, { "Fn::Sub": "${ReloadTopic}:*" }]);
      }
    }
    const hookTopics: unknown[] = [];
    for (const s of statements("HookPolicy")) {
      const resources = [s.Resource].flat();
      if (checkS3(s)) continue;
      if (s.Action.includes("sns:Publish")) {
        assert.deepEqual(s.Action, ["sns:Publish"]);
        hookTopics.push(...resources);
      } else assert.deepEqual(resources, [{ "Fn::GetAtt": ["StatusQueue", "Arn"] }]);
    }
    // The reload events, and a halted rollout's status event.
    assert.deepEqual(hookTopics, [{ Ref: "ReloadTopic" }, { Ref: "StatusTopic" }]);
  });

  it("uses the agent's default queue prefix and keeps the status queue outside it", () => {
    const defaultPrefix = RUN_FLAGS.find(([n]) => n === "queue-prefix")?.[1];
    assert.equal(param("QueuePrefix"), defaultPrefix);
    assert.ok(!param("StatusQueueName").startsWith(param("QueuePrefix")), "the agent's orphan sweep never sees it");
  });

  it("trusts exactly the two ServiceAccounts of the manifests through the cluster's OIDC provider", () => {
    for (const [role, sa] of [
      ["AgentRole", "AgentServiceAccount"],
      ["HookRole", "HookServiceAccount"],
    ] as const) {
      const policy = JSON.parse(sub(template.Resources[role].Properties.AssumeRolePolicyDocument["Fn::Sub"]));
      const [statement] = policy.Statement;
      assert.equal(statement.Action, "sts:AssumeRoleWithWebIdentity");
      const cond = statement.Condition.StringEquals;
      const provider = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
      assert.equal(cond[`${provider}:sub`], `system:serviceaccount:${param("Namespace")}:${param(sa)}`);
      assert.equal(cond[`${provider}:aud`], "sts.amazonaws.com");
      findObject(base, "ServiceAccount", param(sa));
      assert.equal(findObject(base, "Namespace", param("Namespace")).kind, "Namespace");
    }
  });

  it("names the roles, topics and queue that k8s/base/aws.env points at", () => {
    const aws = findObject(base, "ConfigMap", "sfu-aws").data;
    assert.match(aws.AGENT_ROLE_ARN, new RegExp(`:role/${param("AgentRoleName")}$`));
    assert.match(aws.HOOK_ROLE_ARN, new RegExp(`:role/${param("HookRoleName")}$`));
    assert.match(aws.TOPIC_ARN, new RegExp(`:${param("ReloadTopicName")}$`));
    assert.match(aws.STATUS_TOPIC_ARN, new RegExp(`:${param("StatusTopicName")}$`));
    assert.match(aws.STATUS_QUEUE_URL, new RegExp(`/${param("StatusQueueName")}$`));
    assert.match(aws.ROLLOUT_STATE, new RegExp(`^s3://[a-z0-9.-]+/${param("RolloutStateKey")}$`));
    for (const out of [
      "ReloadTopicArn",
      "StatusTopicArn",
      "StatusQueueUrl",
      "RolloutState",
      "AgentRoleArn",
      "HookRoleArn",
    ]) {
      assert.ok(template.Outputs[out], `output ${out}`);
    }
  });

  it("delivers status events to the status queue only from the status topic", () => {
    const policy = template.Resources.StatusQueuePolicy.Properties.PolicyDocument.Statement[0];
    assert.deepEqual(policy.Principal, { Service: "sns.amazonaws.com" });
    assert.deepEqual(policy.Action, ["sqs:SendMessage"]);
    assert.deepEqual(policy.Condition.ArnEquals["aws:SourceArn"], { Ref: "StatusTopic" });
    const subscription = template.Resources.StatusSubscription.Properties;
    assert.deepEqual(subscription.TopicArn, { Ref: "StatusTopic" });
    assert.equal(subscription.RawMessageDelivery, true);
  });
});
