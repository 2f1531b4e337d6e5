/**
 * A scripted SFU for the agent's HTTP push mode (PROTOCOL.md section 12): a
 * node:http server on 127.0.0.1 that records every request (time, method,
 * headers, parsed body) and answers POSTs from a script, GETs with its
 * applied state. It can go away (close: connections refused) and come back
 * on the same port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** How the SFU answers one POST. */
export type HttpSfuReply =
  | { kind: "ack"; status?: number }
  | { kind: "nack"; status?: 409 | 422; code: string; message?: string; path?: string }
  /** Any status with an optional raw body (e.g. 503, 409 without a JSON body). */
  | { kind: "status"; status: number; body?: string }
  /** Never answers (the agent's timeout fires); with `apply`, the config is applied anyway. */
  | { kind: "hang"; apply?: boolean };

/** How the SFU answers GET: its applied state, or a bare status (404/405/501/503...). */
export type HttpSfuGet = { kind: "applied" } | { kind: "status"; status: number };

/** One recorded request. */
export interface HttpSfuRequest {
  method: string;
  path: string;
  /** performance.now() when the request headers arrived. */
  at: number;
  headers: IncomingMessage["headers"];
  // biome-ignore lint/suspicious/noExplicitAny: tests read bodies loosely
  body: any;
}

/** Options of {@link HttpSfu.start}. */
export interface HttpSfuOptions {
  /** Answers to POSTs in order; `fallback` once exhausted. */
  script?: HttpSfuReply[];
  fallback?: HttpSfuReply;
  get?: HttpSfuGet;
  applied?: { version: number; hash: string } | null;
  /** When set, requests without `Authorization: Bearer <token>` get 401. */
  token?: string;
  port?: number;
}

/** The scripted HTTP SFU. */
export class HttpSfu {
  readonly requests: HttpSfuRequest[] = [];
  script: HttpSfuReply[];
  fallback: HttpSfuReply;
  get: HttpSfuGet;
  applied: { version: number; hash: string } | null;
  readonly #token: string | undefined;
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port: number;

  private constructor(o: HttpSfuOptions) {
    this.script = [...(o.script ?? [])];
    this.fallback = o.fallback ?? { kind: "ack" };
    this.get = o.get ?? { kind: "applied" };
    this.applied = o.applied ?? null;
    this.#token = o.token;
    this.#port = o.port ?? 0;
  }

  /** Starts a server on 127.0.0.1 (port 0 unless given). */
  static async start(o: HttpSfuOptions = {}): Promise<HttpSfu> {
    const s = new HttpSfu(o);
    await s.listen();
    return s;
  }

  /** The URL of `path` on this server. */
  url(path = "/sfu-config"): string {
    return `http://127.0.0.1:${this.#port}${path}`;
  }

  /** POST requests only. */
  get posts(): HttpSfuRequest[] {
    return this.requests.filter((r) => r.method === "POST");
  }

  /** Listens (again) on the same port. */
  async listen(): Promise<void> {
    const server = createServer((req, res) => this.#handle(req, res));
    server.on("connection", (sock) => {
      this.#sockets.add(sock);
      sock.on("close", () => this.#sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Goes away: stops listening and drops every connection (hanging requests included). */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#server = null;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  /** Polls until `pred` holds for some request; returns it. */
  async waitFor(pred: (r: HttpSfuRequest) => boolean, timeoutMs = 5_000): Promise<HttpSfuRequest> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const r = this.requests.find(pred);
      if (r) return r;
      if (performance.now() > deadline) throw new Error(`HttpSfu: no matching request within ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 10));
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const at = performance.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      this.requests.push({ method: req.method ?? "", path: req.url ?? "", at, headers: req.headers, body });
      if (this.#token !== undefined && req.headers.authorization !== `Bearer ${this.#token}`) {
        return send(res, 401, JSON.stringify({ code: "UNAUTHORIZED", message: "bad token" }));
      }
      if (req.method === "GET") {
        if (this.get.kind === "status") return send(res, this.get.status, "");
        return send(res, 200, JSON.stringify({ applied: this.applied }));
      }
      if (req.method !== "POST") return send(res, 405, "");
      const reply = this.script.shift() ?? this.fallback;
      const msg = body as { version: number; hash: string };
      switch (reply.kind) {
        case "ack":
          this.applied = { version: msg.version, hash: msg.hash };
          return send(res, reply.status ?? 200, JSON.stringify({ type: "ack", version: msg.version, hash: msg.hash }));
        case "nack":
          return send(
            res,
            reply.status ?? 422,
            JSON.stringify({
              code: reply.code,
              message: reply.message ?? `${reply.code} for version ${msg.version}`,
              ...(reply.path ? { path: reply.path } : {}),
            }),
          );
        case "status":
          return send(res, reply.status, reply.body ?? "");
        case "hang":
          if (reply.apply) this.applied = { version: msg.version, hash: msg.hash };
          return; // never answered; close() drops it
      }
    });
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
