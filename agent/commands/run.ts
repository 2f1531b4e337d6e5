/**
 * `sfu-agent run`: parses the flags (see ../options.ts), starts the
 * {@link Agent} and runs it until SIGTERM/SIGINT. Exit codes: 0 stopped
 * cleanly, 1 forced stop or a start-up failure, 2 usage (a start-up failure's
 * code says which: EXIT_CODES in ../errors.ts).
 */

import type { CommandIo } from "../shared/command-io.ts";
import { AgentError, exitCodeOf } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";
import { Agent } from "../sidecar/agent.ts";
import type { startQueueTrigger as StartQueueTrigger } from "../sidecar/queue/index.ts";
import { parseRunOptions, type RunOptions, runUsage } from "./run-options.ts";

/** The queue trigger, its module (and with it the SQS and SNS clients) loaded only when a queue flag is set. */
const startQueueTrigger: typeof StartQueueTrigger = async (deps) =>
  (await import("../sidecar/queue/index.ts")).startQueueTrigger(deps);

/** Longest time a SIGTERM waits for an unanswered push before closing. */
export const SHUTDOWN_DRAIN_MS = 5_000;

/**
 * Entry point of `sfu-agent run`; resolves with the exit code once the agent
 * has stopped. The first signal stops gracefully (stop accepting, let an
 * unanswered push finish within {@link SHUTDOWN_DRAIN_MS}, exit 0); a second
 * forces exit 1. SIGUSR2 toggles the log level between the configured one and
 * debug.
 */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseRunOptions(argv, process.env);
  if (!parsed.ok) {
    io.stderr(`sfu-agent run: ${parsed.error.message.replaceAll("\n", "\nsfu-agent run: ")}\n`);
    return 2;
  }
  if (parsed.help) {
    io.stdout(runUsage());
    return 0;
  }
  const options = parsed.options;
  const logger = createLogger({ level: options.logLevel, base: { pod: options.podName } });
  const agent = new Agent(
    { logger, clock: () => new Date(), startQueueTrigger },
    {
      configDir: options.configDir,
      configKey: options.configKey,
      listen: options.listen,
      push: options.push,
      http: options.http,
      httpAllowedHosts: options.httpAllowedHosts,
      podIp: options.podIp,
      podName: options.podName,
      tokenFile: options.tokenFile,
      secretsDir: options.secretsDir,
      ackTimeoutMs: options.ackTimeoutMs,
      resyncIntervalMs: options.resyncIntervalMs,
      queue: queueOptions(options),
      rolloutKey: options.rolloutKey,
      rolloutState: options.rolloutState,
      rolloutStateCache: options.rolloutStateCache,
      rolloutAws: { region: options.region, endpointUrl: options.endpointUrl },
      healthReportIntervalMs: options.healthReportIntervalMs,
    },
  );

  let signals = 0;
  let stopping: Promise<void> | null = null;
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: forcing exit");
      process.exit(1);
    }
    logger.info({ signal, drainMs: SHUTDOWN_DRAIN_MS }, "stopping");
    stopping = agent.stop(SHUTDOWN_DRAIN_MS).then(resolveStopped);
  };
  const onUsr2 = () => {
    logger.level = logger.level === "debug" ? options.logLevel : "debug";
    logger.warn({ level: logger.level }, "log level changed (SIGUSR2)");
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("SIGUSR2", onUsr2);
  try {
    try {
      await agent.start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.fatal({ code: err instanceof AgentError ? err.code : undefined }, `agent failed to start: ${message}`);
      io.stderr(`sfu-agent run: ${message}\n`);
      return exitCodeOf(err);
    }
    if (stopping === null && signals === 0) await stopped;
    else await stopping;
    return 0;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    process.off("SIGUSR2", onUsr2);
  }
}

function queueOptions(o: RunOptions) {
  if (o.topicArn === null && o.queueUrl === null) return null;
  return {
    ...(o.topicArn === null ? {} : { topicArn: o.topicArn }),
    ...(o.queueUrl === null ? {} : { queueUrl: o.queueUrl }),
    ...(o.region === null ? {} : { region: o.region }),
    ...(o.endpointUrl === null ? {} : { endpointUrl: o.endpointUrl }),
    ...(o.statusTopicArn === null ? {} : { statusTopicArn: o.statusTopicArn }),
    podName: o.podName,
    queuePrefix: o.queuePrefix,
    propagationTimeoutMs: o.propagationTimeoutMs,
  };
}
