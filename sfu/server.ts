/**
 * `sfu-server` as a library: wires the config state, the applier, the agent
 * client (or a standalone config file), rooms, signalling and HTTP.
 *
 * HTTP (one port): `/` demo page, `/app.js`, `/ws` signalling, `/healthz`,
 * `/readyz` (a config applied and serving), `/metrics`, `/status`
 * (`{applied, rooms, participants, agent, health}`; never a credential;
 * `health` holds the call-health counters of the applied hash, see
 * call-health.ts).
 *
 * Standalone (`configFile`), a config naming secret files gets a watch of
 * the secrets directory (secret-file-watch.ts): a rotated Secret is picked up
 * as an agent's `secrets-reload` would be.
 *
 * Port: `port` (the `--port` override) when given, else `server.port` of the
 * first applied config; with an agent and no override the HTTP server starts
 * once the first config arrives.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import {
  DEFAULT_SECRETS_DIR,
  formatProblem,
  type HealthCounters,
  loadConfigFile,
  requestHost,
  secretFileRefs,
} from "../protocol/index.ts";
import { CallHealth } from "./call-health.ts";
import { ConfigApplier } from "./config-applier.ts";
import { ConfigClient } from "./config-client.ts";
import { ConfigState } from "./config-state.ts";
import { InvalidOptionsError, SfuError } from "./errors.ts";
import { createSfuMetrics, type SfuMetrics } from "./metrics.ts";
import { RoomRegistry } from "./room.ts";
import { SecretFileWatch, type SecretFileWatchOptions } from "./secret-file-watch.ts";
import { SignallingServer } from "./signalling.ts";

/** Options of {@link SfuServer}. Exactly one of `agentUrl` and `configFile`. */
export interface SfuServerOptions {
  logger: Logger;
  /** Agent URL (`--agent`). */
  agentUrl?: string | null;
  /** Standalone config file (`--config`). */
  configFile?: string | null;
  /** `--token-file` for the agent connection. */
  tokenFile?: string | null;
  /** `--secrets-dir`: the one directory TURN secret files are read from (default `/etc/sfu/secrets`). */
  secretsDir?: string;
  /** `--port` override (0 = any free port). */
  port?: number | null;
  /** Interface the HTTP server listens on (default `0.0.0.0`). */
  host?: string;
  /** Directory of the demo page (default: sfu/web next to this module). */
  webRoot?: string;
  /** Agent reconnect backoff (ms); see ConfigClient. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per-offer answer timeout (ms). */
  answerTimeoutMs?: number;
  /** How long a peer connection may take to connect after the first answer before it counts as an ICE failure (ms). */
  iceConnectTimeoutMs?: number;
  /** Interval of `health` frames to the agent while the counters change (ms; default 5 s). */
  healthIntervalMs?: number;
  /** Standalone mode: timings of the secrets-directory watch (see secret-file-watch.ts). */
  secretWatch?: Omit<SecretFileWatchOptions, "secretsDir">;
}

function defaultWebRoot(): string {
  const candidates = [new URL("./web/", import.meta.url), new URL("../../sfu/web/", import.meta.url)];
  for (const c of candidates) if (existsSync(fileURLToPath(c))) return fileURLToPath(c);
  return fileURLToPath(candidates[0]!);
}

const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
};

/** The running SFU. start() / stop(). */
export class SfuServer {
  readonly state = new ConfigState();
  /** Call-health counters of the applied config hash. */
  readonly health: CallHealth;
  readonly rooms: RoomRegistry;
  readonly signalling: SignallingServer;
  readonly applier: ConfigApplier;
  readonly metrics: SfuMetrics;
  readonly configClient: ConfigClient | null;
  readonly #o: SfuServerOptions;
  readonly #log: Logger;
  readonly #http: Server;
  readonly #webRoot: string;
  #listening = false;
  #stopped = false;
  #unsubscribe: (() => void) | undefined;
  #secretWatch: SecretFileWatch | null = null;

  constructor(options: SfuServerOptions) {
    const hasAgent = typeof options.agentUrl === "string" && options.agentUrl.length > 0;
    const hasFile = typeof options.configFile === "string" && options.configFile.length > 0;
    if (hasAgent === hasFile) throw new InvalidOptionsError("SfuServer: give exactly one of agentUrl and configFile");
    if (options.port != null && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) {
      throw new InvalidOptionsError(`SfuServer: port must be an integer 0..65535, got ${options.port}`);
    }
    this.#o = options;
    this.#log = options.logger;
    this.#webRoot = options.webRoot ?? defaultWebRoot();
    this.applier = new ConfigApplier({
      state: this.state,
      logger: options.logger,
      portOverride: options.port ?? null,
      secretsDir: options.secretsDir ?? DEFAULT_SECRETS_DIR,
    });
    this.health = new CallHealth(this.state);
    this.rooms = new RoomRegistry({
      logger: options.logger,
      state: this.state,
      health: this.health,
      ...(options.iceConnectTimeoutMs !== undefined ? { iceConnectTimeoutMs: options.iceConnectTimeoutMs } : {}),
      ...(options.answerTimeoutMs !== undefined ? { answerTimeoutMs: options.answerTimeoutMs } : {}),
    });
    this.signalling = new SignallingServer({
      logger: options.logger,
      rooms: this.rooms,
      state: this.state,
      onRefused: (reason) => this.metrics.signallingRefused.inc({ reason }),
    });
    this.configClient = hasAgent
      ? new ConfigClient({
          url: options.agentUrl as string,
          logger: options.logger,
          applier: this.applier,
          state: this.state,
          tokenFile: options.tokenFile ?? null,
          health: this.health,
          ...(options.healthIntervalMs !== undefined ? { healthIntervalMs: options.healthIntervalMs } : {}),
          ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
          ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
          onOutcome: (outcome, code) => this.metrics.configApplies.inc({ outcome, code: code ?? "" }),
          onSecretsReload: (outcome) => this.metrics.secretsReloads.inc({ outcome }),
        })
      : null;
    this.metrics = createSfuMetrics({
      state: this.state,
      rooms: this.rooms,
      signallingConnections: () => this.signalling.connections,
      agentConnected: () => this.configClient?.connected ?? null,
      health: this.health,
    });
    this.#http = createServer((req, res) => {
      this.#route(req, res).catch((err) => {
        this.#log.error({ err }, "HTTP handler failed");
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.#http.on("upgrade", (req, socket, head) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      if (path === "/ws") this.signalling.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
  }

  /** True once a config is applied and HTTP is listening. */
  get ready(): boolean {
    return this.#listening && this.state.current !== null && !this.#stopped;
  }

  /** The bound HTTP port, or null before listening. */
  get port(): number | null {
    const a = this.#http.address() as AddressInfo | null;
    return a ? a.port : null;
  }

  /**
   * Starts. Standalone: loads the file (throws SfuError CONFIG_REQUIRED with
   * every problem when invalid) and listens. With an agent: starts dialing;
   * listens at once when a port override is given, else after the first config.
   */
  async start(): Promise<void> {
    this.signalling.start();
    if (this.#o.configFile) {
      // Secret files are read (and their failures reported) by the applier below, as for a pushed config.
      const loaded = await loadConfigFile(this.#o.configFile, {
        checkFiles: false,
        secretsDir: this.#o.secretsDir ?? DEFAULT_SECRETS_DIR,
      });
      if (!loaded.ok) {
        const lines = loaded.problems.map((p) => formatProblem(loaded.source, p)).join("\n");
        throw new SfuError("CONFIG_REQUIRED", `config file refused (${loaded.code}):\n${lines}`);
      }
      const outcome = await this.applier.apply({
        version: 1,
        hash: loaded.hash,
        revision: null,
        schemaVersion: loaded.config.schemaVersion,
        config: loaded.config,
      });
      if (!outcome.ok)
        throw new SfuError("CONFIG_REQUIRED", `config not applied: ${outcome.error.code}: ${outcome.error.message}`);
      // No agent sends secrets-reload here: watch the secrets directory ourselves.
      if (secretFileRefs(loaded.config).length > 0 && !this.#stopped) {
        this.#secretWatch = new SecretFileWatch(
          {
            logger: this.#log,
            applier: this.applier,
            state: this.state,
            onReload: (o) => this.metrics.secretsReloads.inc({ outcome: o }),
          },
          { ...this.#o.secretWatch, secretsDir: this.#o.secretsDir ?? DEFAULT_SECRETS_DIR },
        );
        await this.#secretWatch.start();
      }
      await this.#listen(this.#o.port ?? outcome.snapshot.config.server.port);
      return;
    }
    if (this.#o.port != null) {
      await this.#listen(this.#o.port);
    } else {
      this.#unsubscribe = this.state.onChange((next, previous) => {
        if (previous === null) {
          this.#listen(next.config.server.port).catch((err) => {
            this.#log.fatal({ err }, "cannot listen on server.port");
            process.emitWarning(`sfu-server: cannot listen on ${next.config.server.port}`);
          });
        }
      });
    }
    this.configClient?.start();
  }

  async #listen(port: number): Promise<void> {
    if (this.#listening || this.#stopped) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new SfuError("LISTEN_FAILED", `cannot listen on ${port}: ${err.message}`, { cause: err }));
      this.#http.once("error", onError);
      this.#http.listen(port, this.#o.host ?? "0.0.0.0", () => {
        this.#http.off("error", onError);
        resolve();
      });
    });
    this.#listening = true;
    this.#log.info({ port: this.port, host: this.#o.host ?? "0.0.0.0" }, "SFU listening");
  }

  /** `/status` body. */
  status(): {
    applied: { version: number; hash: string } | null;
    rooms: number;
    participants: number;
    agent: { connected: boolean } | null;
    health: HealthCounters | null;
  } {
    return {
      applied: this.state.applied,
      rooms: this.rooms.rooms.size,
      participants: this.rooms.participantCount,
      agent: this.configClient ? { connected: this.configClient.connected } : null,
      health: this.health.snapshot(),
    };
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = requestHost(req.url, req.headers.host);
    if (!target.ok) {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8" }).end(`${target.reason}\n`);
      return;
    }
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const json = (code: number, body: unknown) => {
      res
        .writeHead(code, { "content-type": "application/json", "cache-control": "no-store" })
        .end(JSON.stringify(body));
    };
    switch (path) {
      case "/healthz":
        return json(200, { ok: true });
      case "/readyz":
        return this.ready ? json(200, { ready: true }) : json(503, { ready: false, reason: "no config applied yet" });
      case "/status":
        return json(200, this.status());
      case "/metrics": {
        const body = await this.metrics.registry.metrics();
        res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(body);
        return;
      }
    }
    const file = STATIC[path];
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const body = await readFile(`${this.#webRoot}/${file.file}`);
    res.writeHead(200, { "content-type": file.type, "cache-control": "no-cache" }).end(body);
  }

  /** Stops the agent client, closes every session and the HTTP server. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unsubscribe?.();
    await this.#secretWatch?.stop();
    await this.signalling.stop(); // first: refuses new sockets while the rest shuts down
    await this.configClient?.stop();
    await this.rooms.stop();
    this.health.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => (this.#listening ? this.#http.close(() => resolve()) : resolve()));
  }
}
