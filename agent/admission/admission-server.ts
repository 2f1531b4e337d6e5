/**
 * The HTTPS server of `sfu-agent admission`: `POST /validate` judges an
 * AdmissionReview with the agent's own loader (the config of PROTOCOL.md
 * [section 13](../../protocol/PROTOCOL.md#13-config-schema-v1-reference)),
 * bounded for any client.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { parseBoundedJson } from "../../protocol/bounded-json.ts";
import { listenOn } from "../shared/listen.ts";
import { CertificateReloader } from "./certificate-reloader.ts";
import type { AdmissionMetrics, ReviewMetricResult } from "./metrics.ts";
import { type AdmissionReviewReply, type ReviewOptions, reviewAdmission } from "./review.ts";

/** Default {@link AdmissionServerOptions.maxBodyBytes}: an UPDATE carries the object and the old one, each up to 1 MiB of data. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Default {@link AdmissionServerOptions.requestTimeoutMs}: under the shipped webhook's `timeoutSeconds: 5`. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 4000;
/** Default {@link AdmissionServerOptions.maxInFlight}. */
export const DEFAULT_MAX_IN_FLIGHT = 8;

/** Dependencies of {@link AdmissionServer}. */
export interface AdmissionServerDeps {
  logger: Logger;
  registry: Registry;
  metrics: AdmissionMetrics;
  /** Monotonic milliseconds (for latency); `performance.now` in production. */
  now: () => number;
}

/** Options of {@link AdmissionServer}. */
export interface AdmissionServerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  review: ReviewOptions;
  maxBodyBytes?: number;
  requestTimeoutMs?: number;
  maxInFlight?: number;
  /** Certificate poll interval (certificate-reloader.ts). */
  tlsPollIntervalMs?: number;
}

/**
 * The webhook's HTTPS server; a start/stop pair.
 *
 * The HTTPS server of `sfu-agent admission`: `POST /validate` takes an
 * AdmissionReview (`admission.k8s.io/v1`, `Content-Type: application/json`)
 * and answers with the verdict of review.ts; `GET /healthz` (alive),
 * `GET /readyz` (200 while serving, 503 once stopping), `GET /metrics`
 * (Prometheus text). Any other path is 404, another method 405.
 *
 * Bounded for any client: a request body is counted while it streams in and
 * refused (413) the moment it passes `maxBodyBytes`; a body declared larger
 * is refused without a byte kept (refusals are sent once the client has
 * sent its body, discarded); at most `maxInFlight` reviews are read at once
 * (more: 503) and one is judged at a time, so memory stays under
 * `maxInFlight * maxBodyBytes` plus one load's own bounds; each request has a deadline
 * (`requestTimeoutMs`, set below the webhook's `timeoutSeconds`): a client
 * still sending the body then gets 408 and is disconnected (slowloris), and
 * a review still running is answered `allowed: false` (fail closed) with a
 * message saying so. The TLS handshake and the headers have the same
 * deadline. Errors never carry a stack trace or a config value.
 *
 * The serving certificate is reloaded when its files change
 * (certificate-reloader.ts) with `setSecureContext`: no restart, no dropped
 * connection.
 */
export class AdmissionServer {
  readonly #deps: AdmissionServerDeps;
  readonly #opts: Required<Omit<AdmissionServerOptions, "tlsPollIntervalMs">> & { tlsPollIntervalMs?: number };
  #server: Server | null = null;
  #reloader: CertificateReloader | null = null;
  #inFlight = 0;
  #stopping = false;
  /** The tail of the review queue: reviews are judged one at a time. */
  #judging: Promise<unknown> = Promise.resolve();

  constructor(deps: AdmissionServerDeps, options: AdmissionServerOptions) {
    this.#deps = deps;
    this.#opts = {
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      maxInFlight: DEFAULT_MAX_IN_FLIGHT,
      ...options,
    };
    for (const k of ["maxBodyBytes", "requestTimeoutMs", "maxInFlight"] as const) {
      const v = this.#opts[k];
      if (!Number.isInteger(v) || v <= 0) throw new RangeError(`AdmissionServer: ${k} must be a positive integer`);
    }
  }

  /** Loads the certificate (AgentError `TLS_FILES` when it does not load) and listens (`LISTEN_FAILED`). */
  async start(): Promise<void> {
    if (this.#server !== null) throw new Error("AdmissionServer: already started");
    const reloader = new CertificateReloader(
      {
        logger: this.#deps.logger.child({ component: "tls" }),
        metrics: this.#deps.metrics,
        onChange: (pair) => this.#server?.setSecureContext(pair),
      },
      {
        certFile: this.#opts.certFile,
        keyFile: this.#opts.keyFile,
        ...(this.#opts.tlsPollIntervalMs === undefined ? {} : { pollIntervalMs: this.#opts.tlsPollIntervalMs }),
      },
    );
    const pair = reloader.start();
    const timeout = this.#opts.requestTimeoutMs;
    const server = createServer(
      {
        ...pair,
        handshakeTimeout: timeout,
        requestTimeout: timeout,
        headersTimeout: timeout,
        keepAliveTimeout: 5000,
        // How often Node checks the request/headers deadlines (default 30 s: far too coarse).
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeout / 4))),
        maxHeaderSize: 16 * 1024,
      },
      (req, res) => this.#handle(req, res),
    );
    server.on("tlsClientError", () => {}); // a failed handshake concerns that client only
    server.on("clientError", (_err, socket) => socket.destroy());
    this.#server = server;
    this.#reloader = reloader;
    try {
      await listenOn(
        server as unknown as import("node:http").Server,
        this.#opts.host,
        this.#opts.port,
        "admission server",
      );
    } catch (err) {
      reloader.stop();
      this.#server = null;
      this.#reloader = null;
      throw err;
    }
    this.#deps.logger.info({ address: this.address() }, "admission webhook listening");
  }

  /** The bound address (after start). */
  address(): { host: string; port: number } {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error("AdmissionServer: not listening");
    return { host: a.address, port: a.port };
  }

  /** Reads the certificate files now (tests; the reloader does this by itself on a change). */
  checkCertificate(): boolean {
    return this.#reloader?.check() ?? false;
  }

  /** Stops accepting, lets answered requests finish, closes idle connections. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#stopping = true;
    this.#reloader?.stop();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), this.#opts.requestTimeoutMs).unref();
    });
    this.#server = null;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "").split("?")[0];
    if (path === "/validate") {
      if (req.method !== "POST") {
        plain(res, 405, "POST only\n", { allow: "POST" });
        return;
      }
      this.#validate(req, res);
      return;
    }
    if (path === "/healthz" || path === "/readyz" || path === "/metrics") {
      if (req.method !== "GET" && req.method !== "HEAD") {
        plain(res, 405, "GET only\n", { allow: "GET, HEAD" });
        return;
      }
      if (path === "/healthz") {
        plain(res, 200, "ok\n");
        return;
      }
      if (path === "/readyz") {
        if (this.#stopping) plain(res, 503, "stopping\n");
        else plain(res, 200, "ready\n");
        return;
      }
      this.#deps.registry.metrics().then(
        (text) => plain(res, 200, text, { "content-type": this.#deps.registry.contentType }),
        () => plain(res, 500, "metrics unavailable\n"),
      );
      return;
    }
    plain(res, 404, "not found\n");
  }

  /**
   * Sends an early refusal once the client has finished sending, discarding
   * the rest of the body unkept (at most until the request deadline, then the
   * connection is closed). Replying while the client still sends lets the
   * connection close under unread data, and the client's kernel then resets
   * it and drops the reply unread.
   */
  #afterBody(req: IncomingMessage, reply: () => void): void {
    if (req.complete) {
      reply();
      return;
    }
    const timer = setTimeout(() => {
      req.off("end", onEnd);
      reply();
      req.destroy();
    }, this.#opts.requestTimeoutMs);
    const onEnd = () => {
      clearTimeout(timer);
      reply();
    };
    req.once("end", onEnd);
    req.once("error", () => clearTimeout(timer));
    req.resume();
  }

  #validate(req: IncomingMessage, res: ServerResponse): void {
    const started = this.#deps.now();
    const finish = (result: ReviewMetricResult) =>
      this.#deps.metrics.observe(result, (this.#deps.now() - started) / 1000);
    const type = String(req.headers["content-type"] ?? "")
      .split(";")[0]
      ?.trim()
      .toLowerCase();
    if (type !== "application/json") {
      finish("error");
      plain(res, 415, "Content-Type must be application/json\n");
      return;
    }
    const max = this.#opts.maxBodyBytes;
    const declared = Number(req.headers["content-length"] ?? Number.NaN);
    if (declared > max) {
      finish("error");
      this.#afterBody(req, () => plain(res, 413, `body over ${max} bytes\n`));
      return;
    }
    if (this.#inFlight >= this.#opts.maxInFlight) {
      finish("error");
      this.#afterBody(req, () => plain(res, 503, "too many reviews at once; retry\n", { "retry-after": "1" }));
      return;
    }
    this.#inFlight++;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.#inFlight--;
      clearTimeout(deadline);
      return true;
    };
    let uid: string | null = null;
    const deadline = setTimeout(() => {
      if (!settle()) return;
      finish("error");
      if (uid === null) {
        this.#deps.logger.warn({ ms: this.#opts.requestTimeoutMs }, "admission request body not received in time");
        // Close once the 408 is written: destroying at once can drop it unsent.
        res.once("finish", () => req.destroy());
        plain(res, 408, "request body not received in time\n", { connection: "close" });
        return;
      }
      const message = `sfu-config admission: the review did not finish within ${this.#opts.requestTimeoutMs} ms; refused (fail closed)`;
      this.#deps.logger.warn({ uid }, "admission review timed out; refused");
      json(res, 200, {
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: { uid, allowed: false, status: { code: 500, reason: "Timeout", message } },
      });
    }, this.#opts.requestTimeoutMs);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > max) {
        settle();
        finish("error");
        // Answered at once, without `Connection: close`: Node discards the
        // rest of the body after the reply (nothing is kept), and the
        // request deadline cuts a client that keeps sending.
        plain(res, 413, `body over ${max} bytes\n`);
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => {
      if (settle()) finish("error");
    });
    req.on("end", () => {
      if (settled) return;
      let body: unknown;
      const parsed = parseBoundedJson(Buffer.concat(chunks, size), { maxBytes: max }, "the body");
      chunks.length = 0;
      if (!parsed.ok) {
        settle();
        finish("error");
        plain(res, 400, parsed.code === "BAD_JSON" ? "the body is not JSON\n" : `${parsed.message}\n`);
        return;
      }
      body = parsed.value;
      const maybeUid = (body as { request?: { uid?: unknown } } | null)?.request?.uid;
      uid = typeof maybeUid === "string" && maybeUid !== "" && maybeUid.length <= 128 ? maybeUid : null;
      // One review judged at a time: a large config's parse costs tens of MiB,
      // and several at once would pass the container's memory limit. A review
      // whose deadline passed while it waited is not judged at all.
      const judged = this.#judging.then(() => (settled ? null : reviewAdmission(body, this.#opts.review)));
      this.#judging = judged.then(
        () => undefined,
        () => undefined,
      );
      judged.then(
        (result) => {
          if (result === null) return;
          if (!settle()) return;
          if ("malformed" in result) {
            finish("error");
            plain(res, 400, `not an AdmissionReview: ${result.malformed}\n`);
            return;
          }
          finish(result.outcome);
          this.#deps.logger.info(
            {
              uid: result.reply.response.uid,
              operation: result.operation,
              object: result.object,
              dryRun: result.dryRun,
              outcome: result.outcome,
              problems: result.problems,
            },
            result.outcome === "denied" ? "admission denied: invalid config" : "admission allowed",
          );
          json(res, 200, result.reply);
        },
        (err: unknown) => {
          if (!settle()) return;
          finish("error");
          this.#deps.logger.error({ err: (err as Error).message }, "admission review failed");
          plain(res, 500, "internal error\n");
        },
      );
    });
  }
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(text);
}

function json(res: ServerResponse, status: number, body: AdmissionReviewReply): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}
