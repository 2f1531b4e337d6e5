/**
 * Fault suite: the Kubernetes API as a remote dependency of the PostSync hook
 * (`sfu-agent notify --expect-deployment`). The local pod API
 * (scripts/local/pod-api.ts) sits behind the fault proxy
 * (test/helpers/fault-proxy.ts), reached through `@kubernetes/client-node`
 * with a kubeconfig, and SNS/SQS is fauxqs. Two phases fail differently:
 * - reading the Deployment (before publishing): any fault means nothing is
 *   published, exit 1, with an error naming the cause (fail closed: the hook
 *   never guesses how many pods to wait for);
 * - the nudge (after publishing): any fault on listing or patching pods is a
 *   warning; the hook neither fails nor stalls, and the pods converge on the
 *   kubelet's periodic sync.
 * Every answer is bounded in bytes and time (client timeout 600 ms here).
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
import { loadConfigFile } from "../../../protocol/config-loader.ts";
import { type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { type PodApi, startPodApi } from "../../../scripts/local/pod-api.ts";
import { captureRun } from "../../helpers/cli-run.ts";
import { type Fault, type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { statusReport } from "../../helpers/fleet-sim.ts";
import { K8S_DIR } from "../../unit/k8s/manifests.ts";

const CONFIG = join(K8S_DIR, "base", "config.yaml");
const SFU = { "app.kubernetes.io/name": "sfu-server" };
const TIMEOUT_MS = 600;
/** The hook's own --timeout: a fault must end the run well before it (a stall would run it out). */
const RUN_TIMEOUT_MS = 10_000;
const PODS = ["sfu-server-a", "sfu-server-b"];

let fx: FauxqsHandle;
let clients: AwsClients;
let api: PodApi;
let proxy: FaultProxy;
let dir = "";
let env: Record<string, string> = {};
let topicArn = "";
let hash = "";
let statusQueueUrl = "";
let queues = 0;
const timers: NodeJS.Timeout[] = [];

before(async () => {
  const loaded = await loadConfigFile(CONFIG, { checkFiles: false });
  assert.ok(loaded.ok);
  hash = loaded.hash;
  fx = await startFauxqs();
  clients = fx.clients();
  topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-config-reload" }))).TopicArn ?? "";
  api = await startPodApi({ namespace: "sfu" });
  proxy = await startFaultProxy(api.url);
  dir = await mkdtemp(join(tmpdir(), "kube-faults-"));
  env = { KUBECONFIG: join(dir, "config") };
  // The kubeconfig names the proxy, not the API.
  const direct = api.url;
  api.url = proxy.url;
  await api.kubeconfig(env.KUBECONFIG ?? "");
  api.url = direct;
  api.deployments.set("sfu-server", { name: "sfu-server", replicas: 2, selector: SFU, template: {} });
  for (const name of PODS) api.pods.set(name, { name, labels: { ...SFU }, annotations: {} });
});

after(async () => {
  for (const t of timers) clearTimeout(t);
  await proxy?.stop();
  await api?.stop();
  clients?.destroy();
  await fx?.stop();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  statusQueueUrl =
    (await clients.sqs.send(new CreateQueueCommand({ QueueName: `kstatus-${++queues}` }))).QueueUrl ?? "";
  proxy.setRule(null);
  api.requests.length = 0;
});

/** Every pod reports `hash` applied `ms` from now: the kubelet's periodic sync, nudged or not. */
function periodicSync(ms: number): void {
  for (const pod of PODS)
    timers.push(
      setTimeout(() => {
        const event = statusReport({ pod, hash, version: 2 });
        void clients.sqs.send(new SendMessageCommand({ QueueUrl: statusQueueUrl, MessageBody: JSON.stringify(event) }));
      }, ms),
    );
}

async function notify(): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const argv = [
    "--topic-arn",
    topicArn,
    "--config",
    CONFIG,
    "--expect-deployment",
    "sfu/sfu-server",
    "--wait",
    "--status-queue-url",
    statusQueueUrl,
    "--timeout",
    `${RUN_TIMEOUT_MS / 1000}s`,
  ];
  const t0 = performance.now();
  const r = await captureRun((io) =>
    runNotify(argv, io, {
      env,
      clients,
      hook: {
        client: { timeoutMs: TIMEOUT_MS, maxBodyBytes: 256 * 1024 },
        nudge: { renudgeAfterMs: 200, maxNudges: 2 },
      },
    }),
  );
  return { ...r, ms: performance.now() - t0 };
}

const onDeployment = (fault: Fault) => (r: { path: string }) => (r.path.includes("/deployments/") ? fault : null);
const onPods = (fault: Fault) => (r: { path: string }) => (r.path.startsWith("/api/v1/") ? fault : null);

describe("fault suite: the Kubernetes API", { timeout: 120_000 }, () => {
  const deploymentCases: Array<[string, Fault, string, RegExp]> = [
    ["down", { kind: "down" }, "API_UNREACHABLE", /unreachable/],
    ["hanging", { kind: "hang" }, "API_TIMEOUT", /no complete answer from http:\/\/127\.0\.0\.1:\d+ within 600 ms/],
    ["trickling past the timeout", { kind: "trickle", chunkBytes: 8, intervalMs: 100 }, "API_TIMEOUT", /600 ms/],
    [
      "403",
      { kind: "status", status: 403, body: '{"kind":"Status","message":"forbidden: no get","code":403}' },
      "API_FORBIDDEN",
      /HTTP 403: the hook's ServiceAccount needs "get" on deployments\/sfu-server \(Role sfu-config-hook, k8s\/base\/hook-rbac\.yaml\): forbidden: no get/,
    ],
    [
      "404",
      { kind: "status", status: 404, body: '{"kind":"Status","message":"not found","code":404}' },
      "DEPLOYMENT_NOT_FOUND",
      /HTTP 404/,
    ],
    [
      "500 with a 50 MB body",
      { kind: "status", status: 500, bodyBytes: 50 * 1024 * 1024 },
      "API_ERROR",
      /HTTP 500 body: exceeds 262144 bytes/,
    ],
    ["garbage", { kind: "garbage", bodyBytes: 4096 }, "BAD_RESPONSE", /not UTF-8 text/],
    [
      "JSON nested past the limits",
      {
        kind: "status",
        status: 200,
        body: `${"[".repeat(5000)}${"]".repeat(5000)}`,
        headers: { "content-type": "application/json" },
      },
      "BAD_RESPONSE",
      /nested more than 64 levels deep/,
    ],
  ];
  for (const [name, fault, code, message] of deploymentCases) {
    it(`reading the Deployment, ${name}: ${code}, nothing published, exit 1`, async () => {
      proxy.setRule(onDeployment(fault));
      const r = await notify();
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`--expect-deployment: .*\\(${code}\\); nothing published`));
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stdout, /published/);
      assert.ok(r.stderr.length < 1_000, `the error is capped (${r.stderr.length} chars)`);
      assert.ok(r.ms < RUN_TIMEOUT_MS, `bounded in time: ${Math.round(r.ms)} ms`);
    });
  }

  it("reading the Deployment, slow but within the timeout: it works", async () => {
    proxy.setRule(onDeployment({ kind: "slow", delayMs: 200 }));
    periodicSync(100);
    const r = await notify();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2\/2 pods applied/);
  });

  const nudgeCases: Array<[string, Fault, RegExp]> = [
    ["down", { kind: "down" }, /API_UNREACHABLE/],
    ["hanging", { kind: "hang" }, /API_TIMEOUT/],
    ["403", { kind: "status", status: 403, body: '{"kind":"Status","message":"no","code":403}' }, /API_FORBIDDEN/],
    ["500 with a 50 MB body", { kind: "status", status: 500, bodyBytes: 50 * 1024 * 1024 }, /API_ERROR/],
    ["garbage", { kind: "garbage", bodyBytes: 4096 }, /BAD_RESPONSE/],
  ];
  for (const [name, fault, code] of nudgeCases) {
    it(`the nudge, listing pods ${name}: a warning, the hook succeeds on the periodic sync`, async () => {
      proxy.setRule(onPods(fault));
      periodicSync(1_500);
      const r = await notify();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /warning: nudge off: /);
      assert.match(r.stderr, code);
      assert.match(r.stderr, /the pods get the file on the kubelet's periodic sync/);
      assert.match(r.stdout, /2\/2 pods applied/);
    });
  }

  it("the nudge, patches hanging: each patch gives up at the timeout, the hook is not stalled", async () => {
    proxy.setRule((r) => (r.method === "PATCH" ? { kind: "hang" } : null));
    periodicSync(1_000);
    const r = await notify();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /sfu-server-a not nudged: .*\(API_TIMEOUT\)/);
    assert.match(r.stdout, /sfu-server-a\s+0\s.*not nudged: API_TIMEOUT/);
    assert.ok(r.ms < RUN_TIMEOUT_MS, `not stalled: ${Math.round(r.ms)} ms`);
  });
});
