/**
 * The PostSync hook's pod count comes from the Deployment, not a constant:
 * `sfu-agent notify --wait --expect-deployment sfu/sfu-server` reads the
 * Deployment's ready replicas through the Kubernetes API (here a local HTTP
 * server answering as the API server does, reached through a kubeconfig as
 * kubectl would) and waits for that many pods, against a real SNS/SQS
 * (fauxqs). The manifests give the hook exactly what that needs: a Role with
 * `get` on that one Deployment and `list`/`patch` on pods (the kubelet
 * nudge), bound to the hook's ServiceAccount, and an API token on the hook's
 * pod only. The API's failure cases are in
 * test/integration/faults/kubernetes-api.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateTopicCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { runNotify } from "../../../agent/commands/notify.ts";
import { loadConfigFile } from "../../../protocol/config-loader.ts";
import { type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { captureRun } from "../../helpers/cli-run.ts";
import { statusReport } from "../../helpers/fleet-sim.ts";
import { findObject, K8S_DIR, type K8sObject, podSpec, renderK8s, validateWithModel } from "./manifests.ts";

const TOKEN = "hook-sa-token-for-tests";
const CONFIG = join(K8S_DIR, "base", "config.yaml");

/** What the fake API server answers for the Deployment: status and body. */
let answer: { status: number; body: string } = { status: 200, body: "" };
/** The requests it received (path and Authorization header). */
const seen: Array<{ path: string; auth: string | undefined }> = [];

/** A Deployment as the API server returns it. */
function deployment(replicas: number, ready: number | undefined): string {
  return JSON.stringify({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "sfu-server", namespace: "sfu", uid: "6f1c" },
    spec: { replicas, selector: { matchLabels: { "app.kubernetes.io/name": "sfu-server" } } },
    status: { observedGeneration: 4, replicas, updatedReplicas: replicas, readyReplicas: ready },
  });
}

let api: Server;
let kubeDir = "";
/** The notify command's environment: KUBECONFIG naming the fake server. */
let env: Record<string, string> = {};
let fx: FauxqsHandle;
let clients: AwsClients;
let topicArn = "";
let statusQueueUrl = "";

before(async () => {
  api = createServer((req: IncomingMessage, res) => {
    seen.push({ path: req.url ?? "", auth: req.headers.authorization });
    res.writeHead(answer.status, { "content-type": "application/json" });
    // The nudge lists the pods: none here (the nudge has its own tests).
    res.end(req.url?.startsWith("/api/v1/") ? '{"kind":"PodList","items":[]}' : answer.body);
  });
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
  const address = api.address();
  assert.ok(address && typeof address === "object");
  kubeDir = await mkdtemp(join(tmpdir(), "hook-kube-"));
  env = { KUBECONFIG: join(kubeDir, "config") };
  await writeFile(
    env.KUBECONFIG ?? "",
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        { name: "c", cluster: { server: `http://127.0.0.1:${address.port}`, "insecure-skip-tls-verify": true } },
      ],
      users: [{ name: "u", user: { token: TOKEN } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  fx = await startFauxqs();
  clients = fx.clients();
  topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn ?? "";
  statusQueueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: "sfu-hook-status" }))).QueueUrl ?? "";
});

after(async () => {
  api?.closeAllConnections();
  await new Promise<void>((resolve) => (api ? api.close(() => resolve()) : resolve()));
  clients?.destroy();
  await fx?.stop();
  await rm(kubeDir, { recursive: true, force: true });
});

describe("notify --wait --expect-deployment over fauxqs", { timeout: 60_000 }, () => {
  async function notify(argv: string[]) {
    return captureRun((io) => runNotify(argv, io, { env, clients }));
  }
  const argv = (timeout: string) => [
    "--topic-arn",
    topicArn,
    "--config",
    CONFIG,
    "--wait",
    "--expect-deployment",
    "sfu/sfu-server",
    "--status-queue-url",
    statusQueueUrl,
    "--timeout",
    timeout,
  ];
  async function reportApplied(pods: string[], hash: string) {
    for (const pod of pods) {
      const event = statusReport({ pod, hash, version: 4 });
      await clients.sqs.send(new SendMessageCommand({ QueueUrl: statusQueueUrl, MessageBody: JSON.stringify(event) }));
    }
  }

  it("waits for as many pods as the Deployment has ready: 2 ready, 2 applied, exit 0", async () => {
    const loaded = await loadConfigFile(CONFIG, { checkFiles: false });
    assert.ok(loaded.ok);
    answer = { status: 200, body: deployment(2, 2) };
    await reportApplied(["sfu-server-a", "sfu-server-b"], loaded.hash);
    const r = await notify(argv("20"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment sfu\/sfu-server: 2 ready of 2 desired; waiting for 2 pods/);
    assert.match(r.stdout, /2\/2 pods applied sha256:/);
    assert.ok(
      seen.every((s) => s.auth === `Bearer ${TOKEN}`),
      "every request carries the kubeconfig's token",
    );
  });

  it("follows a scale-up (e.g. an HPA): 5 ready now, 2 applied is not enough", async () => {
    const loaded = await loadConfigFile(CONFIG, { checkFiles: false });
    assert.ok(loaded.ok);
    answer = { status: 200, body: deployment(5, 5) };
    await reportApplied(["sfu-server-a", "sfu-server-b"], loaded.hash);
    const r = await notify(argv("2"));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /waiting for 5 pods/);
    assert.match(r.stderr, /timed out after 2s: 2\/5 pods applied/);
  });

  it("publishes nothing and exits 1 when the API refuses (no RBAC) or no pod is ready", async () => {
    answer = { status: 403, body: "{}" };
    const forbidden = await notify(argv("5"));
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /API_FORBIDDEN\); nothing published/);
    assert.doesNotMatch(forbidden.stdout, /published/);
    answer = { status: 200, body: deployment(3, 0) };
    const noneReady = await notify(argv("5"));
    assert.equal(noneReady.code, 1);
    assert.match(noneReady.stderr, /no ready pod to tell; nothing published/);
  });

  it("a Deployment scaled to 0 publishes and has nothing to wait for", async () => {
    answer = { status: 200, body: deployment(0, undefined) };
    const r = await notify(argv("5"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /published sha256:/);
    assert.match(r.stdout, /scaled to 0: no pod to wait for/);
  });

  it("usage errors exit 2", async () => {
    const both = await notify([...argv("5"), "--expect", "3"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exclusive/);
    const bad = await notify(argv("5").map((a) => (a === "sfu/sfu-server" ? "sfu-server" : a)));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--expect-deployment: "sfu-server" is not NAMESPACE\/NAME/);
    const noWait = await notify(["--topic-arn", topicArn, "--config", CONFIG, "--expect", "3"]);
    assert.equal(noWait.code, 2);
  });
});

describe("the manifests give the hook exactly that access", () => {
  let base: K8sObject[];
  let hook: K8sObject[];
  before(async () => {
    [base, hook] = await Promise.all([renderK8s("base"), renderK8s("hook")]);
  });

  it("a Role with `get` on the Deployment the hook names and `list`/`patch` on pods, bound to the hook's ServiceAccount", async () => {
    const job = findObject(hook, "Job", "sfu-config-notify");
    const spec = podSpec(job);
    const arg = (spec.containers[0].args as string[]).find((a) => a.startsWith("--expect-deployment="));
    assert.ok(arg, "the hook uses --expect-deployment");
    const [namespace, name] = arg.slice("--expect-deployment=".length).split("/");
    const target = findObject(base, "Deployment", name!);
    assert.equal(target.metadata.namespace, namespace);
    const role = findObject(base, "Role", "sfu-config-hook");
    assert.equal(role.metadata.namespace, namespace);
    // Exactly what the hook's requests need (test/integration/hook/nudge.test.ts derives it from them).
    assert.deepEqual(role.rules, [
      { apiGroups: ["apps"], resources: ["deployments"], resourceNames: [name], verbs: ["get"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["list", "patch"] },
    ]);
    const binding = findObject(base, "RoleBinding", "sfu-config-hook");
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: role.metadata.name,
    });
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: spec.serviceAccountName, namespace }]);
    for (const o of [role, binding]) await validateWithModel(o);
    // No ClusterRole: nothing outside the namespace.
    assert.equal(base.filter((o) => o.kind.startsWith("Cluster")).length, 0);
  });

  it("only the hook's pod mounts a Kubernetes API token", () => {
    assert.equal(podSpec(findObject(hook, "Job", "sfu-config-notify")).automountServiceAccountToken, true);
    assert.equal(podSpec(findObject(base, "Deployment", "sfu-server")).automountServiceAccountToken, false);
    for (const sa of base.filter((o) => o.kind === "ServiceAccount"))
      assert.equal(sa.automountServiceAccountToken, false);
  });
});
