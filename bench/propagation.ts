/**
 * Benchmark of the kubelet nudge (docs/propagation.md): from the Argo CD
 * sync (the ConfigMap changes in the API server) to every pod having applied
 * the new config, with the nudge and without it (`--no-nudge`), at 30 and
 * 300 pods, on the kubelet model of the local stack
 * (scripts/local/kubelet-model.ts: periodic sync 60 s + up to 50 % jitter per
 * pod at random phases, an immediate sync on a pod update).
 *
 * Real parts: the PostSync hook is the real `sfu-agent notify --wait
 * --expect-deployment` (in process), talking to the local pod API
 * (scripts/local/pod-api.ts) through @kubernetes/client-node, and SNS/SQS is
 * fauxqs. The lighter per-pod harness (so 300 pods fit in one process): a pod
 * is its kubelet model plus a stand-in agent that, when its kubelet syncs a
 * ConfigMap whose hash differs from its mounted one, "swaps the file" in
 * memory and publishes its `sfu-config.status` (applied, with the
 * propagation figures) to the status topic. Not modelled: the real agent's
 * file watch and push to the SFU (bench:agent: a few ms), and a kubelet whose
 * ConfigMap cache lags the API (`--cache-lag MS`: each pod's cache sees the
 * change up to that much later, uniform; a sync before it writes nothing
 * new, which is what re-nudges are for).
 *
 * Figures per case: sync -> applied p50/p99/max over the pods, the PostSync
 * hook's run time, and the Kubernetes API requests the hook made; once, the
 * time a hook process takes to load @kubernetes/client-node (paid once per
 * hook run, before publishing; kept out of the cases). Prints figures;
 * asserts nothing.
 *
 * Run: `npm run bench:propagation` (or `node bench/propagation.ts [--pods 30,300]
 * [--kubelet-sync 60s] [--cache-lag 0] [--skip-no-nudge]`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PublishCommand } from "@aws-sdk/client-sns";
import { runNotify } from "../agent/commands/notify.ts";
import { parseDuration } from "../agent/shared/cli-values.ts";
import { realTimers } from "../agent/shared/timers.ts";
import { loadConfigFile } from "../protocol/config-loader.ts";
import { createHookTopics, startFauxqs } from "../scripts/local/fauxqs.ts";
import { KubeletModel } from "../scripts/local/kubelet-model.ts";
import { startPodApi } from "../scripts/local/pod-api.ts";
import { K8S_DIR } from "../test/unit/k8s/manifests.ts";
import { emitFigures, type Figure } from "./figures.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "30,300" },
    "kubelet-sync": { type: "string", default: "60s" },
    "cache-lag": { type: "string", default: "0" },
    "skip-no-nudge": { type: "boolean", default: false },
  },
});
const POD_COUNTS = (values.pods ?? "").split(",").map(Number);
const SYNC_MS = parseDuration(values["kubelet-sync"] ?? "60s");
const CACHE_LAG_MS = Number(values["cache-lag"]);
if (SYNC_MS === null || !POD_COUNTS.every((n) => Number.isInteger(n) && n >= 1 && n <= 1000) || !(CACHE_LAG_MS >= 0))
  throw new Error("usage: node bench/propagation.ts [--pods 30,300] [--kubelet-sync 60s] [--cache-lag MS]");
const CONFIG = join(K8S_DIR, "base", "config.yaml");
const SFU = { "app.kubernetes.io/name": "sfu-server" };

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
};

const loaded = await loadConfigFile(CONFIG, { checkFiles: false });
if (!loaded.ok) throw new Error("the shipped config does not load");
const NEW_HASH = loaded.hash;
const OLD_HASH = `sha256:${"0".repeat(64)}`;

const fx = await startFauxqs();
const clients = fx.clients();
const dir = await mkdtemp(join(tmpdir(), "bench-propagation-"));
const figures: Record<string, Figure> = {};

interface CaseResult {
  pods: number;
  nudge: boolean;
  applied: number[];
  hookMs: number;
  requests: number;
  code: number;
}

async function runCase(pods: number, nudge: boolean, n: number): Promise<CaseResult> {
  const { sns } = clients;
  const { topicArn, statusTopicArn, statusQueueUrl } = await createHookTopics(clients, {
    reload: `reload-${n}`,
    status: `status-${n}`,
    statusQueue: `status-${n}`,
  });
  const api = await startPodApi({ namespace: "sfu" });
  const kubeconfig = join(dir, `kubeconfig-${n}`);
  await api.kubeconfig(kubeconfig);
  const names = Array.from({ length: pods }, (_, i) => `sfu-server-${String(i).padStart(3, "0")}`);
  api.deployments.set("sfu-server", { name: "sfu-server", replicas: pods, selector: SFU, template: {} });
  for (const name of names) api.pods.set(name, { name, labels: { ...SFU }, annotations: {} });

  // The API server's ConfigMap, and when each pod's kubelet cache sees it.
  let stored = OLD_HASH;
  let syncAt = 0;
  let issuedAt = 0;
  const cacheAt = new Map(names.map((p) => [p, 0]));
  const mounted = new Map(names.map((p) => [p, OLD_HASH]));
  const applied: number[] = [];
  const kubelet = new KubeletModel({
    timers: realTimers,
    options: { syncMs: SYNC_MS ?? 60_000 },
    sync: async (pod) => {
      const now = Date.now();
      const hash = now >= (cacheAt.get(pod) ?? 0) ? stored : OLD_HASH;
      if (mounted.get(pod) === hash) return;
      mounted.set(pod, hash);
      if (hash !== NEW_HASH) return;
      applied.push(now - syncAt);
      const seconds = Math.max(0, now - issuedAt) / 1000;
      const status = {
        type: "sfu-config.status",
        pod,
        revision: "bench",
        hash,
        version: 2,
        outcome: "applied",
        error: null,
        at: new Date(now).toISOString(),
        propagationSeconds: seconds,
        eventToAppliedSeconds: seconds,
      };
      await sns.send(new PublishCommand({ TopicArn: statusTopicArn, Message: JSON.stringify(status) }));
    },
  });
  api.onPodUpdate = (pod) => kubelet.podUpdated(pod);
  kubelet.start(names);
  // Let the pods run a moment, then the Argo CD sync: the ConfigMap changes now.
  await new Promise((r) => setTimeout(r, 500));
  syncAt = Date.now();
  stored = NEW_HASH;
  for (const p of names) cacheAt.set(p, syncAt + Math.random() * CACHE_LAG_MS);
  api.requests.length = 0;
  let out = "";
  const io = {
    stdout: (t: string) => {
      out += t;
    },
    stderr: (t: string) => {
      out += t;
    },
  };
  issuedAt = Date.now();
  const argv = [
    ...["--topic-arn", topicArn, "--config", CONFIG, "--revision", "bench"],
    ...["--expect-deployment", "sfu/sfu-server", "--wait", "--status-queue-url", statusQueueUrl, "--timeout", "300s"],
    ...(nudge ? [] : ["--no-nudge"]),
  ];
  const t0 = performance.now();
  const code = await runNotify(argv, io, { env: { KUBECONFIG: kubeconfig }, clients });
  const hookMs = performance.now() - t0;
  const requests = api.requests.length;
  kubelet.stop();
  await api.stop();
  if (code !== 0) process.stderr.write(`hook exited ${code}:\n${out}\n`);
  const summary = out
    .split("\n")
    .filter((l) => l.startsWith("event to") || l.startsWith("nudged"))
    .join("\n    ");
  process.stdout.write(`  hook summary:\n    ${summary}\n`);
  return { pods, nudge, applied, hookMs, requests, code };
}

// A real hook process loads the client once per run; load it here once, timed, so every case compares alike.
const loadStart = performance.now();
await import("../agent/hook/deployment-hook.ts");
const loadMs = performance.now() - loadStart;
figures.kube_client_load_ms = { value: loadMs, unit: "ms", better: "lower" };
process.stdout.write(
  `@kubernetes/client-node loaded in ${loadMs.toFixed(0)} ms (once per hook run, not in the cases)\n`,
);
process.stdout.write(
  `bench:propagation: kubelet sync ${SYNC_MS} ms + up to 50% jitter, cache lag up to ${CACHE_LAG_MS} ms\n`,
);
let n = 0;
try {
  for (const pods of POD_COUNTS) {
    for (const nudge of values["skip-no-nudge"] ? [true] : [true, false]) {
      const r = await runCase(pods, nudge, ++n);
      const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
      const [p50, p99, max] = [quantile(r.applied, 0.5), quantile(r.applied, 0.99), Math.max(...r.applied)];
      process.stdout.write(
        `${pods} pods, ${nudge ? "nudge" : "no nudge"}: sync -> applied p50 ${s(p50)} p99 ${s(p99)} max ${s(max)} ` +
          `(${r.applied.length}/${pods} pods); PostSync hook ran ${s(r.hookMs)}, ${r.requests} Kubernetes API requests ` +
          `(exit ${r.code})\n`,
      );
      const key = `${pods}_pods_${nudge ? "nudge" : "no_nudge"}`;
      figures[`${key}_applied_p50_s`] = { value: p50 / 1000, unit: "s", better: "lower" };
      figures[`${key}_applied_p99_s`] = { value: p99 / 1000, unit: "s", better: "lower" };
      figures[`${key}_applied_max_s`] = { value: max / 1000, unit: "s", better: "lower" };
      figures[`${key}_hook_s`] = { value: r.hookMs / 1000, unit: "s", better: "lower" };
      figures[`${key}_api_requests`] = { value: r.requests, unit: "requests", better: "lower" };
    }
  }
} finally {
  clients.destroy();
  await fx.stop();
  await rm(dir, { recursive: true, force: true });
}
emitFigures("propagation", figures);
