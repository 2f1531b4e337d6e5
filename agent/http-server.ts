/**
 * The agent's HTTP server on `--http`: `GET /healthz` (alive), `GET /readyz`
 * (200 once a valid config is loaded and the push server listens, else 503),
 * `GET /metrics` (Prometheus text from the shared Registry), `GET /status`
 * (JSON, see status.ts). Read-only: any other method is 405, any other path
 * 404. None of them ever shows a credential.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { LifecycleError, type ListenError } from "./errors.ts";
import { listenOn } from "./listen.ts";
import type { AgentStatus } from "./status.ts";

/** Dependencies of {@link HttpServer}. */
export interface HttpServerDeps {
  logger: Logger;
  registry: Registry;
  /** The current /status document. */
  status: () => AgentStatus;
  /** Null when ready, else why not (shown in the 503 body). */
  notReadyReason: () => string | null;
}

/** Options of {@link HttpServer}. */
export interface HttpServerOptions {
  host: string;
  port: number;
}

/** The status/metrics HTTP server. */
export class HttpServer {
  readonly #deps: HttpServerDeps;
  readonly #opts: HttpServerOptions;
  readonly #server: Server;
  #state: "new" | "listening" | "stopped" = "new";

  constructor(deps: HttpServerDeps, options: HttpServerOptions) {
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new TypeError(`HttpServer: options.port must be 0..65535, got ${options.port}`);
    }
    this.#deps = deps;
    this.#opts = { ...options };
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        deps.logger.error({ err }, "http handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error\n");
      });
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  /** Starts listening; throws {@link ListenError} when the address is unavailable. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new LifecycleError(`HttpServer already ${this.#state}`);
    await listenOn(this.#server, this.#opts.host, this.#opts.port, "http server");
    this.#state = "listening";
    this.#deps.logger.info({ address: this.url }, "http server listening");
  }

  /** The bound address (after start). */
  address(): AddressInfo {
    const a = this.#server.address();
    if (a === null || typeof a === "string") throw new LifecycleError("HttpServer is not listening");
    return a;
  }

  /** `http://host:port` (after start). */
  get url(): string {
    const a = this.address();
    return `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops listening and closes idle and active connections. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state !== "listening") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopped";
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://agent").pathname;
    const routes = ["/healthz", "/readyz", "/metrics", "/status"];
    if (!routes.includes(path)) return send(res, 404, "text/plain", "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(res, 405, "text/plain", "method not allowed\n");
    }
    switch (path) {
      case "/healthz":
        return send(res, 200, "text/plain", "ok\n");
      case "/readyz": {
        const reason = this.#deps.notReadyReason();
        return reason === null
          ? send(res, 200, "text/plain", "ready\n")
          : send(res, 503, "text/plain", `not ready: ${reason}\n`);
      }
      case "/metrics":
        return send(res, 200, this.#deps.registry.contentType, await this.#deps.registry.metrics());
      default:
        return send(res, 200, "application/json", `${JSON.stringify(this.#deps.status(), null, 2)}\n`);
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
