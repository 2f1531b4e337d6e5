/**
 * The agent as one long-running unit: store, metrics, config source, push
 * server (WebSocket, the SFU dials in) or HTTP pusher (`push` set: the agent
 * POSTs to the SFU), HTTP server and (optionally) the SQS trigger, wired
 * together.
 * `sfu-agent run` builds one from its options; tests start it in-process.
 *
 * Start order: read the token file, store, config source (first read), push
 * server or HTTP pusher, HTTP server, queue trigger. Stop order (SIGTERM): stop watching,
 * stop the queue trigger, stop accepting SFU connections and let an
 * unanswered push finish within `drainMs`, close the SFU connection, stop HTTP.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { formatProblem } from "../protocol/config-loader.ts";
import { type ConfigReading, ConfigSource, type ConfigSourceOptions } from "./config-source.ts";
import { LifecycleError, TokenFileError } from "./errors.ts";
import { HttpPusher } from "./http-pusher.ts";
import { HttpServer } from "./http-server.ts";
import { AgentMetrics } from "./metrics.ts";
import type { ListenAddress } from "./options.ts";
import { PushServer } from "./push-server.ts";
import type { QueueTrigger, QueueTriggerOptions, startQueueTrigger } from "./queue/index.ts";
import { recordWatchSettlements } from "./settlement-recorder.ts";
import { SnapshotStore } from "./snapshot-store.ts";
import { type AgentStatus, buildStatus } from "./status.ts";

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
  /** HTTP push mode: retry backoff (default 500 ms doubling to 30 s); a test knob. */
  pushRetry?: { baseMs: number; maxMs: number };
  /** Token: the SFU must present it (WebSocket), or the agent sends it (HTTP push). */
  tokenFile: string | null;
  ackTimeoutMs: number;
  resyncIntervalMs: number;
  /** Queue trigger options; null = watch-only. */
  queue: QueueTriggerOptions | null;
  /** Config source tuning (debounce, ENOENT retries); defaults otherwise. */
  source?: Pick<ConfigSourceOptions, "debounceMs" | "maxDebounceMs" | "notFoundRetries" | "notFoundRetryMs">;
  helloTimeoutMs?: number;
  /** Register prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
}

/** Dependencies of {@link Agent}. */
export interface AgentDeps {
  logger: Logger;
  clock: () => Date;
  /** Registry for the agent's metrics; a fresh one when omitted. */
  registry?: Registry;
  /** The queue module's entry point; required when `options.queue` is set. */
  startQueueTrigger?: typeof startQueueTrigger;
}

/** The composed agent. */
export class Agent {
  readonly store: SnapshotStore;
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  readonly #deps: AgentDeps;
  readonly #opts: AgentOptions;
  readonly #source: ConfigSource;
  #push: PushServer | null = null;
  #httpPush: HttpPusher | null = null;
  #http: HttpServer | null = null;
  #queue: QueueTrigger | null = null;
  #unsubscribe: (() => void)[] = [];
  #warned = new Set<string>();
  #state: "new" | "starting" | "running" | "stopped" = "new";

  constructor(deps: AgentDeps, options: AgentOptions) {
    if (options.queue !== null && deps.startQueueTrigger === undefined) {
      throw new TypeError("Agent: options.queue is set but deps.startQueueTrigger is missing");
    }
    this.#deps = deps;
    this.#opts = options;
    this.store = new SnapshotStore({ clock: deps.clock });
    this.registry = deps.registry ?? new Registry();
    this.metrics = new AgentMetrics(this.registry, { defaultMetrics: options.defaultMetrics ?? true });
    this.#source = new ConfigSource(
      {
        logger: deps.logger.child({ component: "source" }),
        metrics: this.metrics,
        onReading: (r) => this.#onReading(r),
      },
      { dir: options.configDir, key: options.configKey, resyncIntervalMs: options.resyncIntervalMs, ...options.source },
    );
  }

  /** Starts every part; on failure stops what started and rethrows (ListenError, TokenFileError, ...). */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new LifecycleError(`Agent already ${this.#state}`);
    this.#state = "starting";
    const { logger } = this.#deps;
    try {
      const token = this.#opts.tokenFile === null ? null : await readToken(this.#opts.tokenFile);
      this.#unsubscribe.push(this.metrics.follow(this.store));
      if (this.#opts.queue === null) this.#unsubscribe.push(recordWatchSettlements(this.store, this.#deps.clock));
      this.#unsubscribe.push(this.store.subscribe((e) => this.#logEvent(e)));
      await this.#source.start();
      if (this.#opts.push) {
        this.#httpPush = new HttpPusher(
          { logger, store: this.store, metrics: this.metrics, clock: this.#deps.clock },
          {
            url: this.#opts.push,
            token,
            ackTimeoutMs: this.#opts.ackTimeoutMs,
            resyncIntervalMs: this.#opts.resyncIntervalMs,
            ...(this.#opts.pushRetry === undefined
              ? {}
              : { retryBaseMs: this.#opts.pushRetry.baseMs, retryMaxMs: this.#opts.pushRetry.maxMs }),
          },
        );
        await this.#httpPush.start();
      } else {
        this.#push = new PushServer(
          { logger, store: this.store, metrics: this.metrics },
          {
            host: this.#opts.listen.host,
            port: this.#opts.listen.port,
            token,
            ackTimeoutMs: this.#opts.ackTimeoutMs,
            ...(this.#opts.helloTimeoutMs === undefined ? {} : { helloTimeoutMs: this.#opts.helloTimeoutMs }),
          },
        );
        await this.#push.start();
      }
      this.#http = new HttpServer(
        {
          logger,
          registry: this.registry,
          status: () => this.status(),
          notReadyReason: () => this.notReadyReason(),
        },
        this.#opts.http,
      );
      await this.#http.start();
      if (this.#opts.queue !== null && this.#deps.startQueueTrigger) {
        this.#queue = await this.#deps.startQueueTrigger({
          store: this.store,
          logger: logger.child({ component: "queue" }),
          registry: this.registry,
          options: this.#opts.queue,
        });
      }
      this.#state = "running";
      logger.info(
        { pod: this.#opts.podName, push: this.pushUrl, http: this.#http.url, queue: this.status().queue.mode },
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
    try {
      await this.#queue?.stop();
    } catch (err) {
      this.#deps.logger.warn({ err }, "queue trigger did not stop cleanly");
    }
    await this.#push?.stop(drainMs);
    await this.#httpPush?.stop(drainMs);
    await this.#http?.stop();
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    this.#deps.logger.info("agent stopped");
  }

  /** `ws://` URL of the push server, or in HTTP push mode the URL pushed to (without query); after start. */
  get pushUrl(): string {
    if (this.#httpPush) return this.#httpPush.url;
    if (!this.#push) throw new LifecycleError("Agent not started");
    return this.#push.url;
  }

  /** `http://` URL of the HTTP server (after start). */
  get httpUrl(): string {
    if (!this.#http) throw new LifecycleError("Agent not started");
    return this.#http.url;
  }

  /** The config source (for tests that trigger a re-read). */
  get source(): ConfigSource {
    return this.#source;
  }

  /** The /status document. */
  status(): AgentStatus {
    return buildStatus({
      store: this.store,
      pod: this.#opts.podName,
      path: this.#source.path,
      queue: this.#queue?.status() ?? null,
      ...(this.#httpPush ? { sfu: this.#httpPush.status() } : {}),
    });
  }

  /** Null when ready (a valid config loaded and the push server listening, or the HTTP pusher running), else why not. */
  notReadyReason(): string | null {
    if (this.store.desired() === null) return `no valid config loaded from ${this.#source.path}`;
    if (this.#opts.push) return this.#httpPush?.running ? null : "HTTP pusher not running";
    if (!this.#push?.listening) return "push server not listening";
    return null;
  }

  #onReading(r: ConfigReading): void {
    const log = this.#deps.logger;
    if (r.ok) {
      const { changed, version } = this.store.offerValid(r.config, r.hash);
      if (changed) log.info({ version, hash: r.hash, trigger: r.trigger }, "config changed");
      if (!this.#warned.has(r.hash)) {
        if (this.#warned.size >= 100) this.#warned.clear();
        this.#warned.add(r.hash);
        for (const w of r.warnings) log.warn({ hash: r.hash }, formatProblem(this.#opts.configKey, w));
      }
      this.metrics.refresh(this.store);
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

  #logEvent(e: Parameters<Parameters<SnapshotStore["subscribe"]>[0]>[0]): void {
    if (e.type === "applied" || e.type === "desired") this.metrics.refresh(this.store);
  }
}

/** Reads a shared token: trimmed, non-empty. Throws {@link TokenFileError}. */
export async function readToken(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new TokenFileError(`cannot read --token-file ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  const token = text.trim();
  if (token.length === 0) throw new TokenFileError(`--token-file ${path} is empty`);
  return token;
}
