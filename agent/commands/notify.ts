/**
 * `sfu-agent notify` (its flags, messages and exit codes are a contract the
 * PostSync hook and users' scripts rely on): computes the config file's hash with the agent's own pipeline (protocol/config-loader.ts,
 * `credentialFile`s not checked: the hook Job does not mount the Secret) and
 * publishes the reload event to SNS. With `--wait` it then reads status
 * events from `--status-queue-url` until N distinct pods report `applied`
 * for that hash, printing a per-pod table, so an Argo CD PostSync hook fails
 * the sync when a pod rejects the config. N is `--expect N`, or, with
 * `--expect-deployment NS/NAME`, that Deployment's ready pods read from the
 * Kubernetes API just before publishing (agent/hook/deployment-hook.ts), so
 * the hook follows replica changes and an HPA. With `--expect-deployment`
 * it also nudges the kubelet of each of the Deployment's pods after
 * publishing (agent/hook/pod-nudger.ts; `--no-nudge` turns it off), and
 * `--wait` prints the pods' propagation times.
 *
 * Exit status: 0 published (and, with --wait, applied by N pods); 1 invalid
 * config, a failed publish, a pod reporting rejected/invalid/timeout, or the
 * wait timing out; 2 usage error.
 */
import { PublishCommand } from "@aws-sdk/client-sns";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { formatProblem, loadConfigFile } from "../../protocol/config-loader.ts";
import type { ReloadEvent } from "../../protocol/messages-schema.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import { type AwsClients, createAwsClients, regionFromResource } from "../aws/aws-clients.ts";
import { describeError } from "../aws/errors.ts";
import type { DeploymentHook, DeploymentHookOptions } from "../hook/deployment-hook.ts";
import { formatPropagationSummary } from "../hook/propagation-summary.ts";
import { envName, parseDuration } from "../shared/cli-values.ts";
import { type CommandIo, parseCommandFlags } from "../shared/command-io.ts";
import { realTimers, type Timers } from "../shared/timers.ts";
import { checkTopicArn } from "../sidecar/queue/options.ts";

/**
 * The flags `sfu-agent notify` and `sfu-agent rollout` share, word for word
 * (each command lists its own in its own order).
 */
export const HOOK_FLAGS = {
  "topic-arn": { type: "string", arg: "ARN", help: "SNS topic of the per-pod queues (required)" },
  config: { type: "string", arg: "FILE", help: "the config file (as committed / synced) (required)" },
  revision: { type: "string", arg: "REV", help: "Git revision to report (e.g. $ARGOCD_APP_REVISION)" },
  "config-map": { type: "string", arg: "NS/NAME", help: "the ConfigMap the agents mount, for the record" },
  region: { type: "string", arg: "REGION", help: "AWS region (default: from the topic ARN)" },
  "endpoint-url": { type: "string", arg: "URL", help: "AWS endpoint override (default: AWS_ENDPOINT_URL)" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies FlagSpecs;

/** The flags of `sfu-agent notify`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const NOTIFY_FLAGS = {
  "topic-arn": HOOK_FLAGS["topic-arn"],
  config: HOOK_FLAGS.config,
  revision: HOOK_FLAGS.revision,
  "config-map": HOOK_FLAGS["config-map"],
  wait: {
    type: "boolean",
    help: "wait for the pods' status events (needs --status-queue-url\nand one of --expect, --expect-deployment)",
  },
  expect: { type: "string", arg: "N", help: "number of pods that must report applied" },
  "expect-deployment": {
    type: "string",
    arg: "NS/NAME",
    help: "wait for as many pods as that Deployment has ready\n(status.readyReplicas, read through the Kubernetes API:\nKUBECONFIG, else the pod's ServiceAccount; needs get on\nit), and nudge the kubelet of each of its pods\n(annotation sfu-config.dev/config-hash; needs list and\npatch on pods) so they get the file within seconds",
  },
  "no-nudge": {
    type: "boolean",
    help: "do not annotate the pods: they get the file on the\nkubelet's periodic sync (60-90 s)",
  },
  "status-queue-url": {
    type: "string",
    arg: "URL",
    help: "SQS queue subscribed to the agents' --status-topic-arn",
  },
  timeout: { type: "string", arg: "DURATION", help: "how long --wait waits: seconds or 90s, 5m (default 300s)" },
  region: HOOK_FLAGS.region,
  "endpoint-url": HOOK_FLAGS["endpoint-url"],
  "secrets-dir": {
    type: "string",
    arg: "DIR",
    help: "the agents' secrets directory: secret file paths in\nthe config must lie under it (default /etc/sfu/secrets;\nthe files themselves are not read: the Job does not\nmount the Secret)",
  },
  help: HOOK_FLAGS.help,
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent notify`. */
export const NOTIFY_USAGE = `Usage: sfu-agent notify --topic-arn ARN --config FILE [options]

Publishes {"type":"sfu-config.reload",revision,hash,configMap,issuedAt} to the
SNS topic, with the hash of FILE computed exactly as the agent computes it.
Agents settle the event once the kubelet has swapped their mounted file to
that hash and their SFU has answered.

Options:
${formatFlagHelp(NOTIFY_FLAGS, 27)}
Each option may also come from env SFU_AGENT_<OPTION> (e.g. SFU_AGENT_TOPIC_ARN).
Credentials: the AWS SDK default chain (IRSA on EKS, env vars, profiles).

Exit status: 0 published (with --wait: N pods applied); 1 invalid config,
publish failed, a pod rejected/invalid/timed out, or --wait timed out;
2 usage error.
`;

/** Test seams of {@link runNotify}. */
export interface NotifyDeps {
  env: Record<string, string | undefined>;
  /** AWS clients (default: built from the flags by createAwsClients; then closed at the end). */
  clients?: AwsClients;
  timers?: Timers;
  /** Kubernetes client and nudge tunables for --expect-deployment (the API itself comes from env, as kubectl's). */
  hook?: DeploymentHookOptions;
}

/** Entry point of `sfu-agent notify`; returns the exit code. */
export function main(argv: string[], io: CommandIo): Promise<number> {
  return runNotify(argv, io, { env: process.env });
}

/** `sfu-agent notify` with explicit dependencies; see the module documentation. */
export async function runNotify(argv: string[], io: CommandIo, deps: NotifyDeps): Promise<number> {
  const parsed = parseCommandFlags("notify", argv, io, { flags: NOTIFY_FLAGS, help: NOTIFY_USAGE, env: deps.env });
  if (typeof parsed === "number") return parsed;
  const { values, str, usage } = parsed;
  const topicArn = str("topic-arn");
  const file = str("config");
  if (topicArn === null) return usage("--topic-arn is required");
  if (file === null) return usage("--config is required");
  const arnError = checkTopicArn(topicArn);
  if (arnError) return usage(`--topic-arn: ${arnError}`);
  const configMap = str("config-map");
  if (configMap !== null && !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(configMap)) {
    return usage(`--config-map: ${JSON.stringify(configMap)} is not NAMESPACE/NAME`);
  }
  const revision = str("revision");
  if (revision !== null && (revision.length === 0 || revision.length > 256))
    return usage("--revision: 1-256 characters");
  const wait = values.wait === true || deps.env[envName("wait")] === "true";
  const expectText = str("expect");
  const expectDeployment = str("expect-deployment");
  const statusQueueUrl = str("status-queue-url");
  const timeoutText = str("timeout");
  const noNudge = values["no-nudge"] === true || deps.env[envName("no-nudge")] === "true";
  let expect = 0;
  let timeoutMs = 300_000;
  if (expectDeployment !== null && !/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(expectDeployment))
    return usage(`--expect-deployment: ${JSON.stringify(expectDeployment)} is not NAMESPACE/NAME`);
  if (wait) {
    if (expectText === null && expectDeployment === null)
      return usage("--wait needs --expect N or --expect-deployment NS/NAME");
    if (expectText !== null && expectDeployment !== null)
      return usage("--expect and --expect-deployment are exclusive: give one");
    if (statusQueueUrl === null) return usage("--wait needs --status-queue-url URL");
    if (expectText !== null) {
      expect = Number(expectText);
      if (!(Number.isInteger(expect) && expect >= 1))
        return usage(`--expect: ${JSON.stringify(expectText)} is not a positive integer`);
    }
    if (timeoutText !== null) {
      const ms = parseTimeoutFlag(timeoutText);
      if (ms === null) return usage(`--timeout: ${JSON.stringify(timeoutText)} is not a duration (300, 90s, 5m)`);
      timeoutMs = ms;
    }
  } else if (expectText !== null || statusQueueUrl !== null || timeoutText !== null) {
    return usage("--expect, --status-queue-url and --timeout only apply with --wait");
  }

  const loaded = await loadConfigFile(file, {
    checkFiles: false,
    secretsDir: str("secrets-dir") ?? DEFAULT_SECRETS_DIR,
  });
  if (!loaded.ok) {
    for (const p of loaded.problems) io.stderr(`${formatProblem(loaded.source, p)}\n`);
    io.stderr(`sfu-agent notify: ${file} is not a valid config (${loaded.code}); nothing published\n`);
    return 1;
  }
  for (const w of loaded.warnings) io.stderr(`${formatProblem(loaded.source, w)}\n`);

  let hook: DeploymentHook | null = null;
  if (expectDeployment !== null) {
    // Read before publishing: a hook that cannot count the pods publishes nothing.
    hook = await openDeployment("notify", expectDeployment, deps, io);
    if (hook === null) return 1;
    expect = hook.ready;
  }

  const timers = deps.timers ?? realTimers;
  const clients =
    deps.clients ??
    createAwsClients({ region: str("region") ?? regionFromResource(topicArn), endpointUrl: str("endpoint-url") });
  try {
    const issuedAt = new Date(timers.now()).toISOString();
    const event: ReloadEvent = { type: "sfu-config.reload", revision, hash: loaded.hash, configMap, issuedAt };
    if (!(await publishReloadEvent("notify", clients, topicArn, event, io))) return 1;
    // Without --wait nobody reports: one nudge per pod, no re-nudge.
    if (hook && !noNudge) await hook.nudge(loaded.hash, timers, wait ? undefined : 1);
    if (!wait || statusQueueUrl === null) {
      await hook?.finish();
      return 0;
    }
    return await waitForApplied(
      "notify",
      { clients, statusQueueUrl, hash: loaded.hash, expect, timeoutMs, timers, hook },
      io,
    );
  } finally {
    if (!deps.clients) clients.destroy();
  }
}

/** A `--timeout` value: whole seconds, or a duration such as 90s or 5m; null when neither (or not positive). */
export function parseTimeoutFlag(text: string): number | null {
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : parseDuration(text);
  return ms === null || ms <= 0 ? null : ms;
}

/**
 * `--expect-deployment NS/NAME`: reads that Deployment (its ready pods, its
 * selector) through the Kubernetes API, loading the client only now (the
 * sidecar never does). Prints what it found; null (after printing why) when
 * it cannot count or nobody is ready to tell.
 */
export async function openDeployment(
  command: string,
  expectDeployment: string,
  deps: { env: Record<string, string | undefined>; hook?: DeploymentHookOptions },
  io: CommandIo,
): Promise<DeploymentHook | null> {
  const { DeploymentHook } = await import("../hook/deployment-hook.ts");
  return DeploymentHook.open(command, expectDeployment, deps.env, io, deps.hook);
}

/** Publishes a reload event (with any extra fields) to the topic; false (after printing why) when it failed. */
export async function publishReloadEvent(
  command: string,
  clients: AwsClients,
  topicArn: string,
  event: ReloadEvent,
  io: CommandIo,
): Promise<boolean> {
  let messageId: string | undefined;
  try {
    messageId = (await clients.sns.send(new PublishCommand({ TopicArn: topicArn, Message: JSON.stringify(event) })))
      .MessageId;
  } catch (err) {
    io.stderr(`sfu-agent ${command}: publishing to ${topicArn} failed: ${describeError(err)}\n`);
    return false;
  }
  io.stdout(`published ${event.hash} revision=${event.revision ?? "-"} messageId=${messageId ?? "-"}\n`);
  return true;
}

/**
 * `notify --wait`: reads status events until `expect` pods applied `hash`
 * (exit 0), a pod failed (1) or the timeout (1), printing the per-pod table.
 */
export async function waitForApplied(
  command: string,
  o: {
    clients: AwsClients;
    statusQueueUrl: string;
    hash: string;
    expect: number;
    timeoutMs: number;
    timers: Timers;
    /** The Deployment being nudged: told of each report, its nudges summarised. */
    hook?: DeploymentHook | null;
  },
  io: CommandIo,
): Promise<number> {
  if (o.expect === 0) {
    await o.hook?.finish();
    io.stdout("the deployment is scaled to 0: no pod to wait for\n");
    return 0;
  }
  // The status queue's reader (and the SQS client package) loads only for --wait.
  const { collectStatuses, formatPodTable } = await import("../hook/status-collector.ts");
  const start = o.timers.now();
  const result = await collectStatuses({
    sqs: o.clients.sqs,
    queueUrl: o.statusQueueUrl,
    hash: o.hash,
    expect: o.expect,
    // Agents stamp their status after receiving the event; allow a minute of clock skew.
    notBefore: start - 60_000,
    deadline: start + o.timeoutMs,
    timers: o.timers,
    onError: (m) => io.stderr(`sfu-agent ${command}: ${m}\n`),
    onReport: (r) => o.hook?.reported(r.pod),
  });
  const nudges = (await o.hook?.finish()) ?? [];
  if (result.malformed > 0) {
    io.stderr(
      `sfu-agent ${command}: ${result.malformed} message(s) on the status queue were not status events and were deleted (first: ${result.firstMalformed})\n`,
    );
  }
  if (result.pods.length > 0) io.stdout(formatPodTable(result.pods));
  io.stdout(formatPropagationSummary(result.pods, nudges));
  const applied = result.pods.filter((p) => p.outcome === "applied").length;
  if (result.result === "applied") {
    io.stdout(`${applied}/${o.expect} pods applied ${o.hash}\n`);
    return 0;
  }
  if (result.result === "failed") {
    const bad = result.pods.filter((p) => p.outcome !== "applied" && p.outcome !== "superseded");
    io.stderr(
      `sfu-agent ${command}: ${bad.map((p) => `${p.pod} ${p.outcome}${p.error ? ` (${p.error.code})` : ""}`).join(", ")}; ${applied}/${o.expect} applied\n`,
    );
    return 1;
  }
  io.stderr(
    `sfu-agent ${command}: timed out after ${Math.round(o.timeoutMs / 1000)}s: ${applied}/${o.expect} pods applied ${o.hash}\n`,
  );
  return 1;
}
