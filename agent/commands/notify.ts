/**
 * `sfu-agent notify` (its flags, messages and exit codes are a contract the
 * PostSync hook and users' scripts rely on): computes the config file's hash with the agent's own pipeline (protocol/config-loader.ts,
 * `credentialFile`s not checked: the hook Job does not mount the Secret) and
 * publishes the reload event to SNS. With `--wait` it then reads status
 * events from `--status-queue-url` until N distinct pods report `applied`
 * for that hash, printing a per-pod table, so an Argo CD PostSync hook fails
 * the sync when a pod rejects the config. N is `--expect N`, or, with
 * `--expect-deployment NS/NAME`, that Deployment's ready pods read from the
 * in-cluster API just before publishing (deployment-replicas.ts), so the hook
 * follows replica changes and an HPA.
 *
 * Exit status: 0 published (and, with --wait, applied by N pods); 1 invalid
 * config, a failed publish, a pod reporting rejected/invalid/timeout, or the
 * wait timing out; 2 usage error.
 */
import { PublishCommand } from "@aws-sdk/client-sns";
import { formatProblem, loadConfigFile } from "../../protocol/config-loader.ts";
import type { ReloadEvent } from "../../protocol/messages-schema.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import { envName, parseDuration } from "../options.ts";
import { type AwsClients, createAwsClients, regionFromResource } from "../queue/aws-clients.ts";
import { describeError } from "../queue/errors.ts";
import { checkTopicArn } from "../queue/options.ts";
import { collectStatuses, formatPodTable } from "../queue/status-collector.ts";
import { realTimers, type Timers } from "../queue/timers.ts";
import { type CommandIo, parseCommandFlags } from "./command-io.ts";
import { inClusterApi, type KubeApiTarget, readDeploymentReplicas } from "./deployment-replicas.ts";

/** Help text of `sfu-agent notify`. */
export const NOTIFY_USAGE = `Usage: sfu-agent notify --topic-arn ARN --config FILE [options]

Publishes {"type":"sfu-config.reload",revision,hash,configMap,issuedAt} to the
SNS topic, with the hash of FILE computed exactly as the agent computes it.
Agents settle the event once the kubelet has swapped their mounted file to
that hash and their SFU has answered.

Options:
  --topic-arn ARN          SNS topic of the per-pod queues (required)
  --config FILE            the config file (as committed / synced) (required)
  --revision REV           Git revision to report (e.g. $ARGOCD_APP_REVISION)
  --config-map NS/NAME     the ConfigMap the agents mount, for the record
  --wait                   wait for the pods' status events (needs --status-queue-url
                           and one of --expect, --expect-deployment)
  --expect N               number of pods that must report applied
  --expect-deployment NS/NAME
                           wait for as many pods as that Deployment has ready
                           (status.readyReplicas, read through the in-cluster API
                           with the pod's ServiceAccount: needs get on it)
  --status-queue-url URL   SQS queue subscribed to the agents' --status-topic-arn
  --timeout DURATION       how long --wait waits: seconds or 90s, 5m (default 300s)
  --region REGION          AWS region (default: from the topic ARN)
  --endpoint-url URL       AWS endpoint override (default: AWS_ENDPOINT_URL)
  --secrets-dir DIR        the agents' secrets directory: secret file paths in
                           the config must lie under it (default /etc/sfu/secrets;
                           the files themselves are not read: the Job does not
                           mount the Secret)
  -h, --help               show this help

Each option may also come from env SFU_AGENT_<OPTION> (e.g. SFU_AGENT_TOPIC_ARN).
Credentials: the AWS SDK default chain (IRSA on EKS, env vars, profiles).

Exit status: 0 published (with --wait: N pods applied); 1 invalid config,
publish failed, a pod rejected/invalid/timed out, or --wait timed out;
2 usage error.
`;

const FLAGS = {
  "topic-arn": { type: "string" },
  config: { type: "string" },
  revision: { type: "string" },
  "config-map": { type: "string" },
  wait: { type: "boolean" },
  expect: { type: "string" },
  "expect-deployment": { type: "string" },
  "status-queue-url": { type: "string" },
  timeout: { type: "string" },
  region: { type: "string" },
  "endpoint-url": { type: "string" },
  "secrets-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Test seams of {@link runNotify}. */
export interface NotifyDeps {
  env: Record<string, string | undefined>;
  /** AWS clients (default: built from the flags by createAwsClients; then closed at the end). */
  clients?: AwsClients;
  timers?: Timers;
  /** Kubernetes API for --expect-deployment (default: the in-cluster API from env and the ServiceAccount mount). */
  kubeApi?: KubeApiTarget;
}

/** Entry point of `sfu-agent notify`; returns the exit code. */
export function main(argv: string[], io: CommandIo): Promise<number> {
  return runNotify(argv, io, { env: process.env });
}

/** `sfu-agent notify` with explicit dependencies; see the module documentation. */
export async function runNotify(argv: string[], io: CommandIo, deps: NotifyDeps): Promise<number> {
  const parsed = parseCommandFlags("notify", argv, io, { flags: FLAGS, help: NOTIFY_USAGE, env: deps.env });
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
  let expect = 0;
  let timeoutMs = 300_000;
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
    } else if (!/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(expectDeployment ?? "")) {
      return usage(`--expect-deployment: ${JSON.stringify(expectDeployment)} is not NAMESPACE/NAME`);
    }
    if (timeoutText !== null) {
      const ms = parseTimeoutFlag(timeoutText);
      if (ms === null) return usage(`--timeout: ${JSON.stringify(timeoutText)} is not a duration (300, 90s, 5m)`);
      timeoutMs = ms;
    }
  } else if (expectText !== null || expectDeployment !== null || statusQueueUrl !== null || timeoutText !== null) {
    return usage("--expect, --expect-deployment, --status-queue-url and --timeout only apply with --wait");
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

  if (wait && expectDeployment !== null) {
    // Read before publishing: a hook that cannot count the pods publishes nothing.
    const counted = await countDeploymentPods("notify", expectDeployment, deps, io);
    if (counted === null) return 1;
    expect = counted;
  }

  const timers = deps.timers ?? realTimers;
  const clients =
    deps.clients ??
    createAwsClients({ region: str("region") ?? regionFromResource(topicArn), endpointUrl: str("endpoint-url") });
  try {
    const issuedAt = new Date(timers.now()).toISOString();
    const event: ReloadEvent = { type: "sfu-config.reload", revision, hash: loaded.hash, configMap, issuedAt };
    if (!(await publishReloadEvent("notify", clients, topicArn, event, io))) return 1;
    if (!wait || statusQueueUrl === null) return 0;
    return await waitForApplied(
      "notify",
      { clients, statusQueueUrl, hash: loaded.hash, expect, timeoutMs, timers },
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
 * `--expect-deployment NS/NAME`: that Deployment's ready pods, read from the
 * in-cluster API (or `deps.kubeApi`). Prints what it found; returns null
 * (after printing why) when it cannot count or nobody is ready to tell.
 */
export async function countDeploymentPods(
  command: string,
  expectDeployment: string,
  deps: Pick<NotifyDeps, "env" | "kubeApi">,
  io: CommandIo,
): Promise<number | null> {
  const [namespace, name] = expectDeployment.split("/") as [string, string];
  let api = deps.kubeApi;
  if (!api) {
    const found = await inClusterApi(deps.env);
    if (!found.ok) {
      io.stderr(`sfu-agent ${command}: --expect-deployment: ${found.message}; nothing published\n`);
      return null;
    }
    api = found.api;
  }
  const replicas = await readDeploymentReplicas(api, namespace, name);
  if (!replicas.ok) {
    io.stderr(`sfu-agent ${command}: --expect-deployment: ${replicas.message} (${replicas.code}); nothing published\n`);
    return null;
  }
  io.stdout(
    `deployment ${expectDeployment}: ${replicas.ready} ready of ${replicas.desired} desired; waiting for ${replicas.ready} pods\n`,
  );
  if (replicas.ready === 0 && replicas.desired > 0) {
    io.stderr(`sfu-agent ${command}: deployment ${expectDeployment} has no ready pod to tell; nothing published\n`);
    return null;
  }
  return replicas.ready;
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
  o: { clients: AwsClients; statusQueueUrl: string; hash: string; expect: number; timeoutMs: number; timers: Timers },
  io: CommandIo,
): Promise<number> {
  if (o.expect === 0) {
    io.stdout("the deployment is scaled to 0: no pod to wait for\n");
    return 0;
  }
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
  });
  if (result.malformed > 0) {
    io.stderr(
      `sfu-agent ${command}: ${result.malformed} message(s) on the status queue were not status events and were deleted (first: ${result.firstMalformed})\n`,
    );
  }
  if (result.pods.length > 0) io.stdout(formatPodTable(result.pods));
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
