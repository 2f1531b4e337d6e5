/**
 * The kubelet nudge end to end on the hook's side: `sfu-agent notify`
 * against the local pod API (scripts/local/pod-api.ts, reached through
 * `@kubernetes/client-node` with a kubeconfig, as kubectl would) and a real
 * SNS/SQS (fauxqs). Each pod's "kubelet and agent" is scripted here: when the
 * pod's annotation changes (a pod update, on which a real kubelet syncs the
 * pod), it reports the hash on the status queue, or does not (a kubelet whose
 * ConfigMap cache was stale), or reports later (the periodic sync). The
 * agent's side of the figures is in test/unit/queue/settlement.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { CreateTopicCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { runNotify } from "../../../agent/commands/notify.ts";
import { DeploymentHook } from "../../../agent/hook/deployment-hook.ts";
import { NUDGE_ANNOTATION } from "../../../agent/hook/pod-nudger.ts";
import { realTimers } from "../../../agent/shared/timers.ts";
import { loadConfigFile } from "../../../protocol/config-loader.ts";
import { type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { type PodApi, startPodApi } from "../../../scripts/local/pod-api.ts";
import { captureRun } from "../../helpers/cli-run.ts";
import { statusReport } from "../../helpers/fleet-sim.ts";
import { K8S_DIR } from "../../unit/k8s/manifests.ts";

const CONFIG = join(K8S_DIR, "base", "config.yaml");
const SFU = { "app.kubernetes.io/name": "sfu-server" };
const OTHER = { "app.kubernetes.io/name": "other" };
const TEMPLATE = { metadata: { labels: SFU }, spec: { containers: [{ name: "sfu", image: "sfu:1" }] } };
/** Short re-nudge period and bound so the tests take seconds. */
const NUDGE = { renudgeAfterMs: 300, maxNudges: 3 };

let fx: FauxqsHandle;
let clients: AwsClients;
let api: PodApi;
let dir = "";
let env: Record<string, string> = {};
let topicArn = "";
let hash = "";
let queues = 0;

/** How each pod's kubelet+agent answers the n-th nudge: report now, or not. */
let behaviour: (pod: string, n: number) => boolean = () => true;
const timers: NodeJS.Timeout[] = [];

before(async () => {
  const loaded = await loadConfigFile(CONFIG, { checkFiles: false });
  assert.ok(loaded.ok);
  hash = loaded.hash;
  fx = await startFauxqs();
  clients = fx.clients();
  topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn ?? "";
  dir = await mkdtemp(join(tmpdir(), "nudge-"));
  api = await startPodApi({ namespace: "sfu" });
  env = { KUBECONFIG: join(dir, "config") };
  await api.kubeconfig(env.KUBECONFIG ?? "");
});

after(async () => {
  for (const t of timers) clearTimeout(t);
  await api?.stop();
  clients?.destroy();
  await fx?.stop();
  await rm(dir, { recursive: true, force: true });
});

let statusQueueUrl = "";
beforeEach(async () => {
  // A queue per test: no report of an earlier test is seen.
  statusQueueUrl = (await clients.sqs.send(new CreateQueueCommand({ QueueName: `status-${++queues}` }))).QueueUrl ?? "";
  api.requests.length = 0;
  api.deny.clear();
  api.gone.clear();
  api.pods.clear();
  api.deployments.clear();
  api.deployments.set("sfu-server", { name: "sfu-server", replicas: 3, selector: SFU, template: TEMPLATE });
  api.deployments.set("other", { name: "other", replicas: 1, selector: OTHER, template: {} });
  for (const name of ["sfu-server-a", "sfu-server-b", "sfu-server-c"])
    api.pods.set(name, { name, labels: { ...SFU }, annotations: { "keep.me/too": "yes" } });
  api.pods.set("other-x", { name: "other-x", labels: { ...OTHER }, annotations: {} });
  behaviour = () => true;
  const count = new Map<string, number>();
  api.onPodUpdate = (pod) => {
    const n = (count.get(pod) ?? 0) + 1;
    count.set(pod, n);
    if (behaviour(pod, n)) void report(pod, 0.2);
  };
});

async function report(pod: string, seconds: number): Promise<void> {
  const event = statusReport({
    pod,
    hash,
    version: 2,
    propagationSeconds: seconds,
    eventToAppliedSeconds: seconds + 0.05,
  });
  await clients.sqs.send(new SendMessageCommand({ QueueUrl: statusQueueUrl, MessageBody: JSON.stringify(event) }));
}

/** The periodic sync of `pod`, `ms` from now (it reports whatever the nudges did). */
function periodicSync(pod: string, ms: number, seconds: number): void {
  timers.push(setTimeout(() => void report(pod, seconds), ms));
}

async function notify(extra: string[], wait = true) {
  const argv = ["--topic-arn", topicArn, "--config", CONFIG, "--expect-deployment", "sfu/sfu-server", ...extra];
  if (wait) argv.push("--wait", "--status-queue-url", statusQueueUrl, "--timeout", "8s");
  return captureRun((io) => runNotify(argv, io, { env, clients, hook: { nudge: NUDGE } }));
}

const patches = () => api.requests.filter((r) => r.method === "PATCH");
const patchesOf = (pod: string) => patches().filter((r) => r.path === `/api/v1/namespaces/sfu/pods/${pod}`);

describe("the kubelet nudge (notify against the local pod API)", { timeout: 60_000 }, () => {
  it("annotates every pod of the Deployment once, with a merge patch of that one key, and prints the times", async () => {
    const r = await notify([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /nudged 3\/3 pods \(annotation sfu-config\.dev\/config-hash\)/);
    // The pods are found through the Deployment's spec.selector.
    const list = api.requests.find((q) => q.method === "GET" && q.path === "/api/v1/namespaces/sfu/pods");
    assert.equal(new URLSearchParams(list?.query).get("labelSelector"), "app.kubernetes.io/name=sfu-server");
    assert.deepEqual(
      patches()
        .map((p) => p.path)
        .sort(),
      [
        "/api/v1/namespaces/sfu/pods/sfu-server-a",
        "/api/v1/namespaces/sfu/pods/sfu-server-b",
        "/api/v1/namespaces/sfu/pods/sfu-server-c",
      ],
    );
    for (const p of patches()) {
      assert.equal(p.contentType, "application/merge-patch+json");
      assert.deepEqual(JSON.parse(p.body), { metadata: { annotations: { [NUDGE_ANNOTATION]: `${hash};n=1` } } });
    }
    for (const name of ["sfu-server-a", "sfu-server-b", "sfu-server-c"])
      assert.deepEqual(api.pods.get(name)?.annotations, { "keep.me/too": "yes", [NUDGE_ANNOTATION]: `${hash};n=1` });
    assert.deepEqual(api.pods.get("other-x")?.annotations, {}, "a pod of another Deployment is never touched");
    assert.deepEqual(api.deployments.get("sfu-server")?.template, TEMPLATE, "the pod template never changes");
    assert.ok(
      api.requests.every((q) => q.method === "GET" || q.method === "PATCH"),
      "no other verb than get, list and patch",
    );
    assert.match(r.stdout, /sfu-server-a\s+1\s+0\.20s\s+0\.25s/);
    assert.match(r.stdout, /event to file swap: p50 0\.20s p99 0\.20s max 0\.20s \(3 pods\)/);
    assert.match(r.stdout, /event to applied: p50 0\.25s p99 0\.25s max 0\.25s \(3 pods\)/);
  });

  it("re-nudges a pod that did not report with a new value, and stops after the bound", async () => {
    // b's kubelet synced before its cache had the ConfigMap the first time; c's never reports on a nudge.
    behaviour = (pod, n) => pod === "sfu-server-a" || (pod === "sfu-server-b" && n === 2);
    periodicSync("sfu-server-c", 2_500, 2.5);
    const r = await notify([]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(patchesOf("sfu-server-a").length, 1);
    assert.deepEqual(
      patchesOf("sfu-server-b").map((p) => JSON.parse(p.body).metadata.annotations[NUDGE_ANNOTATION]),
      [`${hash};n=1`, `${hash};n=2`],
    );
    assert.deepEqual(
      patchesOf("sfu-server-c").map((p) => JSON.parse(p.body).metadata.annotations[NUDGE_ANNOTATION]),
      [`${hash};n=1`, `${hash};n=2`, `${hash};n=3`],
      "three nudges at most, then the periodic sync",
    );
    assert.match(r.stdout, /sfu-server-c\s+3\s+2\.50s/);
    assert.match(r.stdout, /event to file swap: p50 0\.20s p99 2\.50s max 2\.50s \(3 pods\)/);
  });

  it("a pod that cannot be annotated (403, deleted) neither fails nor stalls the hook; the summary names it", async () => {
    api.deny.add("patch-pod:sfu-server-c");
    // b is deleted after the list (its patch is answered 404); its replacement d mounts the new config at start.
    api.gone.add("sfu-server-b");
    periodicSync("sfu-server-c", 1_000, 1.0);
    periodicSync("sfu-server-d", 600, 0.6);
    const r = await notify([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: sfu-server-c not nudged: .*HTTP 403: the hook's ServiceAccount needs "patch" on pods/,
    );
    assert.match(r.stderr, /warning: sfu-server-b not nudged: .*HTTP 404.*\(POD_NOT_FOUND\)/);
    assert.match(r.stdout, /sfu-server-c\s+0\s+1\.00s.*not nudged: API_FORBIDDEN/);
    assert.match(r.stdout, /sfu-server-b\s+0\s+-\s+-\s+not nudged: POD_NOT_FOUND/);
    assert.equal(patchesOf("sfu-server-b").length, 1, "a deleted pod is not nudged again");
    assert.match(r.stdout, /3\/3 pods applied/);
  });

  it("a Role without patch on pods: one refusal, no more patches, the hook still succeeds (periodic sync)", async () => {
    api.deny.add("patch-pods");
    for (const [i, pod] of ["sfu-server-a", "sfu-server-b", "sfu-server-c"].entries())
      periodicSync(pod, 300 + i * 100, 1);
    const r = await notify([]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: nudge off: .*needs "patch" on pods \(Role sfu-config-hook.*\(API_FORBIDDEN\); the pods get the file on the kubelet's periodic sync/,
    );
    assert.ok(patches().length <= 3, `${patches().length} patches`);
    const after = patches().length;
    await new Promise((r) => setTimeout(r, NUDGE.renudgeAfterMs * 2));
    assert.equal(patches().length, after, "no re-nudge after the refusal");
  });

  it("--no-nudge: only the Deployment is read; no list, no patch", async () => {
    for (const pod of ["sfu-server-a", "sfu-server-b", "sfu-server-c"]) periodicSync(pod, 200, 0.5);
    const r = await notify(["--no-nudge"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      api.requests.map((q) => `${q.method} ${q.path}`),
      ["GET /apis/apps/v1/namespaces/sfu/deployments/sfu-server"],
    );
    assert.doesNotMatch(r.stdout, /nudged/);
  });

  it("lists the pods in pages (limit and continue): 250 pods, three pages, every pod nudged", async () => {
    for (let i = 0; i < 247; i++) {
      const name = `sfu-server-p${String(i).padStart(3, "0")}`;
      api.pods.set(name, { name, labels: { ...SFU }, annotations: {} });
    }
    behaviour = () => false;
    const r = await notify([], false);
    assert.equal(r.code, 0, r.stderr);
    const lists = api.requests.filter((q) => q.method === "GET" && q.path === "/api/v1/namespaces/sfu/pods");
    assert.deepEqual(
      lists.map((q) => [new URLSearchParams(q.query).get("limit"), new URLSearchParams(q.query).get("continue")]),
      [
        ["100", null],
        ["100", "100"],
        ["100", "200"],
      ],
    );
    assert.equal(new Set(patches().map((p) => p.path)).size, 250);
    assert.match(r.stdout, /nudged 250\/250 pods/);
  });

  it("rollout's use: every pod (held ones too) nudged once per new hash, whatever the steps", async () => {
    const io = { stdout: () => {}, stderr: () => {} };
    const hook = await DeploymentHook.open("rollout", "sfu/sfu-server", env, io, { nudge: NUDGE });
    assert.ok(hook);
    // Each step of a rollout publishes the same hash again: one nudge per pod in all.
    for (let step = 0; step < 3; step++) await hook.nudge(hash, realTimers, 1);
    const other = `sha256:${"c".repeat(64)}`;
    await hook.nudge(other, realTimers, 1);
    await hook.finish();
    const values = (pod: string) =>
      patchesOf(pod).map((p) => JSON.parse(p.body).metadata.annotations[NUDGE_ANNOTATION]);
    for (const pod of ["sfu-server-a", "sfu-server-b", "sfu-server-c"])
      assert.deepEqual(values(pod), [`${hash};n=1`, `${other};n=1`], pod);
    assert.equal(hook.requests(), 1 + 2 * (1 + 3), "get the Deployment, then per hash one list and three patches");
  });

  it("without --wait: one nudge per pod and no re-nudge (nobody reports to the hook)", async () => {
    behaviour = () => false;
    const r = await notify([], false);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(patches().length, 3);
    await new Promise((r) => setTimeout(r, NUDGE.renudgeAfterMs * 2));
    assert.equal(patches().length, 3);
  });
});
