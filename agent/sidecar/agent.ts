/**
 * The agent (`sfu-agent run`) as one long-running unit: store, status tracker, metrics, config
 * source, secret watch, the delivery core over one transport (WebSocket server, or HTTP pusher with
 * `push` set), HTTP server and the optional queue trigger, wired once; start and stop in that order
 * (docs/operating.md). `sfu-agent run` builds one from its options; tests start it in-process.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { formatProblem } from "../../protocol/config-loader.ts";
import { DEFAULT_SECRETS_DIR, readTokenFile } from "../../protocol/secret-paths.ts";
import { regionFromResource } from "../aws/aws-clients.ts";
import { RolloutStateStore } from "../aws/state-store.ts";
import type { ListenAddress } from "../shared/cli-values.ts";
import { AgentError } from "../shared/errors.ts";
import { type ConfigReading, ConfigSource, type ConfigSourceOptions } from "./config-source.ts";
import { Delivery, type NackRetryOptions } from "./delivery.ts";
import { HttpPusher } from "./http-pusher.ts";
import { HttpServer } from "./http-server.ts";
import { AgentMetrics } from "./metrics.ts";
import { PushServer } from "./push-server.ts";
import type { QueueTrigger, QueueTriggerOptions, startQueueTrigger } from "./queue/index.ts";
import { AgentRollout, type RolloutStateReader } from "./rollout/agent-rollout.ts";
import { registerRolloutMetrics } from "./rollout/metrics.ts";
import { SecretWatch } from "./secret-watch.ts";
import { SettlementEngine } from "./settlements.ts";
import { SnapshotStore } from "./snapshot-store.ts";
import { type AgentStatus, buildStatus } from "./status.ts";
import { StatusTracker } from "./status-tracker.ts";
import type { DeliveryCallbacks } from "./transport.ts";

/** Options of {@link Agent} (the subset of RunOptions it needs, plus test knobs). */
export interface AgentOptions {
  configDir: string;
  configKey: string;
  listen: ListenAddress;
  http: ListenAddress;
  podName: string;
  /**
   * HTTP push mode: POST configs to this URL (see http-pusher.ts); `listen`
   * is then unused. Null or omitted: WebSocket mode.
   */
  push?: string | null;
  /** HTTP push mode: retry backoff (default: HTTP_PUSHER_DEFAULTS); a test knob. */
  pushRetry?: { baseMs: number; maxMs: number };
  /** Re-send backoff of an APPLY_FAILED config (default: DELIVERY_DEFAULTS); a test knob. */
  nackRetry?: NackRetryOptions;
  /**
   * Host names (and IPs) the HTTP server answers besides loopback names, the
   * pod IP and the listening interface's IPs (`--http-allowed-hosts`).
   */
  httpAllowedHosts?: readonly string[];
  /** The pod IP (env POD_IP), answered as a Host; null or omitted: none besides the interface IPs. */
  podIp?: string | null;
  /** Token: the SFU must present it (WebSocket), or the agent sends it (HTTP push). */
  tokenFile: string | null;
  /** The one directory secret files may live under (default /etc/sfu/secrets); watched for rotations. */
  secretsDir?: string;
  ackTimeoutMs: number;
  resyncIntervalMs: number;
  /** Queue trigger options; null = watch-only. */
  queue: QueueTriggerOptions | null;
  /** Config source tuning (debounce, ENOENT retries); defaults otherwise. */
  source?: Pick<ConfigSourceOptions, "debounceMs" | "maxDebounceMs" | "notFoundRetries" | "notFoundRetryMs">;
  helloTimeoutMs?: number;
  /** Register prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
  /** File name of the rollout policy next to the config (`--rollout-key`, default `rollout.yaml`). */
  rolloutKey?: string;
  /**
   * `s3://bucket/key` of the rollout state (`--rollout-state`), read with the
   * queue's region and endpoint; null or omitted: no state (a mounted policy
   * then gates nothing: every config applies at once).
   */
  rolloutState?: string | null;
  /** Local file remembering the last state read (`--rollout-state-cache`); null or omitted: none. */
  rolloutStateCache?: string | null;
  /** AWS settings of the rollout state's S3 client (default: the queue options' region and endpoint). */
  rolloutAws?: {
    region?: string | null;
    endpointUrl?: string | null;
    credentials?: { accessKeyId: string; secretAccessKey: string };
  };
  /** Interval of call-health events while a rollout runs (`--health-report-interval`, default 10 s). */
  healthReportIntervalMs?: number;
  /** Longest wait for the first rollout state read at start (default 10 s); a test knob. */
  rolloutStartReadTimeoutMs?: number;
}

/** Dependencies of {@link Agent}. */
export interface AgentDeps {
  logger: Logger;
  clock: () => Date;
  /** Registry for the agent's metrics; a fresh one when omitted. */
  registry?: Registry;
  /** The queue module's entry point; required when `options.queue` is set. */
  startQueueTrigger?: typeof startQueueTrigger;
  /** The rollout state reader to use instead of one built from `options.rolloutState` (tests). */
  rolloutState?: RolloutStateReader | null;
}

/** The composed agent. */
export class Agent {
  readonly store: SnapshotStore;
  /** Per-pod status: the one source of /status and the metrics. */
  readonly tracker: StatusTracker;
  /** The settlement engine: the queue's reload events, or the desired versions in watch-only mode. */
  readonly settlements: SettlementEngine;
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  /** The rollout integration: what of the mounted config becomes desired, and the pod's stage. */
  readonly rollout: AgentRollout;
  readonly #deps: AgentDeps;
  readonly #opts: AgentOptions;
  readonly #source: ConfigSource;
  readonly #secrets: SecretWatch;
  /** The delivery core over the one transport chosen at start. */
  #delivery: Delivery | null = null;
  /** The HTTP transport's link detail for /status (HTTP push mode only). */
  #linkDetail: HttpPusher | null = null;
  #http: HttpServer | null = null;
  #queue: QueueTrigger | null = null;
  #unsubscribe: (() => void)[] = [];
  #warned = new Set<string>();
  /** Waiting for the next reading of the file (see #checkFile). */
  #readingWaiters: (() => void)[] = [];
  #state: "new" | "starting" | "running" | "stopped" = "new";

  constructor(deps: AgentDeps, options: AgentOptions) {
    if (options.queue !== null && deps.startQueueTrigger === undefined) {
      throw new TypeError("Agent: options.queue is set but deps.startQueueTrigger is missing");
    }
    this.#deps = deps;
    this.#opts = options;
    this.store = new SnapshotStore({ clock: deps.clock });
    this.tracker = new StatusTracker({ store: this.store, clock: deps.clock });
    this.settlements = new SettlementEngine(
      { tracker: this.tracker, clock: deps.clock },
      { watchDesired: options.queue === null },
    );
    const rolloutKey = options.rolloutKey ?? "rollout.yaml";
    this.rollout = new AgentRollout(
      {
        store: this.store,
        tracker: this.tracker,
        logger: deps.logger,
        clock: deps.clock,
        reader: deps.rolloutState !== undefined ? deps.rolloutState : rolloutReader(options),
      },
      {
        podName: options.podName,
        policyPath: join(options.configDir, rolloutKey),
        policyKey: rolloutKey,
        resyncIntervalMs: options.resyncIntervalMs,
        ...(options.rolloutStartReadTimeoutMs === undefined
          ? {}
          : { startReadTimeoutMs: options.rolloutStartReadTimeoutMs }),
      },
    );
    this.registry = deps.registry ?? new Registry();
    this.metrics = new AgentMetrics(this.registry, { defaultMetrics: options.defaultMetrics ?? true });
    registerRolloutMetrics(this.registry, this.rollout);
    this.#source = new ConfigSource(
      {
        logger: deps.logger.child({ component: "source" }),
        metrics: this.metrics,
        onReading: (r) => this.#onReading(r),
      },
      {
        dir: options.configDir,
        key: options.configKey,
        resyncIntervalMs: options.resyncIntervalMs,
        secretsDir: options.secretsDir ?? DEFAULT_SECRETS_DIR,
        ...options.source,
      },
    );
    this.#secrets = new SecretWatch(
      { logger: deps.logger.child({ component: "secrets" }), store: this.store },
      { secretsDir: options.secretsDir ?? DEFAULT_SECRETS_DIR, resyncIntervalMs: options.resyncIntervalMs },
    );
  }

  /** The secret-file watch (for tests that trigger a check). */
  get secrets(): SecretWatch {
    return this.#secrets;
  }

  /** Starts every part; on failure stops what started and rethrows (an AgentError: LISTEN_FAILED, TOKEN_FILE, ...). */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`Agent already ${this.#state}`);
    this.#state = "starting";
    const { logger } = this.#deps;
    try {
      const token = this.#opts.tokenFile === null ? null : await readToken(this.#opts.tokenFile);
      this.#unsubscribe.push(this.metrics.follow(this.tracker));
      this.settlements.start();
      await this.rollout.start();
      await this.#source.start();
      await this.#secrets.start();
      const transport = this.#transport(token);
      // Status and metrics observe the core through this one object.
      const callbacks: DeliveryCallbacks = {
        onEvent: (e) => {
          this.tracker.onDelivery(e);
          this.metrics.onDelivery(e);
        },
      };
      this.metrics.initPushOutcomes(transport.kind);
      this.#delivery = new Delivery(
        { logger, store: this.store, transport, callbacks, secrets: this.#secrets },
        { ackTimeoutMs: this.#opts.ackTimeoutMs, nackRetry: this.#opts.nackRetry ?? null },
      );
      await this.#delivery.start();
      this.#http = new HttpServer(
        {
          logger,
          registry: this.registry,
          status: () => this.status(),
          notReadyReason: () => this.notReadyReason(),
        },
        {
          ...this.#opts.http,
          allowedHosts: this.#opts.httpAllowedHosts ?? [],
          podIp: this.#opts.podIp ?? null,
        },
      );
      await this.#http.start();
      if (this.#opts.queue !== null && this.#deps.startQueueTrigger) {
        this.#queue = await this.#deps.startQueueTrigger({
          store: this.settlements,
          checkFile: () => this.#checkFile(),
          logger,
          registry: this.registry,
          options: this.#opts.queue,
          health: () => this.tracker.health(),
          ...(this.#opts.healthReportIntervalMs === undefined
            ? {}
            : { healthReportIntervalMs: this.#opts.healthReportIntervalMs }),
          // Without --rollout-state a rollout event is settled like a plain one.
          ...(this.rollout.enabled ? { onRolloutEvent: (rollout) => this.rollout.onRolloutEvent(rollout) } : {}),
        });
        this.rollout.attachHealth(this.#queue.health);
      }
      this.#state = "running";
      // The pod name is in the log line already when the logger has it bound (`sfu-agent run` does).
      const bound = logger.bindings() as Record<string, unknown>;
      logger.info(
        {
          ...(bound["pod"] === undefined ? { pod: this.#opts.podName } : {}),
          push: this.pushUrl,
          http: this.#http.url,
          queue: this.status().queue.mode,
        },
        "agent started",
      );
    } catch (err) {
      await this.stop(0);
      throw err;
    }
  }

  /**
   * Stops every part (see the module comment for the order); an unanswered
   * push gets up to `drainMs` to be answered. Idempotent.
   */
  async stop(drainMs = 5_000): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    await this.#source.stop();
    await this.#secrets.stop();
    await this.rollout.stop();
    try {
      await this.#queue?.stop();
    } catch (err) {
      this.#deps.logger.warn({ err }, "queue trigger did not stop cleanly");
    }
    await this.#delivery?.stop(drainMs);
    await this.#http?.stop();
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    this.settlements.stop();
    this.tracker.close();
    this.#deps.logger.info("agent stopped");
  }

  /** `ws://` URL of the push server, or in HTTP push mode the URL pushed to (without query); after start. */
  get pushUrl(): string {
    if (!this.#delivery) throw new Error("Agent not started");
    return this.#delivery.transport.url;
  }

  /** `http://` URL of the HTTP server (after start). */
  get httpUrl(): string {
    if (!this.#http) throw new Error("Agent not started");
    return this.#http.url;
  }

  /** The config source (for tests that trigger a re-read). */
  get source(): ConfigSource {
    return this.#source;
  }

  /** The /status document. */
  status(): AgentStatus {
    return buildStatus({
      tracker: this.tracker,
      link: this.#linkDetail?.status() ?? null,
      pod: this.#opts.podName,
      path: this.#source.path,
      queue: this.#queue?.status() ?? null,
      rollout: this.rollout.status(),
    });
  }

  /**
   * Null when ready (a valid config loaded and the push server listening, or
   * the HTTP pusher running), else why not. Never depends on S3: an agent that
   * holds for want of a readable rollout state (a new pod during an outage)
   * has a valid config loaded and does what it must (push nothing it cannot
   * vouch for), so it is ready and its startup probe passes; /status
   * `rollout` and `sfu_agent_rollout_holding` say why, and the SFU, with no
   * config applied, stays unready (docs/rollout-faults.md).
   */
  notReadyReason(): string | null {
    if (this.store.desired() === null && !this.rollout.holdingWithoutState()) {
      // The SFU runs what it applied before this agent (re)started: the agent vouches for it and keeps it.
      if (this.store.applied() !== null && this.store.fileHash() !== null && this.rollout.stage() === "held")
        return null;
      if (this.store.fileHash() !== null && this.rollout.stage() === "held") {
        return `holding: ${this.rollout.status()?.reason ?? "waiting for the rollout state"}`;
      }
      return `no valid config loaded from ${this.#source.path}`;
    }
    const transport = this.#delivery?.transport;
    if (transport === undefined || !transport.ready) {
      return this.#opts.push ? "HTTP pusher not running" : "push server not listening";
    }
    return null;
  }

  /** The one transport: the HTTP pusher when `push` is set, else the WebSocket push server. */
  #transport(token: string | null): PushServer | HttpPusher {
    const { logger } = this.#deps;
    const o = this.#opts;
    if (o.push) {
      this.#linkDetail = new HttpPusher(
        { logger, metrics: this.metrics, clock: this.#deps.clock },
        {
          url: o.push,
          token,
          ackTimeoutMs: o.ackTimeoutMs,
          resyncIntervalMs: o.resyncIntervalMs,
          ...(o.pushRetry === undefined ? {} : { retryBaseMs: o.pushRetry.baseMs, retryMaxMs: o.pushRetry.maxMs }),
        },
      );
      return this.#linkDetail;
    }
    return new PushServer(
      { logger, metrics: this.metrics },
      {
        host: o.listen.host,
        port: o.listen.port,
        token,
        ...(o.helloTimeoutMs === undefined ? {} : { helloTimeoutMs: o.helloTimeoutMs }),
      },
    );
  }

  /**
   * Re-reads the config file now, in full (as the resync timer does, and
   * counted as one), and resolves once the next reading is taken in (or
   * after 5 s).
   */
  #checkFile(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, 5_000);
      t.unref();
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#readingWaiters.push(done);
      this.#source.trigger("resync");
    });
  }

  #onReading(r: ConfigReading): void {
    try {
      this.#takeReading(r);
    } finally {
      const waiters = this.#readingWaiters;
      this.#readingWaiters = [];
      for (const w of waiters) w();
    }
  }

  #takeReading(r: ConfigReading): void {
    const log = this.#deps.logger;
    if (r.ok) {
      const { changed, version } = this.rollout.onValidReading(r.config, r.hash);
      if (changed) {
        const desired = this.store.desired()?.hash ?? r.hash;
        log.info(
          { version, hash: desired, trigger: r.trigger, ...(desired === r.hash ? {} : { mounted: r.hash }) },
          "config changed",
        );
      }
      if (!this.#warned.has(r.hash)) {
        if (this.#warned.size >= 100) this.#warned.clear();
        this.#warned.add(r.hash);
        for (const w of r.warnings) log.warn({ hash: r.hash }, formatProblem(this.#opts.configKey, w));
      }
      return;
    }
    const fresh = this.store.recordInvalid(r.rawHash, { code: r.code, message: r.message });
    if (fresh) {
      log.error(
        { code: r.code, hash: r.rawHash, trigger: r.trigger, problems: r.problems.length },
        `config refused; the last valid config stays: ${r.message}`,
      );
    }
  }
}

/** The S3 rollout state reader of `options.rolloutState`, or null without one. */
function rolloutReader(options: AgentOptions): RolloutStateReader | null {
  if (!options.rolloutState) return null;
  const aws = options.rolloutAws ?? {};
  const q = options.queue;
  const region = aws.region ?? q?.region ?? regionFromResource(q?.topicArn ?? q?.queueUrl ?? null);
  const endpointUrl = aws.endpointUrl ?? options.queue?.endpointUrl ?? null;
  return new RolloutStateStore({
    url: options.rolloutState,
    cacheFile: options.rolloutStateCache ?? null,
    secrets: { secretsDir: options.secretsDir ?? DEFAULT_SECRETS_DIR, checkFiles: true },
    ...(region ? { region } : {}),
    ...(endpointUrl ? { endpointUrl } : {}),
    ...(aws.credentials ? { credentials: aws.credentials } : {}),
  });
}

/** Reads a shared token: trimmed, non-empty. Throws an {@link AgentError} `TOKEN_FILE`. */
export async function readToken(path: string): Promise<string> {
  const r = await readTokenFile(path);
  if (!r.ok) throw new AgentError("TOKEN_FILE", `--token-file ${r.message}`);
  return r.value;
}
