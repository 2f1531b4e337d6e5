/**
 * The agent's HTTP server on `--http`: `/healthz`, `/readyz`, `/metrics` and
 * `/status` (what PROTOCOL.md
 * [section 5.1](../protocol/PROTOCOL.md#51-settling-what-the-agent-reports-as-applied)
 * says the agent reports), read-only, and only to a `Host` that names this
 * agent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { requestHost } from "../../protocol/request-target.ts";
import { listenOn } from "../shared/listen.ts";
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
  /** Further host names (or IPs) answered, e.g. a Service DNS name (`--http-allowed-hosts`). */
  allowedHosts?: readonly string[];
  /** The pod IP (env POD_IP), answered as a Host; null when unknown. */
  podIp?: string | null;
}

/** Extracts the host name of a `Host` header (lower case, no port, no brackets, no trailing dot); null when malformed. */
export function hostOfHeader(header: string): string | null {
  const h = header.trim().toLowerCase();
  const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(h) ?? /^([a-z0-9._-]+)(?::\d{1,5})?$/.exec(h);
  if (m === null) return null;
  return (m[1] as string).replace(/\.$/, "");
}

/** Whether `name` (from {@link hostOfHeader}) is a loopback name or address. */
export function isLoopbackName(name: string): boolean {
  return (
    name === "localhost" ||
    name.endsWith(".localhost") ||
    name === "::1" ||
    (isIP(name) === 4 && name.startsWith("127."))
  );
}

/** IPs the server is reachable at: the bound address, or every interface's when bound to a wildcard. */
function interfaceAddresses(bound: string): Set<string> {
  const out = new Set<string>();
  if (bound !== "0.0.0.0" && bound !== "::") {
    out.add(bound.toLowerCase());
    return out;
  }
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (bound === "0.0.0.0" && a.family !== "IPv4") continue;
      out.add(a.address.toLowerCase().replace(/%.*$/, ""));
    }
  }
  return out;
}

/**
 * The status/metrics HTTP server.
 *
 * The agent's HTTP server on `--http`: `GET /healthz` (alive), `GET /readyz`
 * (200 once a valid config is loaded and the push server listens, else 503),
 * `GET /metrics` (Prometheus text from the shared Registry), `GET /status`
 * (JSON, see status.ts). Read-only: any other method is 405, any other path
 * 404. None of them ever shows a credential.
 *
 * Host check (against DNS rebinding: a web page whose name an attacker
 * re-points at this pod's address would otherwise read `/status` through
 * the victim's browser): a request is answered only when its `Host` names
 * this agent: a loopback name (`localhost`, `*.localhost`, `127.0.0.0/8`,
 * `::1`), the pod IP (`POD_IP`), an IP of the listening interface (every
 * local interface when listening on `0.0.0.0`/`::`; this is what the
 * kubelet's probes and Prometheus send, `Host: <podIP>:<port>`), or a name
 * given with `--http-allowed-hosts`. Anything else gets 421 Misdirected
 * Request. A request without `Host` (HTTP/1.0; no browser sends one) passes.
 * An absolute-form target (`GET http://host/ HTTP/1.1`) must name the same
 * host as `Host` (else 400; protocol/request-target.ts), which is then
 * checked as above.
 */
export class HttpServer {
  readonly #deps: HttpServerDeps;
  readonly #opts: HttpServerOptions;
  readonly #server: Server;
  readonly #allowed: Set<string>;
  #interfaces = new Set<string>();
  #interfacesAt = 0;
  #state: "new" | "listening" | "stopped" = "new";

  constructor(deps: HttpServerDeps, options: HttpServerOptions) {
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new TypeError(`HttpServer: options.port must be 0..65535, got ${options.port}`);
    }
    this.#deps = deps;
    this.#opts = { ...options };
    this.#allowed = new Set(
      [...(options.allowedHosts ?? []), ...(options.podIp ? [options.podIp] : [])]
        .map((h) => hostOfHeader(h.includes(":") && !h.startsWith("[") && isIP(h) === 6 ? `[${h}]` : h))
        .filter((h): h is string => h !== null),
    );
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        deps.logger.error({ err }, "http handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error\n");
      });
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  /** Starts listening; throws an AgentError `LISTEN_FAILED` when the address is unavailable. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`HttpServer already ${this.#state}`);
    await listenOn(this.#server, this.#opts.host, this.#opts.port, "http server");
    this.#state = "listening";
    this.#refreshInterfaces();
    this.#deps.logger.info({ address: this.url, allowedHosts: [...this.#allowed] }, "http server listening");
  }

  /** The bound address (after start). */
  address(): AddressInfo {
    const a = this.#server.address();
    if (a === null || typeof a === "string") throw new Error("HttpServer is not listening");
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

  /** Whether the request's Host names this agent (see the module comment). */
  hostAllowed(header: string | undefined): boolean {
    if (header === undefined) return true;
    const name = hostOfHeader(header);
    if (name === null) return false;
    if (isLoopbackName(name) || this.#allowed.has(name) || this.#interfaces.has(name)) return true;
    // An address added since the last look (rare): look again, at most every 5 s.
    if (isIP(name) !== 0 && Date.now() - this.#interfacesAt > 5_000) {
      this.#refreshInterfaces();
      return this.#interfaces.has(name);
    }
    return false;
  }

  #refreshInterfaces(): void {
    this.#interfacesAt = Date.now();
    this.#interfaces = interfaceAddresses(this.address().address);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = requestHost(req.url, req.headers.host);
    if (!target.ok) {
      this.#deps.logger.debug({ reason: target.reason }, "refused a request with an ambiguous target");
      return send(res, target.status, "text/plain", `bad request: ${target.reason}\n`);
    }
    if (!this.hostAllowed(target.host)) {
      this.#deps.logger.debug({ host: String(req.headers.host).slice(0, 100) }, "refused a request for another Host");
      return send(
        res,
        421,
        "text/plain",
        "misdirected request: this Host is not served here (allowed: loopback names, the pod IP, this interface's IPs, --http-allowed-hosts)\n",
      );
    }
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
