/**
 * The whole sfu-config loop on one machine, no AWS account and no cluster:
 * an embedded SNS+SQS (fauxqs, in-process), N simulated pods (each an agent in
 * per-pod queue mode plus its SFU, as child processes on their own loopback
 * ports) and a local "kubelet" that mirrors the source config into every pod's
 * mount directory with the AtomicWriter's `..data` swap.
 *
 * Timing follows production: when the source file changes, the PostSync hook's
 * `sfu-agent notify` runs at once (Argo CD fires it right after the sync) and
 * the kubelet swaps the mounted files later, so agents see the event before
 * the file, as they do in EKS. Two kubelet stand-ins:
 * - `kubeletDelayMs`: every pod is swapped that long after the edit (fast demos);
 * - `kubeletSyncMs` (`npm start`'s default, docs/propagation.md): the kubelet
 *   model (kubelet-model.ts) syncs each pod on its own jittered period and at
 *   once when the pod's annotations change, read from a local pod API
 *   (pod-api.ts); the hook runs with `--expect-deployment sfu/sfu-server`
 *   through @kubernetes/client-node and nudges every pod, as on a cluster.
 */
import { type FSWatcher, watch as fsWatch } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { createS3Client } from "../../agent/aws/aws-clients.ts";
import { realTimers } from "../../agent/shared/timers.ts";
import { AtomicWriter } from "./atomic-writer.ts";
import { createHookTopics, FAUXQS_CREDENTIALS, FAUXQS_REGION, startFauxqs } from "./fauxqs.ts";
import { KubeletModel } from "./kubelet-model.ts";
import { type PodApi, startPodApi } from "./pod-api.ts";
import { AGENT_CLI, agentRunArgs, freePort, type NodeProcess, ProcessGroup, SFU_CLI } from "./processes.ts";

const ROOT = resolve(import.meta.dirname, "..", "..");
const REGION = FAUXQS_REGION;
/** Static credentials fauxqs accepts; never real ones. */
const LOCAL_AWS_ENV = { AWS_ACCESS_KEY_ID: "local", AWS_SECRET_ACCESS_KEY: "local", AWS_REGION: REGION };

/** Options of {@link startLocalStack}; defaults in {@link LOCAL_STACK_DEFAULTS}. */
export interface LocalStackOptions {
  /** Number of simulated pods (agent + SFU). */
  pods: number;
  /** Delay between a source edit and the kubelet's swap in every pod (unless `kubeletSyncMs`). */
  kubeletDelayMs: number;
  /**
   * The kubelet model instead of the fixed delay: each pod's periodic sync
   * period (60 s on a cluster, plus up to 50 % jitter), a local pod API, and
   * the hook's nudge. Secret edits still swap after `kubeletDelayMs`.
   */
  kubeletSyncMs?: number;
  /** The source config file (what Git holds). */
  configFile: string;
  /** Called with progress lines (defaults to nothing). */
  onEvent?: (line: string) => void;
  /** Agent `--propagation-timeout` (must exceed kubeletDelayMs). */
  propagationTimeout?: string;
  /** Agent `--log-level`. */
  logLevel?: string;
  /**
   * A file standing in for the TURN Secret: mounted in every pod as
   * `secrets/turn-credential`, as the Deployment's projected volume mounts
   * Secret `sfu-turn` (mode 0440, swapped with the config). Agents and SFUs
   * run in their pod's directory, so a config names it
   * `credentialFile: etc-sfu/secrets/turn-credential`.
   */
  turnCredentialFile?: string;
  /**
   * A file standing in for a TURN REST shared secret: mounted in every pod as
   * `secrets/turn-auth-secret` (a config names it `authSecretFile:
   * etc-sfu/secrets/turn-auth-secret`, schemaVersion 2). Edits to it are
   * swapped into the pods like config edits (after `kubeletDelayMs`), so the
   * agents see a rotation and ask their SFUs to reload their secrets.
   */
  turnAuthSecretFile?: string;
  /**
   * Called with the previous and the new content of `turnAuthSecretFile`
   * when it changed, before the kubelet swap is scheduled (the TURN server
   * must accept the new secret before any SFU hands out credentials from
   * it). Never log the arguments.
   */
  onTurnAuthSecretChange?: (previous: string, next: string) => Promise<void>;
  /**
   * Progressive rollout: this policy file is mounted as `rollout.yaml` in
   * every pod, the agents read the rollout state from the embedded S3, and
   * the hook runs `sfu-agent rollout` (waiting for every pod) instead of
   * `notify`.
   */
  rolloutPolicyFile?: string;
  /** The agents' `--health-report-interval` in rollout mode (default 2s). */
  healthReportInterval?: string;
  /**
   * The admission webhook (`npm start -- --admission`, admission-gate.ts):
   * asked about the ConfigMap's data at start and on every source edit
   * before the hook and the kubelet; a refused edit goes no further, and the
   * kubelet keeps mounting the last admitted config.
   */
  admit?: (data: Record<string, string>) => Promise<{ allowed: boolean; message: string; warnings: string[] }>;
}

/** Bucket and key of the rollout state in the embedded S3. */
export const LOCAL_ROLLOUT_STATE = "s3://sfu-config-local/rollout-state.json";

/** One run of the PostSync hook (notify, or rollout with a policy). */
export interface HookRun {
  revision: string;
  /** Exit code (or signal name). */
  code: number | string;
  /** Its log: stdout and stderr. */
  log: string;
}

/**
 * Every pod's secrets directory, relative to the pod's directory (agents and
 * SFUs run there): where the kubelet stand-in mounts the TURN Secret items.
 * Both binaries get it through their environment (SFU_AGENT_SECRETS_DIR,
 * SFU_SECRETS_DIR), and so does `notify`, whose paths resolve the same way.
 */
export const LOCAL_SECRETS_DIR = "etc-sfu/secrets";

/** Mode of the mounted files: the Deployment's projected volume `defaultMode: 0440`. */
export const LOCAL_VOLUME_MODE = 0o440;

export const LOCAL_STACK_DEFAULTS = {
  pods: 2,
  kubeletDelayMs: 2000,
  configFile: join(ROOT, "k8s", "base", "config.yaml"),
} as const;

/** One simulated pod. */
export interface LocalPod {
  name: string;
  /** The pod's ConfigMap mount directory (kubelet layout). */
  configDir: string;
  /** Agent HTTP base URL (/status, /metrics, ...). */
  agentUrl: string;
  /** Agent push WebSocket URL the SFU dials. */
  agentWs: string;
  /** SFU base URL (demo page, /ws, /status). */
  sfuUrl: string;
  agent: NodeProcess;
  sfu: NodeProcess;
  /** The pod's simulated kubelet. */
  writer: AtomicWriter;
}

/** A running local stack. */
export interface LocalStack {
  pods: LocalPod[];
  topicArn: string;
  statusQueueUrl: string;
  endpoint: string;
  workDir: string;
  /** Mirrors the current source file into every pod now (skips the delay) and notifies. */
  syncNow(): Promise<void>;
  /** With `kubeletSyncMs`: the local pod API the hook talks to. */
  podApi: PodApi | null;
  /** The latest hook run (started by a source change or `syncNow`), null before the first. */
  lastHook(): Promise<HookRun> | null;
  /** Stops every process, fauxqs, and removes the temporary directory. */
  stop(): Promise<void>;
}

/** Starts the local stack. The caller must call `stop()`. */
export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const log = opts.onEvent ?? (() => {});
  if (!Number.isInteger(opts.pods) || opts.pods < 1 || opts.pods > 50) throw new Error("pods must be 1..50");
  const workDir = await mkdtemp(join(tmpdir(), "sfu-config-local-"));
  const fauxqs = await startFauxqs();
  const endpoint = fauxqs.endpoint;
  const { sns, sqs, destroy: destroyAwsClients } = fauxqs.clients();
  const { topicArn, statusTopicArn, statusQueueUrl } = await createHookTopics(
    { sns, sqs },
    { reload: "sfu-config-reload", status: "sfu-config-status", statusQueue: "sfu-config-status-local" },
  );
  if (opts.rolloutPolicyFile) {
    const s3 = createS3Client({
      endpointUrl: endpoint,
      region: REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    });
    await s3.send(new CreateBucketCommand({ Bucket: "sfu-config-local" }));
    s3.destroy();
  }
  // The kubelet model's pod API, and the kubeconfig the hook reaches it with (as kubectl would).
  const podApi = opts.kubeletSyncMs === undefined ? null : await startPodApi({ namespace: "sfu" });
  const kubeconfig = join(workDir, "kubeconfig");
  await podApi?.kubeconfig(kubeconfig);
  const procs = new ProcessGroup(workDir, {
    env: {
      ...process.env,
      ...(podApi ? { KUBECONFIG: kubeconfig } : {}),
      ...LOCAL_AWS_ENV,
      AWS_ENDPOINT_URL: endpoint,
      SFU_AGENT_SECRETS_DIR: LOCAL_SECRETS_DIR,
      SFU_SECRETS_DIR: LOCAL_SECRETS_DIR,
    },
  });
  let revision = 0;
  /** With `admit`: the last config the webhook admitted (what the API server stored), which the kubelet mounts. */
  let admitted: Buffer | null = null;
  const admit = async (rev: string, content: string): Promise<boolean> => {
    if (!opts.admit) return true;
    const data: Record<string, string> = { "config.yaml": content };
    if (opts.rolloutPolicyFile) data["rollout.yaml"] = await readFile(opts.rolloutPolicyFile, "utf8");
    const verdict = await opts.admit(data);
    for (const w of verdict.warnings) log(`admission: warning: ${w}`);
    if (!verdict.allowed) {
      const lines = verdict.message.split("\n").map((l) => `  ${l}`);
      log(
        `admission: ${rev} refused at admission; nothing stored, no hook run, the kubelet writes nothing:\n${lines.join("\n")}`,
      );
      return false;
    }
    admitted = Buffer.from(content);
    log(`admission: ${rev} admitted`);
    return true;
  };
  /** What the kubelet mounts: the ConfigMap key and, when given, the TURN Secret item. */
  const payload = async (): Promise<Record<string, Uint8Array>> => ({
    "config.yaml": admitted ?? (await readFile(opts.configFile)),
    ...(opts.turnCredentialFile ? { "secrets/turn-credential": await readFile(opts.turnCredentialFile) } : {}),
    ...(opts.turnAuthSecretFile ? { "secrets/turn-auth-secret": await readFile(opts.turnAuthSecretFile) } : {}),
    ...(opts.rolloutPolicyFile ? { "rollout.yaml": await readFile(opts.rolloutPolicyFile) } : {}),
  });
  const mirror = async () => {
    const files = await payload();
    await Promise.all(pods.map((p) => p.writer.write(files, { defaultMode: LOCAL_VOLUME_MODE })));
    stored = files;
    for (const p of pods) written.set(p.name, files);
  };
  /** With the kubelet model: the ConfigMap (and Secret items) the API server holds, and what each pod has. */
  let stored: Record<string, Uint8Array> | null = null;
  const written = new Map<string, Record<string, Uint8Array>>();
  const kubelet =
    opts.kubeletSyncMs === undefined
      ? null
      : new KubeletModel({
          timers: realTimers,
          options: { syncMs: opts.kubeletSyncMs },
          sync: async (name, cause) => {
            const pod = pods.find((p) => p.name === name);
            const files = stored;
            if (!pod || files === null || written.get(name) === files) return;
            await pod.writer.write(files, { defaultMode: LOCAL_VOLUME_MODE });
            written.set(name, files);
            log(
              `kubelet: swapped ..data in ${name} (${cause === "pod-update" ? "pod annotated: synced at once" : "periodic sync"})`,
            );
          },
        });
  // The hook finds the pods through the Deployment's selector, as on a cluster.
  const deploymentArgs = podApi ? ["--expect-deployment", "sfu/sfu-server"] : [];
  let lastHook: Promise<HookRun> | null = null;
  const notify = (rev: string): Promise<HookRun> => {
    const run = opts.rolloutPolicyFile ? rolloutHook(rev, opts.rolloutPolicyFile) : notifyHook(rev);
    lastHook = run;
    return run;
  };
  const notifyHook = async (rev: string): Promise<HookRun> => {
    const child = procs.spawn(`notify-${rev}`, [
      AGENT_CLI,
      "notify",
      "--topic-arn",
      topicArn,
      "--config",
      opts.configFile,
      "--revision",
      rev,
      "--config-map",
      "sfu/sfu-config",
      "--endpoint-url",
      endpoint,
      "--region",
      REGION,
      ...deploymentArgs,
      ...(podApi ? ["--wait", "--status-queue-url", statusQueueUrl, "--timeout", "300s"] : []),
    ]);
    const code = await child.exited;
    if (podApi) {
      // The hook's propagation summary: per-pod nudges and times.
      const text = await readFile(child.logPath, "utf8").catch(() => "");
      for (const line of text.split("\n").filter((l) => /^(nudged|event to)/.test(l))) log(`hook: ${line}`);
    }
    log(
      code === 0
        ? `notify: published revision ${rev}`
        : `notify: revision ${rev} not published (exit ${code}; see ${workDir}/notify-${rev}.log)`,
    );
    return { revision: rev, code, log: await readFile(child.logPath, "utf8").catch(() => "") };
  };
  // The PostSync hook with a policy: the rollout driver, waiting for every pod.
  const rolloutHook = async (rev: string, policyFile: string): Promise<HookRun> => {
    const child = procs.spawn(`rollout-${rev}`, [
      AGENT_CLI,
      "rollout",
      ...["--topic-arn", topicArn, "--config", opts.configFile, "--policy", policyFile],
      ...["--rollout-state", LOCAL_ROLLOUT_STATE, "--status-queue-url", statusQueueUrl],
      ...["--status-topic-arn", statusTopicArn, "--timeout", "300"],
      ...(podApi ? deploymentArgs : ["--expect", String(pods.length)]),
      ...["--revision", rev, "--config-map", "sfu/sfu-config", "--endpoint-url", endpoint, "--region", REGION],
    ]);
    log(`hook: sfu-agent rollout of revision ${rev} started (log: ${child.logPath})`);
    const code = await child.exited;
    const text = await readFile(child.logPath, "utf8").catch(() => "");
    const last = text.trim().split("\n").at(-1) ?? "";
    log(`hook: rollout of revision ${rev} exited ${code}: ${last}`);
    return { revision: rev, code, log: text };
  };

  const pods: LocalPod[] = [];
  // Declared before the start-up below: its failure path stops everything, timers included.
  let timer: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  // Declared before the start: stopAll() (a failed start calls it) clears it.
  let secretDebounce: NodeJS.Timeout | undefined;
  try {
    if (!(await admit("the initial config", await readFile(opts.configFile, "utf8")))) {
      throw new Error(`${opts.configFile} is refused at admission (see above)`);
    }
    for (let i = 0; i < opts.pods; i++) {
      const name = `sfu-local-${i}`;
      const configDir = join(workDir, name, "etc-sfu");
      await mkdir(configDir, { recursive: true });
      const writer = new AtomicWriter(configDir);
      await writer.write(await payload(), { defaultMode: LOCAL_VOLUME_MODE });
      const podDir = join(workDir, name);
      const [listen, http, sfuPort] = [await freePort(), await freePort(), await freePort()];
      const agent = procs.spawn(
        `${name}-agent`,
        agentRunArgs(
          configDir,
          `127.0.0.1:${listen}`,
          `127.0.0.1:${http}`,
          "--topic-arn",
          topicArn,
          "--status-topic-arn",
          statusTopicArn,
          "--pod-name",
          name,
          "--endpoint-url",
          endpoint,
          "--region",
          REGION,
          "--propagation-timeout",
          opts.propagationTimeout ?? `${Math.max(30, Math.ceil((opts.kubeletDelayMs * 3) / 1000))}s`,
          "--log-level",
          opts.logLevel ?? "info",
          ...(opts.rolloutPolicyFile
            ? ["--rollout-state", LOCAL_ROLLOUT_STATE, "--health-report-interval", opts.healthReportInterval ?? "2s"]
            : []),
        ),
        podDir,
      );
      const sfu = procs.spawn(
        `${name}-sfu`,
        [SFU_CLI, "--agent", `ws://127.0.0.1:${listen}`, "--port", String(sfuPort)],
        podDir,
      );
      podApi?.pods.set(name, { name, labels: { "app.kubernetes.io/name": "sfu-server" }, annotations: {} });
      pods.push({
        name,
        configDir,
        agentUrl: `http://127.0.0.1:${http}`,
        agentWs: `ws://127.0.0.1:${listen}`,
        sfuUrl: `http://127.0.0.1:${sfuPort}`,
        agent,
        sfu,
        writer,
      });
    }
    if (podApi) {
      podApi.deployments.set("sfu-server", {
        name: "sfu-server",
        replicas: pods.length,
        selector: { "app.kubernetes.io/name": "sfu-server" },
        template: {},
      });
      podApi.onPodUpdate = (pod) => kubelet?.podUpdated(pod);
      stored = await payload();
      for (const p of pods) written.set(p.name, stored);
      kubelet?.start(pods.map((p) => p.name));
    }
    for (const p of pods) {
      // A loaded machine starts Node slowly; an agent with a rollout state also reads it first.
      await p.agent.waitHttpOk(`${p.agentUrl}/readyz`, 60_000);
      await p.sfu.waitHttpOk(`${p.sfuUrl}/readyz`, 60_000);
      log(`${p.name}: agent ${p.agentUrl}, SFU ${p.sfuUrl}`);
    }
  } catch (err) {
    await stopAll();
    throw new Error(`local stack failed to start: ${(err as Error).message} (logs kept in ${workDir})`);
  }

  // The source watch: a change triggers notify now, the kubelet swap later.
  let lastContent = await readFile(opts.configFile, "utf8");
  const onSourceChange = async () => {
    let content: string;
    try {
      content = await readFile(opts.configFile, "utf8");
    } catch {
      return; // editors delete-then-write; the next event carries the file
    }
    if (content === lastContent) return;
    lastContent = content;
    revision += 1;
    const rev = `local-${revision}`;
    if (!(await admit(rev, content))) return;
    if (kubelet) {
      // The API server now holds the new ConfigMap; the kubelets sync it when nudged or on their period.
      stored = await payload();
      log(
        `source changed: revision ${rev}; the hook nudges every pod (periodic sync every ${opts.kubeletSyncMs} ms + jitter)`,
      );
      notify(rev).catch((err: Error) => log(`hook: revision ${rev} not run: ${err.message}`));
      return;
    }
    log(`source changed: revision ${rev}; kubelet swap in ${opts.kubeletDelayMs} ms`);
    notify(rev).catch((err: Error) => log(`hook: revision ${rev} not run: ${err.message}`));
    clearTimeout(timer);
    timer = setTimeout(() => {
      mirror().then(
        () => log(`kubelet: swapped ..data in ${pods.length} pod(s)`),
        (err: Error) => log(`kubelet: mirror failed: ${err.message}`),
      );
    }, opts.kubeletDelayMs);
  };
  // Watch the directory: editors replace the file (rename), which a file watch would lose.
  const watcher: FSWatcher = fsWatch(resolve(opts.configFile, ".."), (_event, file) => {
    if (file && resolve(opts.configFile, "..", file) !== resolve(opts.configFile)) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void onSourceChange(), 100);
  });

  // The auth secret's watch: an edit is a rotation (TURN server first, then the kubelet swap).
  let lastSecret = opts.turnAuthSecretFile ? await readFile(opts.turnAuthSecretFile, "utf8") : "";
  const onSecretChange = async (file: string) => {
    let content: string;
    try {
      content = await readFile(file, "utf8");
    } catch {
      return;
    }
    if (content.trim() === lastSecret.trim() || content.trim() === "") return;
    const previous = lastSecret;
    lastSecret = content;
    log("TURN auth secret changed: rotating");
    try {
      await opts.onTurnAuthSecretChange?.(previous, content);
    } catch (err) {
      log(`TURN auth secret: rotation hook failed: ${(err as Error).message}`);
    }
    clearTimeout(timer);
    timer = setTimeout(() => {
      mirror().then(
        () => log(`kubelet: swapped ..data (new TURN auth secret) in ${pods.length} pod(s)`),
        (err: Error) => log(`kubelet: mirror failed: ${err.message}`),
      );
    }, opts.kubeletDelayMs);
  };
  const secretFile = opts.turnAuthSecretFile;
  const secretWatcher: FSWatcher | null = secretFile
    ? fsWatch(resolve(secretFile, ".."), (_event, file) => {
        if (file && resolve(secretFile, "..", file) !== resolve(secretFile)) return;
        clearTimeout(secretDebounce);
        secretDebounce = setTimeout(() => void onSecretChange(secretFile), 100);
      })
    : null;

  async function stopAll(): Promise<void> {
    kubelet?.stop();
    await podApi?.stop();
    clearTimeout(timer);
    clearTimeout(debounce);
    clearTimeout(secretDebounce);
    await procs.stopAll(8_000);
    destroyAwsClients();
    await fauxqs.stop();
  }

  return {
    pods,
    topicArn,
    statusQueueUrl,
    endpoint,
    workDir,
    podApi,
    async syncNow() {
      revision += 1;
      lastContent = await readFile(opts.configFile, "utf8");
      const run = notify(`local-${revision}`);
      // A rollout waits for the pods, which need the file: mirror while it runs.
      await mirror();
      await run;
    },
    lastHook: () => lastHook,
    async stop() {
      watcher.close();
      secretWatcher?.close();
      await stopAll();
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
