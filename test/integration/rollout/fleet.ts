/**
 * A fleet for the rollout driver's integration tests: fauxqs (SNS, SQS and
 * S3) with the reload topic, the status topic and queue and the state
 * bucket; in-process agents (the real Agent in per-pod queue mode, reading
 * the rollout state from S3) each with a fake SFU and a ConfigMap directory
 * holding `config.yaml` and `rollout.yaml`; and `sfu-agent rollout` run
 * in-process against all of it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import { createAwsClients, createS3Client } from "../../../agent/aws/aws-clients.ts";
import { RolloutStateStore } from "../../../agent/aws/state-store.ts";
import { type RolloutDeps, runRolloutCommand } from "../../../agent/commands/rollout.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import type { ConfigMessage } from "../../../protocol/messages-schema.ts";
import type { ReloadRolloutField } from "../../../protocol/rollout-schema.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION } from "../../../scripts/local/fauxqs.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { type CliRun, captureRun } from "../../helpers/cli-run.ts";
import { configText } from "../../helpers/config-text.ts";
import { FakeSfu, type FakeSfuReply } from "../../helpers/fake-sfu.ts";
import { byRank } from "../../helpers/fleet-sim.ts";
import { type QueuePod, startQueuePod, testPodQueue } from "../../helpers/queue-pod.ts";
import { type QueueFixture, startQueueFixture } from "../queue/harness.ts";

export { configText } from "../../helpers/config-text.ts";
export { hashOf } from "../queue/harness.ts";

const CLI = join(import.meta.dirname, "../../../agent/cli.ts");

export const BUCKET = "sfu-rollout";
/** The `rollout` field of a reload event (AgentRollout.onRolloutEvent): makes an agent re-read the state now. */
export const ROLLOUT_EVENT: ReloadRolloutField = { id: "fleet", step: 1, threshold: 1 };
export const STATE_URL = `s3://${BUCKET}/sfu/rollout-state.json`;

/** A policy with short bakes; fake SFUs report no calls, so it proceeds without traffic. */
export const FAST_POLICY = `schemaVersion: 1
steps:
  - { percent: 25, bake: 1s }
  - { percent: 50, bake: 1s }
  - { percent: 100, bake: 1s }
halt:
  noTraffic: proceed
`;

/** One pod of the fleet. */
export interface FleetPod extends QueuePod {
  name: string;
  rank: number;
  logs: string[];
  /** Hashes its fake SFU received, in order. */
  received(): string[];
  /** The hash its SFU has applied (as the agent knows it). */
  applied(): string | null;
  /**
   * Restarts its SFU (the agent keeps running): the connection closes, stays
   * down `downMs`, and a new SFU dials in that runs nothing (a real SFU loses
   * its config on restart) unless `keepApplied` (it reports what it ran).
   * {@link FleetPod.received} spans every SFU of the pod.
   */
  restartSfu(o?: { downMs?: number; downUntil?: () => Promise<void>; keepApplied?: boolean }): Promise<void>;
  /** Its SFU now (the last one that dialled in). */
  sfuNow(): FakeSfu;
  stop(): Promise<void>;
}

/** The fleet. */
export interface Fleet {
  f: QueueFixture;
  state: RolloutStateStore;
  /** Pods, lowest rank first. */
  pods: FleetPod[];
  /** Writes config `n` and the policy (null: none, the key removed) into every pod's mount, as the kubelet does. */
  mount(n: number, policy?: string | null): Promise<void>;
  /** Runs `sfu-agent rollout` for config `n` (or that config text) with `policy` (null: no policy file). */
  rollout(
    n: number | string,
    o?: { policy?: string | null; expect?: number; timeout?: string; extra?: string[]; deps?: Partial<RolloutDeps> },
  ): Promise<CliRun>;
  /**
   * Spawns a real `sfu-agent rollout` process for config `n` (the same flags,
   * through the same endpoint): `done` resolves with its exit code (null when
   * killed by a signal) and output.
   */
  spawnRollout(
    n: number,
    o?: { timeout?: string },
  ): { child: ChildProcess; done: Promise<CliRun & { signal: string | null }> };
  /** The clients the hook used (their calls recorded in `hookActions`). */
  hookActions: Set<string>;
  /** Every AWS call of the agents. */
  agentActions: Set<string>;
  /** Counts of the AWS calls of the agents and of the hook, by action. */
  agentCalls: Map<string, number>;
  hookCalls: Map<string, number>;
  /**
   * Restarts pod `name` on the config last mounted: by default its agent (same
   * ConfigMap directory and state cache file; the SFU reports what it ran);
   * `newPod`: a new pod (fresh directory, no cache, an SFU that runs nothing);
   * `sfuRestarted`: both containers restarted (same directory and cache, an SFU that runs nothing).
   */
  restart(name: string, o?: { newPod?: boolean; sfuRestarted?: boolean }): Promise<FleetPod>;
  dispose(): Promise<void>;
}

/** Starts fauxqs, the bucket and `names.length` pods on config `initial`. */
export async function startFleet(o: {
  names: string[];
  initial?: number;
  policy?: string;
  reply?: (name: string) => FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply);
  /** The agents' resync interval (default 2 s; the agent's own default is 60 s). */
  resyncIntervalMs?: number;
  /** AWS endpoint of the agents and the hook (a fault proxy in front of fauxqs); default fauxqs itself. */
  endpoint?: (fauxqs: string) => string | Promise<string>;
  /** The agents' and the hook's S3 state reads: deadline per attempt and back-off (default the store's). */
  stateReads?: { readTimeoutMs: number; backoff: { baseMs: number; maxMs: number } };
  /** Give each agent a state cache file (`--rollout-state-cache`), kept across {@link Fleet.restart}. */
  stateCache?: boolean;
}): Promise<Fleet> {
  const f = await startQueueFixture();
  const dirs: string[] = [];
  const s3 = createS3Client({
    endpointUrl: f.fx.endpoint,
    region: FAUXQS_REGION,
    credentials: FAUXQS_CREDENTIALS,
    callLogFile: null,
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const state = new RolloutStateStore({ url: STATE_URL, s3 });
  const agentCalls = new Map<string, number>();
  const hookCalls = new Map<string, number>();
  const agentActionSet = new Set<string>();
  const hookActionSet = new Set<string>();
  const count = (m: Map<string, number>, set: Set<string>) => (a: string) => {
    set.add(a);
    m.set(a, (m.get(a) ?? 0) + 1);
  };
  const agentActions = { add: count(agentCalls, agentActionSet) };
  const hookActions = { add: count(hookCalls, hookActionSet) };
  const work = await mkdtemp(join(tmpdir(), "sfu-rollout-fleet-"));
  dirs.push(work);
  const policy = o.policy ?? FAST_POLICY;
  const endpoint = o.endpoint ? await o.endpoint(f.fx.endpoint) : f.fx.endpoint;
  const awsClients = (onCall: (a: string) => void): AwsClients =>
    createAwsClients({
      endpointUrl: endpoint,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
      onCall,
    });
  let mounted: { n: number; policy: string | null } = { n: o.initial ?? 1, policy };

  const startPod = async (
    name: string,
    again?: { dir: string; sfuApplied: { version: number; hash: string } | null },
  ): Promise<FleetPod> => {
    const { logger, logs } = capturedLogger("debug");
    const clients: AwsClients = awsClients((a) => agentActions.add(a));
    const pod = await startQueuePod({
      name,
      tmpPrefix: "sfu-rollout-pod-",
      ...(again ? { dir: again.dir, sfuApplied: again.sfuApplied } : {}),
      initialConfig: configText(mounted.n),
      files: mounted.policy === null ? {} : { "rollout.yaml": mounted.policy },
      logger,
      clients,
      resyncIntervalMs: o.resyncIntervalMs ?? 2_000,
      queue: testPodQueue(f),
      agentOptions: { rolloutState: STATE_URL, healthReportIntervalMs: 500 },
      // The agent's own S3 reader, with its calls recorded like the queue's.
      agentDeps: {
        rolloutState: new RolloutStateStore({
          url: STATE_URL,
          region: FAUXQS_REGION,
          endpointUrl: endpoint,
          credentials: FAUXQS_CREDENTIALS,
          callLogFile: null,
          onCall: (a) => agentActions.add(a),
          ...(o.stateReads ?? {}),
          ...(o.stateCache ? { cacheFile: join(work, `${name}.state-cache.json`) } : {}),
        }),
      },
    });
    if (o.reply) pod.sfu.setReply(o.reply(name));
    dirs.push(pod.dir);
    let stopped = false;
    const sfus = [pod.sfu];
    const current = () => sfus[sfus.length - 1] as FakeSfu;
    return {
      ...pod,
      name,
      rank: cohortRank(name),
      logs,
      received: () => sfus.flatMap((s) => s.received.map((r) => r.message.hash)),
      applied: () => pod.agent.status().applied?.hash ?? null,
      sfuNow: current,
      restartSfu: async (ro = {}) => {
        const ran = pod.agent.store.applied();
        await current().close();
        if (ro.downMs) await new Promise((r) => setTimeout(r, ro.downMs));
        await ro.downUntil?.();
        const next = await FakeSfu.connect({
          url: pod.agent.pushUrl,
          name,
          applied: ro.keepApplied && ran ? { version: ran.version, hash: ran.hash } : null,
          reply: o.reply ? o.reply(name) : { kind: "ack" },
        });
        sfus.push(next);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await current().close();
        await pod.agent.stop(500);
        clients.destroy();
      },
    };
  };
  const started: FleetPod[] = [];
  for (const name of o.names) started.push(await startPod(name));
  const pods = byRank(started);

  const hookClients = awsClients((a) => hookActions.add(a));
  let runs = 0;
  const children: ChildProcess[] = [];
  const hookArgv = (configFile: string, policyFile: string, revision: string, expect: number, timeout: string) => [
    "--topic-arn",
    f.topicArn,
    "--config",
    configFile,
    "--policy",
    policyFile,
    "--rollout-state",
    STATE_URL,
    "--status-queue-url",
    f.statusQueueUrl,
    "--status-topic-arn",
    f.statusTopicArn,
    "--revision",
    revision,
    "--expect",
    String(expect),
    "--timeout",
    timeout,
  ];
  return {
    f,
    state,
    pods,
    hookActions: hookActionSet,
    agentActions: agentActionSet,
    agentCalls,
    hookCalls,
    async mount(n, p = policy) {
      mounted = { n, policy: p };
      for (const pod of pods)
        await pod.writer.write({ "config.yaml": configText(n), ...(p === null ? {} : { "rollout.yaml": p }) });
    },
    spawnRollout(n, so = {}) {
      const run = ++runs;
      const configFile = join(work, `config-${run}.yaml`);
      const policyFile = join(work, `rollout-${run}.yaml`);
      writeFileSync(configFile, configText(n));
      writeFileSync(policyFile, policy);
      const child = spawn(
        process.execPath,
        [
          CLI,
          "rollout",
          ...hookArgv(configFile, policyFile, `rev-${n}`, pods.length, so.timeout ?? "60"),
          "--endpoint-url",
          endpoint,
          "--region",
          FAUXQS_REGION,
        ],
        {
          env: {
            ...process.env,
            AWS_ACCESS_KEY_ID: FAUXQS_CREDENTIALS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: FAUXQS_CREDENTIALS.secretAccessKey,
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout?.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr?.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      const done = new Promise<CliRun & { signal: string | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr })),
      );
      children.push(child);
      return { child, done };
    },
    async rollout(n, ro = {}) {
      const run = ++runs;
      const configFile = join(work, `config-${run}.yaml`);
      const policyFile = join(work, `rollout-${run}.yaml`);
      await writeFile(configFile, typeof n === "string" ? n : configText(n));
      const p = ro.policy === undefined ? policy : ro.policy;
      if (p !== null) await writeFile(policyFile, p);
      const argv = [
        ...hookArgv(
          configFile,
          policyFile,
          `rev-${typeof n === "string" ? run : n}`,
          ro.expect ?? pods.length,
          ro.timeout ?? "60",
        ),
        ...(ro.extra ?? []),
      ];
      const store = new RolloutStateStore({
        url: STATE_URL,
        region: FAUXQS_REGION,
        endpointUrl: endpoint,
        credentials: FAUXQS_CREDENTIALS,
        callLogFile: null,
        onCall: (a) => hookActions.add(a),
        ...(o.stateReads ?? {}),
      });
      try {
        return await captureRun((io) =>
          runRolloutCommand(argv, io, {
            env: {},
            clients: hookClients,
            store,
            waitTimeSeconds: 1,
            revertTimeoutMs: 10_000,
            stateCheckIntervalMs: 1_000,
            ...ro.deps,
          }),
        );
      } finally {
        store.destroy();
      }
    },
    async restart(name, ro = {}) {
      const i = pods.findIndex((p) => p.name === name);
      const old = pods[i];
      if (!old) throw new Error(`no pod ${name}`);
      const applied = old.agent.store.applied();
      await old.stop();
      if (ro.newPod) await rm(join(work, `${name}.state-cache.json`), { force: true });
      const pod = await startPod(
        name,
        ro.newPod
          ? undefined
          : {
              dir: old.dir,
              sfuApplied: ro.sfuRestarted ? null : applied && { version: applied.version, hash: applied.hash },
            },
      );
      pods[i] = pod;
      return pod;
    },
    async dispose() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      for (const p of pods) await p.stop().catch(() => {});
      hookClients.destroy();
      s3.destroy();
      await f.dispose();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
}
