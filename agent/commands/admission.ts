/**
 * `sfu-agent admission` (contract, docs/admission.md): the validating
 * admission webhook, refusing a ConfigMap whose config or rollout policy the
 * agent would refuse, with `sfu-agent validate`'s lines. Exit codes: 0 stopped
 * cleanly, 1 start-up failure (certificate, port), 2 usage.
 */
import { performance } from "node:perf_hooks";
import { Registry } from "prom-client";
import { type FlagSpecs, formatFlagHelp } from "../../protocol/cli-flags.ts";
import { LOG_LEVELS, type LogLevel } from "../../protocol/config-schema.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import { AdmissionServer, DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_MS } from "../admission/admission-server.ts";
import { DEFAULT_TLS_POLL_MS } from "../admission/certificate-reloader.ts";
import { AdmissionMetrics } from "../admission/metrics.ts";
import { parseDuration, parseListenAddress } from "../shared/cli-values.ts";
import { type CommandIo, parseCommandFlags } from "../shared/command-io.ts";
import { AgentError, exitCodeOf } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";

/** The flags of `sfu-agent admission`: parsed, listed by --help and in docs/reference/cli.md from here. */
export const ADMISSION_FLAGS = {
  listen: { type: "string", arg: "ADDR", help: "host:port to serve HTTPS on (default 0.0.0.0:8443)" },
  "tls-cert-file": { type: "string", arg: "FILE", help: "PEM certificate (chain) (required)" },
  "tls-key-file": { type: "string", arg: "FILE", help: "PEM private key (required)" },
  "config-key": { type: "string", arg: "NAME", help: "ConfigMap key of the config (default config.yaml)" },
  "rollout-key": { type: "string", arg: "NAME", help: "ConfigMap key of the rollout policy (default rollout.yaml)" },
  "secrets-dir": {
    type: "string",
    arg: "DIR",
    help: `directory secret files must live under (default ${DEFAULT_SECRETS_DIR})`,
  },
  "request-timeout": {
    type: "string",
    arg: "DUR",
    help: `deadline of one request, body and review (default ${DEFAULT_REQUEST_TIMEOUT_MS}ms;\nkeep it under the webhook's timeoutSeconds)`,
  },
  "max-body-bytes": { type: "string", arg: "N", help: `largest request body (default ${DEFAULT_MAX_BODY_BYTES})` },
  "tls-poll-interval": {
    type: "string",
    arg: "DUR",
    help: `how often the certificate files are read besides\nchange events (default ${DEFAULT_TLS_POLL_MS / 1000}s)`,
  },
  "log-level": { type: "string", arg: "LEVEL", help: "trace|debug|info|warn|error|fatal (default info)" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies FlagSpecs;

/** Help text of `sfu-agent admission`. */
export const ADMISSION_USAGE = `Usage: sfu-agent admission --listen ADDR --tls-cert-file FILE --tls-key-file FILE [options]

Validating admission webhook (AdmissionReview admission.k8s.io/v1) over HTTPS:
POST /validate refuses a ConfigMap whose config key (or rollout key) the agent
would refuse, with 'sfu-agent validate' lines (secret files are checked for
their path only, as with --no-check-files). Other objects, ConfigMaps without
the config key, and DELETE are allowed untouched. Also GET /healthz, /readyz,
/metrics. The certificate is reloaded when its files change.

Options (each also from env SFU_AGENT_<FLAG>):
${formatFlagHelp(ADMISSION_FLAGS, 29)}
Exit status: 0 stopped cleanly, 1 start-up failure, 2 usage error.
`;

/**
 * Entry point of `sfu-agent admission`; resolves with the exit code once the
 * server has stopped. Serves `POST /validate` (AdmissionReview
 * `admission.k8s.io/v1`) over HTTPS; `--config-key`, `--rollout-key` and
 * `--secrets-dir` mean what they mean to `sfu-agent run`, and each flag also
 * comes from `SFU_AGENT_<FLAG>`. Runs until SIGTERM/SIGINT (a second one
 * forces exit).
 */
export async function main(argv: string[], io: CommandIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommandFlags("admission", argv, io, { flags: ADMISSION_FLAGS, help: ADMISSION_USAGE, env });
  if (typeof parsed === "number") return parsed;
  const { str, usage } = parsed;
  const listen = parseListenAddress(str("listen") ?? "0.0.0.0:8443");
  if (listen === null) return usage(`--listen must be host:port, got ${JSON.stringify(str("listen"))}`);
  const certFile = str("tls-cert-file");
  const keyFile = str("tls-key-file");
  if (certFile === null || keyFile === null) return usage("--tls-cert-file and --tls-key-file are required");
  const configKey = str("config-key") ?? "config.yaml";
  const rolloutKey = str("rollout-key") ?? "rollout.yaml";
  for (const [flag, v] of [
    ["--config-key", configKey],
    ["--rollout-key", rolloutKey],
  ] as const) {
    if (v === "" || v.includes("/") || v.startsWith(".."))
      return usage(`${flag} ${JSON.stringify(v)} must be a plain file name`);
  }
  if (rolloutKey === configKey) return usage("--rollout-key must differ from --config-key");
  const secretsDir = str("secrets-dir") ?? DEFAULT_SECRETS_DIR;
  if (secretsDir === "") return usage("--secrets-dir must not be empty");
  const requestTimeoutMs = parseDuration(str("request-timeout") ?? `${DEFAULT_REQUEST_TIMEOUT_MS}ms`);
  if (requestTimeoutMs === null || requestTimeoutMs <= 0 || requestTimeoutMs > 30_000) {
    return usage("--request-timeout must be a duration above 0 and at most 30s (the API server's own limit)");
  }
  const pollMs = parseDuration(str("tls-poll-interval") ?? `${DEFAULT_TLS_POLL_MS}ms`);
  if (pollMs === null || pollMs <= 0) return usage("--tls-poll-interval must be a duration above 0");
  const maxBodyText = str("max-body-bytes") ?? String(DEFAULT_MAX_BODY_BYTES);
  const maxBodyBytes = /^\d{1,10}$/.test(maxBodyText) ? Number(maxBodyText) : 0;
  if (maxBodyBytes < 1024) return usage("--max-body-bytes must be an integer of at least 1024");
  const logLevel = (str("log-level") ?? "info") as LogLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    return usage(`--log-level must be one of ${LOG_LEVELS.join("|")}`);

  const logger = createLogger({ level: logLevel, base: { component: "admission" } });
  const registry = new Registry();
  const server = new AdmissionServer(
    { logger, registry, metrics: new AdmissionMetrics(registry), now: () => performance.now() },
    {
      host: listen.host,
      port: listen.port,
      certFile,
      keyFile,
      review: { configKey, rolloutKey, secretsDir },
      maxBodyBytes,
      requestTimeoutMs,
      tlsPollIntervalMs: pollMs,
    },
  );
  let signals = 0;
  let resolveStop: () => void = () => {};
  const stopRequested = new Promise<void>((r) => {
    resolveStop = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: forcing exit");
      process.exit(1);
    }
    logger.info({ signal }, "stopping");
    resolveStop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    try {
      await server.start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.fatal(
        { code: err instanceof AgentError ? err.code : undefined },
        `admission webhook failed to start: ${message}`,
      );
      io.stderr(`sfu-agent admission: ${message}\n`);
      return exitCodeOf(err);
    }
    await stopRequested;
    await server.stop();
    return 0;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
