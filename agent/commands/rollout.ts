/**
 * `sfu-agent rollout`: the progressive rollout driver the PostSync hook runs.
 * It validates the config and the rollout policy, then drives the config's
 * hash through the policy's steps (agent/hook/driver.ts): the durable
 * state in S3 says which pods (by cohort rank) take the new hash, reload
 * events carrying `rollout: {id, step, threshold}` tell the agents to re-read
 * it, and the agents' stage and health reports on the status queue decide
 * whether a step widens or the rollout halts.
 *
 * Without a policy file (the `--policy` path does not exist) it behaves as
 * `notify --wait` (every pod applies at once) and then records the hash as
 * the stable config, so the state never lags behind what the pods run when
 * a policy is added later.
 *
 * Exit status: 0 rolled out (or already stable, or the first config recorded
 * as stable); 1 invalid config or policy, halted (the message names the
 * step, the pods and the criterion), the hash was halted before, superseded
 * by a newer rollout, or AWS failures; 2 usage error.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { PublishCommand } from "@aws-sdk/client-sns";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { cohortRank } from "../../protocol/cohort.ts";
import { formatProblem, loadConfigFile } from "../../protocol/config-loader.ts";
import type { ReloadEvent } from "../../protocol/messages-schema.ts";
import { loadRolloutPolicyFile } from "../../protocol/rollout-policy.ts";
import { ROLLOUT_STATE_TYPE } from "../../protocol/rollout-schema.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import { type AwsClients, createAwsClients, regionFromResource } from "../aws/aws-clients.ts";
import { describeError } from "../aws/errors.ts";
import { parseS3Url, RolloutStateStore } from "../aws/state-store.ts";
import type { DeploymentHook, DeploymentHookOptions } from "../hook/deployment-hook.ts";
import { type DriverResult, type GroupHealth, type RolloutRef, runRollout, type StepSummary } from "../hook/driver.ts";
import { StatusQueueSource } from "../hook/driver-events.ts";
import { envName } from "../shared/cli-values.ts";
import { type CommandIo, parseCommandFlags } from "../shared/command-io.ts";
import type { Timers } from "../shared/timers.ts";
import { checkTopicArn } from "../sidecar/queue/options.ts";
import { HOOK_FLAGS, openDeployment, parseTimeoutFlag, publishReloadEvent, waitForApplied } from "./notify.ts";

/** The flags of `sfu-agent rollout`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const ROLLOUT_FLAGS = {
  "topic-arn": HOOK_FLAGS["topic-arn"],
  config: HOOK_FLAGS.config,
  policy: {
    type: "string",
    arg: "FILE",
    help: "the rollout policy (rollout.yaml) (required; when the\nfile does not exist: every pod at once, as notify --wait)",
  },
  "rollout-state": { type: "string", arg: "URL", help: "s3://BUCKET/KEY of the rollout state (required)" },
  "status-queue-url": {
    type: "string",
    arg: "URL",
    help: "SQS queue subscribed to the agents' status topic (required)",
  },
  expect: { type: "string", arg: "N", help: "number of pods taking part" },
  "expect-deployment": {
    type: "string",
    arg: "NS/NAME",
    help: "as many pods as that Deployment has ready (Kubernetes API),\nand nudge the kubelet of each of its pods once per new\nhash (annotation sfu-config.dev/config-hash)",
  },
  "no-nudge": { type: "boolean", help: "do not annotate the pods (periodic kubelet sync only)" },
  revision: HOOK_FLAGS.revision,
  "config-map": HOOK_FLAGS["config-map"],
  "status-topic-arn": {
    type: "string",
    arg: "ARN",
    help: 'publish a status event with outcome "halted" there on a halt',
  },
  timeout: {
    type: "string",
    arg: "DURATION",
    help: "the whole rollout: seconds or 90s, 30m (default 1800);\nwhen it passes, the rollout halts",
  },
  region: HOOK_FLAGS.region,
  "endpoint-url": HOOK_FLAGS["endpoint-url"],
  "secrets-dir": {
    type: "string",
    arg: "DIR",
    help: "the agents' --secrets-dir: secret file paths of the config and\nof the state's stable config must lie under it (paths only: the\nhook needs no Secret mounted) (default /etc/sfu/secrets)",
  },
  help: HOOK_FLAGS.help,
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent rollout`. */
export const ROLLOUT_USAGE = `Usage: sfu-agent rollout --topic-arn ARN --config FILE --policy FILE
         --rollout-state s3://BUCKET/KEY --status-queue-url URL
         (--expect N | --expect-deployment NS/NAME) [options]

Rolls a config change out in the steps of the rollout policy: each step's
cohort (the pods of lowest rank, stable per pod name) applies the new hash,
bakes, and is judged on its reports (any NACK, invalid config or propagation
timeout halts) and its call health against the pods still on the previous
config. On a halt the cohort reverts to the previous config, the state keeps
the hash halted (no pod applies it, also after restarts), and the exit status
is 1. Without a policy file it behaves as notify --wait.

Options:
${formatFlagHelp(ROLLOUT_FLAGS, 27)}
Each option may also come from env SFU_AGENT_<OPTION> (e.g. SFU_AGENT_ROLLOUT_STATE).

Exit status: 0 rolled out (or already stable, or recorded as the first stable
config); 1 invalid config or policy, halted, a hash halted before, superseded
by a newer rollout, or AWS failures; 2 usage error.
`;

/**
 * The real clock with timers that keep the process alive: between two
 * receives the driver only sleeps, and the agent's unref'd timers would let
 * `sfu-agent rollout` exit (with status 0) in the middle of a bake.
 */
const heldTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Name the driver's own status event carries as `pod`. */
export const ROLLOUT_EVENT_SOURCE = "sfu-config-rollout";

/** Test seams of {@link runRolloutCommand}. */
export interface RolloutDeps {
  env: Record<string, string | undefined>;
  /** SQS/SNS clients (default: built from the flags; then destroyed at the end). */
  clients?: AwsClients;
  /** The state store (default: S3 at --rollout-state, built from the flags). */
  store?: Pick<RolloutStateStore, "read" | "write">;
  timers?: Timers;
  /** Kubernetes client and nudge tunables for --expect-deployment. */
  hook?: DeploymentHookOptions;
  /** Long-poll cap of the status queue, seconds (default 20). */
  waitTimeSeconds?: number;
  /** After a halt, how long to wait for the cohort's `reverted` reports (default 120 s). */
  revertTimeoutMs?: number;
  /** How often the state is re-read to notice a newer rollout (default 15 s). */
  stateCheckIntervalMs?: number;
  /** Sees the engine's result (benchmarks read the per-step figures). */
  onResult?: (result: DriverResult) => void;
}

/** Entry point of `sfu-agent rollout`; returns the exit code. */
export function main(argv: string[], io: CommandIo): Promise<number> {
  return runRolloutCommand(argv, io, { env: process.env });
}

/** `sfu-agent rollout` with explicit dependencies; see the module documentation. */
export async function runRolloutCommand(argv: string[], io: CommandIo, deps: RolloutDeps): Promise<number> {
  const parsed = parseCommandFlags("rollout", argv, io, { flags: ROLLOUT_FLAGS, help: ROLLOUT_USAGE, env: deps.env });
  if (typeof parsed === "number") return parsed;
  const { str, usage } = parsed;
  const topicArn = str("topic-arn");
  const file = str("config");
  const policyFile = str("policy");
  const stateUrl = str("rollout-state");
  const statusQueueUrl = str("status-queue-url");
  for (const [flag, v] of [
    ["topic-arn", topicArn],
    ["config", file],
    ["policy", policyFile],
    ["rollout-state", stateUrl],
    ["status-queue-url", statusQueueUrl],
  ] as const) {
    if (v === null) return usage(`--${flag} is required`);
  }
  if (topicArn === null || file === null || policyFile === null || stateUrl === null || statusQueueUrl === null)
    return 2;
  const arnError = checkTopicArn(topicArn);
  if (arnError) return usage(`--topic-arn: ${arnError}`);
  const statusTopicArn = str("status-topic-arn");
  if (statusTopicArn !== null) {
    const e = checkTopicArn(statusTopicArn);
    if (e) return usage(`--status-topic-arn: ${e}`);
  }
  const loc = parseS3Url(stateUrl);
  if (typeof loc === "string") return usage(`--rollout-state: ${loc}`);
  const configMap = str("config-map");
  if (configMap !== null && !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(configMap))
    return usage(`--config-map: ${JSON.stringify(configMap)} is not NAMESPACE/NAME`);
  const revision = str("revision");
  if (revision !== null && (revision.length === 0 || revision.length > 256))
    return usage("--revision: 1-256 characters");
  const expectText = str("expect");
  const expectDeployment = str("expect-deployment");
  if (expectText === null && expectDeployment === null) return usage("give --expect N or --expect-deployment NS/NAME");
  if (expectText !== null && expectDeployment !== null)
    return usage("--expect and --expect-deployment are exclusive: give one");
  let expect = 0;
  if (expectText !== null) {
    expect = Number(expectText);
    if (!(Number.isInteger(expect) && expect >= 1))
      return usage(`--expect: ${JSON.stringify(expectText)} is not a positive integer`);
  } else if (!/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(expectDeployment ?? "")) {
    return usage(`--expect-deployment: ${JSON.stringify(expectDeployment)} is not NAMESPACE/NAME`);
  }
  let timeoutMs = 1_800_000;
  const timeoutText = str("timeout");
  if (timeoutText !== null) {
    const ms = parseTimeoutFlag(timeoutText);
    if (ms === null) return usage(`--timeout: ${JSON.stringify(timeoutText)} is not a duration (1800, 90s, 30m)`);
    timeoutMs = ms;
  }

  const secretsDir = str("secrets-dir") ?? DEFAULT_SECRETS_DIR;
  const loaded = await loadConfigFile(file, { checkFiles: false, secretsDir });
  if (!loaded.ok) {
    for (const p of loaded.problems) io.stderr(`${formatProblem(loaded.source, p)}\n`);
    io.stderr(`sfu-agent rollout: ${file} is not a valid config (${loaded.code}); nothing published\n`);
    return 1;
  }
  for (const w of loaded.warnings) io.stderr(`${formatProblem(loaded.source, w)}\n`);
  const hasPolicy = existsSync(policyFile);
  const policy = hasPolicy ? loadRolloutPolicyFile(policyFile) : null;
  if (policy && !policy.ok) {
    for (const p of policy.problems) io.stderr(`${formatProblem(policyFile, p)}\n`);
    io.stderr(`sfu-agent rollout: ${policyFile} is not a valid rollout policy (${policy.code}); nothing published\n`);
    return 1;
  }

  let hook: DeploymentHook | null = null;
  if (expectDeployment !== null) {
    // Read before publishing: a hook that cannot count the pods publishes nothing.
    hook = await openDeployment("rollout", expectDeployment, deps, io);
    if (hook === null) return 1;
    expect = hook.ready;
  }
  // The kubelet nudge: once per pod and hash, held pods included (they must have the file too).
  const nudge = parsed.values["no-nudge"] === true || deps.env[envName("no-nudge")] === "true" ? null : hook;

  const timers = deps.timers ?? heldTimers;
  const region = str("region") ?? regionFromResource(topicArn);
  const endpointUrl = str("endpoint-url");
  const clients = deps.clients ?? createAwsClients({ region, endpointUrl });
  const ownStore = deps.store
    ? null
    : new RolloutStateStore({
        url: stateUrl,
        ...(region ? { region } : {}),
        ...(endpointUrl ? { endpointUrl } : {}),
        secrets: { secretsDir, checkFiles: false },
      });
  const store = deps.store ?? (ownStore as RolloutStateStore);
  const reloadEvent = (rollout: RolloutRef | null): ReloadEvent => {
    const e: ReloadEvent & { rollout?: RolloutRef } = {
      type: "sfu-config.reload",
      revision,
      hash: loaded.hash,
      configMap,
      issuedAt: new Date(timers.now()).toISOString(),
    };
    if (rollout) e.rollout = rollout;
    return e;
  };
  try {
    if (!policy) {
      io.stdout(`no rollout policy at ${policyFile}: every pod applies ${loaded.hash} at once (as notify --wait)\n`);
      if (!(await publishReloadEvent("rollout", clients, topicArn, reloadEvent(null), io))) return 1;
      await nudge?.nudge(loaded.hash, timers);
      const code = await waitForApplied(
        "rollout",
        { clients, statusQueueUrl, hash: loaded.hash, expect, timeoutMs, timers, hook: nudge },
        io,
      );
      if (code !== 0) return code;
      try {
        await store.write({
          type: ROLLOUT_STATE_TYPE,
          updatedAt: new Date(timers.now()).toISOString(),
          stable: { hash: loaded.hash, revision, config: loaded.config },
          candidate: null,
        });
      } catch (err) {
        io.stderr(
          `sfu-agent rollout: recording ${loaded.hash} as stable in ${stateUrl} failed: ${describeError(err)}\n`,
        );
        return 1;
      }
      io.stdout(`recorded ${loaded.hash} as the stable config in ${stateUrl}\n`);
      return 0;
    }

    const start = timers.now();
    const id = randomUUID();
    const source = new StatusQueueSource({
      rolloutId: id,
      hash: loaded.hash,
      sqs: clients.sqs,
      queueUrl: statusQueueUrl,
      timers,
      // Agents stamp their reports after reading the state; allow a minute of clock skew.
      notBefore: start - 60_000,
      ...(deps.waitTimeSeconds === undefined ? {} : { waitTimeSeconds: deps.waitTimeSeconds }),
      onError: (m) => io.stderr(`sfu-agent rollout: ${m}\n`),
    });
    const publishOrThrow = async (rollout: RolloutRef | null) => {
      if (!(await publishReloadEvent("rollout", clients, topicArn, reloadEvent(rollout), io)))
        throw new Error(`publishing to ${topicArn} failed`);
      await nudge?.nudge(loaded.hash, timers, 1);
    };
    const result = await runRollout(
      {
        hash: loaded.hash,
        revision,
        config: loaded.config,
        policy: policy.policy,
        expect,
        timeoutMs,
        ...(deps.revertTimeoutMs === undefined ? {} : { revertTimeoutMs: deps.revertTimeoutMs }),
        ...(deps.stateCheckIntervalMs === undefined ? {} : { stateCheckIntervalMs: deps.stateCheckIntervalMs }),
      },
      {
        now: () => timers.now(),
        store,
        publishReload: publishOrThrow,
        ...(statusTopicArn
          ? {
              publishHalted: async (reason, rollout) => {
                const event = {
                  type: "sfu-config.status",
                  pod: ROLLOUT_EVENT_SOURCE,
                  revision,
                  hash: loaded.hash,
                  version: null,
                  outcome: "halted",
                  stage: "halted",
                  error: { code: "ROLLOUT_HALTED", message: haltMessage(reason, policy.policy.steps) },
                  rollout: { id: rollout.id, hash: loaded.hash, step: rollout.step },
                  reason,
                  at: new Date(timers.now()).toISOString(),
                };
                await clients.sns.send(
                  new PublishCommand({ TopicArn: statusTopicArn, Message: JSON.stringify(event) }),
                );
              },
            }
          : {}),
        nextEvents: (until) => source.next(until),
        rankOf: cohortRank,
        newId: () => id,
        log: (line) => io.stdout(`${line}\n`),
      },
    );
    deps.onResult?.(result);
    return report(result, policy.policy.steps, loaded.hash, io);
  } finally {
    await nudge?.finish();
    if (!deps.clients) clients.destroy();
    ownStore?.destroy();
  }
}

function haltMessage(
  reason: { step: number; criterion: string; pods: string[]; detail: string },
  steps: ReadonlyArray<{ percent: number }>,
): string {
  const pct = steps[reason.step]?.percent;
  return `halted at step ${reason.step + 1}${pct === undefined ? "" : ` (${pct}%)`}: ${reason.criterion} on ${
    reason.pods.length > 0 ? reason.pods.join(", ") : "no pod"
  }: ${reason.detail}`;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
const figures = (g: GroupHealth) =>
  `${g.joins} joins, ${g.joinFailures} join failures, ${g.iceFailures} ICE failures (${g.pods} pods)`;

/** Formats the per-step summary as an aligned table. */
export function formatStepTable(steps: readonly StepSummary[]): string {
  const rows = [
    ["STEP", "PERCENT", "PODS", "APPLY", "BAKE", "DURATION", "COHORT", "BASELINE"],
    ...steps.map((s) => [
      String(s.step + 1),
      `${s.percent}%`,
      String(s.pods.length),
      secs(s.applyMs),
      secs(s.bakeMs),
      secs(s.durationMs),
      s.noTraffic ? `no traffic: ${figures(s.cohort)}` : figures(s.cohort),
      s.baseline.pods > 0 ? figures(s.baseline) : "-",
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

function report(result: DriverResult, steps: ReadonlyArray<{ percent: number }>, hash: string, io: CommandIo): number {
  switch (result.outcome) {
    case "bootstrapped":
    case "already-stable":
      return 0;
    case "complete":
      io.stdout(formatStepTable(result.steps));
      io.stdout(`rolled out ${hash} to every pod in ${result.steps.length} steps\n`);
      return 0;
    case "refused":
      io.stderr(`sfu-agent rollout: ${result.message}\n`);
      return 1;
    case "superseded":
      if (result.steps.length > 0) io.stdout(formatStepTable(result.steps));
      io.stderr(
        `sfu-agent rollout: rollout ${result.id} of ${hash} was superseded by ${result.by ?? "a cleared state"}; that rollout decides now\n`,
      );
      return 1;
    case "failed":
      if (result.steps.length > 0) io.stdout(formatStepTable(result.steps));
      io.stderr(`sfu-agent rollout: ${result.message}\n`);
      return 1;
    case "halted": {
      if (result.steps.length > 0) io.stdout(formatStepTable(result.steps));
      const reverts =
        result.reverted.length + result.notReverted.length === 0
          ? "no pod had applied it"
          : `reverted: ${result.reverted.join(", ") || "-"}${
              result.notReverted.length > 0 ? `; NOT reverted in time: ${result.notReverted.join(", ")}` : ""
            }`;
      io.stderr(`sfu-agent rollout: ${hash} ${haltMessage(result.reason, steps)}; ${reverts}\n`);
      return 1;
    }
  }
}
