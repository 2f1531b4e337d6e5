/**
 * Options of `sfu-agent run` (the documented CLI contract): every flag may also come
 * from an environment variable `SFU_AGENT_<FLAG>` (upper snake case, e.g.
 * `--config-dir` -> `SFU_AGENT_CONFIG_DIR`); a flag wins over its variable,
 * the variable over the documented default. Parsing is pure: argv, env and
 * the host name are inputs, a typed result is the output.
 */
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { LOG_LEVELS, type LogLevel } from "../../protocol/config-schema.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import { parseS3Url } from "../aws/s3-url.ts";
import { envName, type ListenAddress, parseDuration, parseListenAddress } from "../shared/cli-values.ts";
import { AgentError } from "../shared/errors.ts";
import { checkPushUrl } from "../sidecar/http-push-wire.ts";

/** The resolved options of `sfu-agent run`. */
export interface RunOptions {
  /** Directory of the mounted ConfigMap (watched as a directory). */
  configDir: string;
  /** Key (file name) of the config inside `configDir`. */
  configKey: string;
  /** Address of the WebSocket push server the SFU dials (unused with `push`). */
  listen: ListenAddress;
  /** HTTP push mode: the URL configs are POSTed to; null = WebSocket mode (the SFU dials `listen`). */
  push: string | null;
  /** Address of the HTTP server (/healthz, /readyz, /metrics, /status). */
  http: ListenAddress;
  /** Host names the HTTP server answers besides loopback names, the pod IP and its interface IPs (else 421). */
  httpAllowedHosts: string[];
  /** The pod IP from env POD_IP (the downward API), or null. */
  podIp: string | null;
  /** SNS topic: per-pod queue mode. */
  topicArn: string | null;
  /** One given SQS queue. */
  queueUrl: string | null;
  /** Optional SNS topic the outcome of each reload is published to. */
  statusTopicArn: string | null;
  podName: string;
  queuePrefix: string;
  region: string | null;
  endpointUrl: string | null;
  /** File holding the shared token sent as `Authorization: Bearer <token>`: by the SFU (WebSocket mode) or by the agent (HTTP push mode). */
  tokenFile: string | null;
  /** The one directory secret files (credentialFile, authSecretFile) may live under; watched for rotations. */
  secretsDir: string;
  ackTimeoutMs: number;
  propagationTimeoutMs: number;
  /** Safety-net re-read interval of the config file. */
  resyncIntervalMs: number;
  logLevel: LogLevel;
  /** File name of the rollout policy inside `configDir` (absent file: no progressive rollout). */
  rolloutKey: string;
  /** `s3://bucket/key` of the rollout state; null = none (a mounted policy then gates nothing). */
  rolloutState: string | null;
  /** Local file remembering the last rollout state read (the pod's emptyDir); null = none. */
  rolloutStateCache: string | null;
  /** Interval of call-health events on the status topic while a rollout runs. */
  healthReportIntervalMs: number;
}

/** Flag definitions: name, env variable, default (as text), help. The single source of the usage text and of docs/reference/cli.md. */
export const RUN_FLAGS = [
  ["config-dir", "/etc/sfu", "directory of the mounted ConfigMap (watched for the ..data swap)"],
  ["config-key", "config.yaml", "file name of the config inside --config-dir"],
  ["listen", "127.0.0.1:7070", "host:port of the WebSocket push server the SFU dials"],
  ["push", "", "HTTP push mode: POST each config to this http(s) URL instead of waiting for the SFU to dial --listen"],
  ["http", "0.0.0.0:9090", "host:port of /healthz, /readyz, /metrics, /status"],
  [
    "http-allowed-hosts",
    "",
    "comma-separated host names the HTTP server also answers (loopback, $POD_IP and interface IPs always; others get 421)",
  ],
  ["topic-arn", "", "SNS topic ARN: per-pod SQS queue mode"],
  ["queue-url", "", "one given SQS queue URL (instead of --topic-arn)"],
  ["status-topic-arn", "", "SNS topic ARN the outcome of every reload is published to"],
  ["pod-name", "$POD_NAME or hostname", "pod name, used in /status and per-pod queue names"],
  ["queue-prefix", "sfu-config-", "name prefix of per-pod queues"],
  ["region", "", "AWS region (default: the SDK's)"],
  ["endpoint-url", "", "AWS endpoint override (e.g. a local SNS/SQS)"],
  [
    "token-file",
    "",
    "file with a shared token (Authorization: Bearer): the SFU presents it, or with --push the agent sends it (read trimmed: a regular file of at most 64 KiB, not empty)",
  ],
  [
    "secrets-dir",
    DEFAULT_SECRETS_DIR,
    "directory secret files (credentialFile, authSecretFile) must live under; watched for Secret rotations",
  ],
  ["ack-timeout", "10s", "how long to wait for the SFU's ack/nack of a push (with --push: per HTTP request)"],
  ["propagation-timeout", "300s", "how long a reload event waits for the kubelet to update the file"],
  [
    "resync-interval",
    "60s",
    "safety-net re-read of the config file (with --push: also re-check of the SFU's applied state)",
  ],
  ["log-level", "info", `log level: ${LOG_LEVELS.join("|")}`],
  [
    "rollout-key",
    "rollout.yaml",
    "file name of the rollout policy inside --config-dir (absent: every config applies at once)",
  ],
  [
    "rollout-state",
    "",
    "s3://BUCKET/KEY of the rollout state the rollout driver writes (read at start, on rollout events, every resync)",
  ],
  [
    "rollout-state-cache",
    "",
    "file remembering the last rollout state read, in the pod's emptyDir (a 404 or outage after a restart keeps what it knew)",
  ],
  ["health-report-interval", "10s", "interval of call-health events on the status topic while a rollout runs"],
] as const;

type FlagName = (typeof RUN_FLAGS)[number][0];

/** Usage text of `sfu-agent run`. */
export function runUsage(): string {
  const width = Math.max(...RUN_FLAGS.map(([n]) => n.length)) + 2;
  const lines = RUN_FLAGS.map(([n, d, help]) => `  --${n.padEnd(width)} ${help}${d ? ` (default ${d})` : ""}`);
  return `Usage: sfu-agent run [options]\n\nOptions (each also from env SFU_AGENT_<FLAG>, e.g. SFU_AGENT_CONFIG_DIR):\n${lines.join("\n")}\n  --help${" ".repeat(width - 4)} show this help\n\nDurations: 500ms, 10s, 5m, 1h.\n`;
}

/** Result of {@link parseRunOptions}. */
export type ParseRunResult =
  | { ok: true; help: boolean; options: RunOptions }
  | { ok: false; error: AgentError<"INVALID_OPTIONS"> };

/**
 * Parses `sfu-agent run` argv over `env` and the defaults. Never throws for
 * bad input: returns an {@link AgentError} `INVALID_OPTIONS` naming the flag (or variable)
 * and what is wrong with it.
 */
export function parseRunOptions(
  argv: string[],
  env: Record<string, string | undefined>,
  host: string = hostname(),
): ParseRunResult {
  const spec: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name] of RUN_FLAGS) spec[name] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (err) {
    return fail(`${(err as Error).message}; see 'sfu-agent run --help'`);
  }
  const errors: string[] = [];
  const raw = (flag: FlagName): { value: string; from: string } | null => {
    const v = values[flag];
    if (typeof v === "string") return { value: v, from: `--${flag}` };
    const e = env[envName(flag)];
    if (e !== undefined && e !== "") return { value: e, from: envName(flag) };
    return null;
  };
  const str = (flag: FlagName, def: string | null): string | null => {
    const r = raw(flag);
    if (r === null) return def;
    if (r.value.trim() === "") {
      errors.push(`${r.from}: must not be empty`);
      return def;
    }
    return r.value;
  };
  const duration = (flag: FlagName, def: number, min: number): number => {
    const r = raw(flag);
    if (r === null) return def;
    const ms = parseDuration(r.value);
    if (ms === null) {
      errors.push(`${r.from}: ${JSON.stringify(r.value)} is not a duration (like 500ms, 10s, 5m)`);
      return def;
    }
    if (ms < min) {
      errors.push(`${r.from}: ${r.value} is too short (minimum ${min}ms)`);
      return def;
    }
    return ms;
  };
  const address = (flag: FlagName, def: string): ListenAddress => {
    const r = raw(flag);
    const parsed = parseListenAddress(r?.value ?? def);
    if (parsed === null) {
      errors.push(`${r?.from ?? `--${flag}`}: ${JSON.stringify(r?.value)} is not host:port (e.g. 127.0.0.1:7070)`);
      return { host: "127.0.0.1", port: 0 };
    }
    return parsed;
  };
  const level = str("log-level", "info") as string;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    errors.push(`${raw("log-level")?.from}: ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(", ")}`);
  }
  const configKey = str("config-key", "config.yaml") as string;
  if (configKey.includes("/") || configKey.startsWith("..")) {
    errors.push(`${raw("config-key")?.from}: ${JSON.stringify(configKey)} must be a plain file name`);
  }
  const rolloutKey = str("rollout-key", "rollout.yaml") as string;
  if (rolloutKey.includes("/") || rolloutKey.startsWith("..")) {
    errors.push(`${raw("rollout-key")?.from}: ${JSON.stringify(rolloutKey)} must be a plain file name`);
  } else if (rolloutKey === configKey) {
    errors.push(`${raw("rollout-key")?.from}: ${JSON.stringify(rolloutKey)} must differ from --config-key`);
  }
  const rolloutState = str("rollout-state", null);
  if (rolloutState !== null) {
    const loc = parseS3Url(rolloutState);
    if (typeof loc === "string") errors.push(`${raw("rollout-state")?.from}: ${loc}`);
  }
  const options: RunOptions = {
    configDir: str("config-dir", "/etc/sfu") as string,
    configKey,
    listen: address("listen", "127.0.0.1:7070"),
    push: str("push", null),
    http: address("http", "0.0.0.0:9090"),
    httpAllowedHosts: allowedHosts(str("http-allowed-hosts", null), raw("http-allowed-hosts")?.from, errors),
    podIp: env["POD_IP"]?.trim() || null,
    topicArn: str("topic-arn", null),
    queueUrl: str("queue-url", null),
    statusTopicArn: str("status-topic-arn", null),
    podName: str("pod-name", null) ?? (env["POD_NAME"] || host),
    queuePrefix: str("queue-prefix", "sfu-config-") as string,
    region: str("region", null),
    endpointUrl: str("endpoint-url", null),
    tokenFile: str("token-file", null),
    secretsDir: str("secrets-dir", DEFAULT_SECRETS_DIR) as string,
    ackTimeoutMs: duration("ack-timeout", 10_000, 1),
    propagationTimeoutMs: duration("propagation-timeout", 300_000, 1),
    resyncIntervalMs: duration("resync-interval", 60_000, 100),
    logLevel: level as LogLevel,
    rolloutKey,
    rolloutState,
    rolloutStateCache: str("rollout-state-cache", null),
    healthReportIntervalMs: duration("health-report-interval", 10_000, 100),
  };
  if (options.topicArn !== null && options.queueUrl !== null) {
    errors.push("--topic-arn and --queue-url are exclusive: give one (per-pod queues or one given queue), not both");
  }
  if (options.push !== null) {
    const checked = checkPushUrl(options.push);
    if (typeof checked === "string") errors.push(`${raw("push")?.from}: ${checked}`);
    if (raw("listen") !== null) {
      errors.push(
        `${raw("listen")?.from} and ${raw("push")?.from} are exclusive: the SFU dials the agent, or the agent POSTs to the SFU`,
      );
    }
  }
  if (options.endpointUrl !== null && !/^https?:\/\/\S+$/.test(options.endpointUrl)) {
    errors.push(`${raw("endpoint-url")?.from}: ${JSON.stringify(options.endpointUrl)} is not an http(s) URL`);
  }
  if (errors.length > 0) return fail(errors.join("\n"));
  return { ok: true, help: values["help"] === true, options };
}

/** Splits and checks `--http-allowed-hosts`: names or IPs, comma-separated, no ports, no wildcards. */
function allowedHosts(value: string | null, from: string | undefined, errors: string[]): string[] {
  if (value === null) return [];
  const hosts = value
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h.length > 0);
  for (const h of hosts) {
    if (!/^(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|[0-9a-f:.]+|\[[0-9a-f:.]+\])$/.test(h)) {
      errors.push(`${from}: ${JSON.stringify(h)} is not a host name or IP (no port, no wildcard)`);
    }
  }
  return hosts;
}

function fail(message: string): ParseRunResult {
  return { ok: false, error: new AgentError("INVALID_OPTIONS", message) };
}
