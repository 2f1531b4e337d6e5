/**
 * The WebSocket push transport (PROTOCOL.md [sections 2, 3 and 7](../protocol/PROTOCOL.md#2-transport)):
 * a ws server the SFU dials, one SFU at a time; it gates the upgrade, frames and checks messages,
 * and hands everything else to the {@link DeliveryLink} (agent/sidecar/delivery.ts).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type ServerOptions, type WebSocket, WebSocketServer } from "ws";
import { CloseCode } from "../../protocol/close-codes.ts";
import { closeReason, parseSfuFrame } from "../../protocol/messages.ts";
import {
  type AckMessage,
  FEATURES_HEADER,
  HEALTH_FEATURE,
  type HelloMessage,
  MAX_FRAME_BYTES,
  type NackMessage,
  SUBPROTOCOL,
} from "../../protocol/messages-schema.ts";
import { helloFeatures, secretsReloadMessage } from "../../protocol/secrets-reload.ts";
import { abortHandshake, guardPings, upgradeRefusal } from "../../protocol/websocket-guard.ts";
import type { AgentError } from "../shared/errors.ts";
import { listenOn } from "../shared/listen.ts";
import type { AgentMetrics } from "./metrics.ts";
import { configMessage, type DeliveryLink, type Outbound, type Reply, type Transport } from "./transport.ts";

/** Options of {@link PushServer}; see {@link PUSH_SERVER_DEFAULTS}. */
export interface PushServerOptions {
  host: string;
  /** 0 picks a free port (see {@link PushServer.address}). */
  port: number;
  /** Shared token the SFU must present (`Authorization: Bearer`). */
  token?: string | null;
  /** How long after the upgrade the SFU has to send `hello` (else 4006). */
  helloTimeoutMs?: number;
}

/** Defaults of the optional {@link PushServerOptions}: no token; 5 s for the hello. */
export const PUSH_SERVER_DEFAULTS = {
  token: null,
  helloTimeoutMs: 5_000,
} as const;

/**
 * ws refuses frames above this with 1009 before the agent sees them; frames
 * between MAX_FRAME_BYTES and this are closed by the agent with 4009.
 */
const WS_MAX_PAYLOAD = 4 * MAX_FRAME_BYTES;

/** A peer that never answers the close handshake is cut off after this (ws `closeTimeout`). */
const CLOSE_TIMEOUT_MS = 2_000;

/** Dependencies of {@link PushServer}. */
export interface PushServerDeps {
  logger: Logger;
  /** Counts refused upgrades. */
  metrics?: AgentMetrics;
}

/** The WebSocket push transport; see the module comment. */
export class PushServer implements Transport {
  readonly kind = "websocket";
  readonly label = "the WebSocket push server";
  readonly secretsReload = true;
  readonly lateReplies = true;
  readonly canSend = true;
  readonly #deps: PushServerDeps;
  readonly #opts: Required<PushServerOptions>;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  #link: DeliveryLink | null = null;
  #session: PushSession | null = null;
  #state: "new" | "listening" | "stopping" | "stopped" = "new";

  constructor(deps: PushServerDeps, options: PushServerOptions) {
    const opts = { ...PUSH_SERVER_DEFAULTS, ...options } as Required<PushServerOptions>;
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new TypeError(`PushServer: options.port must be 0..65535, got ${opts.port}`);
    }
    if (!Number.isInteger(opts.helloTimeoutMs) || opts.helloTimeoutMs < 1) {
      throw new TypeError("PushServer: options.helloTimeoutMs must be >= 1 ms");
    }
    if (opts.token !== null && opts.token.length === 0)
      throw new TypeError("PushServer: options.token must not be empty");
    this.#deps = deps;
    this.#opts = opts;
    // closeTimeout: a ws option its type definitions do not list yet.
    const wsOptions: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      maxPayload: WS_MAX_PAYLOAD,
      perMessageDeflate: false,
      autoPong: false, // pongs through guardPings (protocol/websocket-guard.ts)
      closeTimeout: CLOSE_TIMEOUT_MS,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    };
    this.#wss = new WebSocketServer(wsOptions);
    // Advertises the optional frames this agent accepts (PROTOCOL.md section 15).
    this.#wss.on("headers", (headers) => headers.push(`${FEATURES_HEADER}: ${HEALTH_FEATURE}`));
    this.#http = createServer((_req, res) => {
      res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
      res.end(`sfu-config push server: WebSocket with subprotocol ${SUBPROTOCOL} required\n`);
    });
    this.#http.on("upgrade", (req, socket, head) => this.#onUpgrade(req, socket, head));
  }

  /** Starts listening, reporting to `link`. Throws an {@link AgentError} `LISTEN_FAILED` when the address is unavailable. */
  async start(link: DeliveryLink): Promise<void> {
    if (this.#state !== "new") throw new Error(`PushServer already ${this.#state}`);
    this.#link = link;
    await listenOn(this.#http, this.#opts.host, this.#opts.port, "push server");
    this.#state = "listening";
    this.#deps.logger.info({ address: this.url }, "push server listening");
  }

  /** Whether the server accepts connections. */
  get ready(): boolean {
    return this.#state === "listening";
  }

  /** The bound address (after start). */
  address(): AddressInfo {
    const a = this.#http.address();
    if (a === null || typeof a === "string") throw new Error("PushServer is not listening");
    return a;
  }

  /** `ws://host:port` of the server (after start). */
  get url(): string {
    const a = this.address();
    return `ws://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  send(message: Outbound, _signal: AbortSignal): Promise<Reply> {
    return this.#session?.send(message) ?? Promise.resolve({ type: "closed" });
  }

  /**
   * Stops accepting connections, waits up to `drainMs` for an unanswered
   * push to be answered, then closes the SFU connection with 1001. Idempotent.
   */
  async stop(drainMs: number): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasListening = this.#state === "listening";
    this.#state = "stopping";
    const closed = wasListening ? new Promise<void>((r) => this.#http.close(() => r())) : Promise.resolve();
    const session = this.#session;
    if (session) {
      await this.#link?.drain(drainMs);
      session.close(1001, "agent shutting down");
      await session.closed;
    }
    this.#http.closeAllConnections();
    await closed;
    this.#wss.close();
    this.#state = "stopped";
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    const peer = { remote: req.socket.remoteAddress };
    const refusal = upgradeRefusal(req, {
      subprotocol: SUBPROTOCOL,
      token: this.#opts.token,
      available: this.#state === "listening",
    });
    if (refusal !== null) {
      this.#deps.metrics?.connectionsRefused.inc({ reason: refusal.reason });
      this.#deps.logger.warn(peer, `refused a WebSocket upgrade with HTTP ${refusal.status}: ${refusal.detail}`);
      abortHandshake(socket, refusal);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      guardPings(ws, (reason) => this.#deps.logger.warn({ ...peer, reason }, "closed the SFU connection: ping flood"));
      if (this.#session !== null || this.#state !== "listening") {
        this.#deps.metrics?.connectionsRefused.inc({ reason: "busy" });
        this.#deps.logger.warn(peer, "refused a second SFU connection: one SFU at a time");
        // Frames may still arrive before the close completes; a bad one (invalid UTF-8, over
        // maxPayload) is an 'error' on this socket, which must not take the process down.
        ws.on("error", (err) => this.#deps.logger.debug({ ...peer, err: err.message }, "refused connection errored"));
        ws.close(CloseCode.ALREADY_CONNECTED, "another SFU is already connected to this agent; one at a time");
        return;
      }
      const session = new PushSession({ logger: this.#deps.logger, link: this.#link as DeliveryLink }, ws, {
        helloTimeoutMs: this.#opts.helloTimeoutMs,
      });
      this.#session = session;
      void session.closed.then(() => {
        if (this.#session === session) this.#session = null;
      });
    });
  }
}

/** Per-connection options of {@link PushSession}. */
interface SessionOptions {
  helloTimeoutMs: number;
}

/** The unanswered message of a connection (a reply with an older nonce is stale). */
interface Pending {
  nonce: number;
  version: number;
  hash: string;
  resolve: (reply: Reply) => void;
}

/** One SFU connection: hello first, frames checked, replies matched to the pending nonce. Created by {@link PushServer}. */
export class PushSession {
  /** Resolves with the close code and reason once the connection is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  readonly #link: DeliveryLink;
  readonly #log: Logger;
  #hello: HelloMessage | null = null;
  #helloTimer: NodeJS.Timeout | null;
  #lastNonce = 0;
  #pending: Pending | null = null;
  #open = true;
  /** Set once this side closed: later frames are ignored. */
  #closing = false;

  constructor(deps: { logger: Logger; link: DeliveryLink }, ws: WebSocket, opts: SessionOptions) {
    this.#ws = ws;
    this.#link = deps.link;
    this.#log = deps.logger.child({ component: "push" });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.#open = false;
        if (this.#helloTimer) clearTimeout(this.#helloTimer);
        this.#pending?.resolve({ type: "closed" });
        this.#pending = null;
        if (this.#hello !== null) this.#link.close();
        this.#log.info({ code, reason: reason.toString("utf8") }, "SFU disconnected");
        resolve({ code, reason: reason.toString("utf8") });
      });
    });
    ws.on("error", (err) => this.#log.warn({ err: err.message }, "SFU connection error"));
    ws.on("message", (data, isBinary) => this.#onFrame(data as Buffer, isBinary));
    this.#helloTimer = setTimeout(() => {
      this.close(CloseCode.HELLO_TIMEOUT, `no hello within ${opts.helloTimeoutMs} ms`);
    }, opts.helloTimeoutMs);
    this.#log.info("SFU connected; waiting for hello");
  }

  /** Closes the connection with `code` and `reason` (truncated to 123 bytes). */
  close(code: number, reason: string): void {
    if (!this.#open) return;
    if (code !== 1000 && code !== 1001) this.#log.warn({ code, reason }, "closing SFU connection");
    this.#closing = true;
    this.#ws.close(code, closeReason(reason));
  }

  /** Sends `message`; resolves with its reply, or `closed` (a newer message makes an older one's reply stale). */
  send(message: Outbound): Promise<Reply> {
    if (!this.#open || this.#closing) return Promise.resolve({ type: "closed" });
    const { version, hash } = message.type === "config" ? message.snapshot : message.applied;
    const frame =
      message.type === "config"
        ? configMessage(message.snapshot, message.nonce)
        : secretsReloadMessage(message.nonce, message.applied, message.generation);
    this.#lastNonce = message.nonce;
    const reply = new Promise<Reply>((resolve) => {
      this.#pending = { nonce: message.nonce, version, hash, resolve };
    });
    this.#ws.send(JSON.stringify(frame));
    if (message.type === "config") {
      const d = message.snapshot;
      this.#log.info({ nonce: message.nonce, version, hash, revision: d.revision }, "pushed config");
    }
    return reply;
  }

  #onFrame(data: Buffer, isBinary: boolean): void {
    if (!this.#open || this.#closing) return;
    if (isBinary) {
      this.close(CloseCode.BAD_JSON, "binary frames are not allowed; send UTF-8 JSON text");
      return;
    }
    const parsed = parseSfuFrame(data);
    if (!parsed.ok) {
      this.close(parsed.closeCode, parsed.reason);
      return;
    }
    const msg = parsed.message;
    if (msg.type === "hello") {
      this.#onHello(msg);
      return;
    }
    if (this.#hello === null) {
      this.close(CloseCode.HELLO_REQUIRED, `expected hello first, got ${msg.type}`);
      return;
    }
    if (msg.type === "health") {
      const { type: _type, ...counters } = msg;
      this.#link.health(counters);
      return;
    }
    this.#onReply(msg);
  }

  #onHello(hello: HelloMessage): void {
    if (this.#hello !== null) {
      this.close(CloseCode.HELLO_REQUIRED, "hello sent twice");
      return;
    }
    if (this.#helloTimer) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    const applied = hello.applied as { version: number; hash: string } | null;
    const schemaVersions = hello.schemaVersions as number[];
    const features = helloFeatures(hello);
    const refused = this.#link.open({ sfu: hello.sfu, applied, schemaVersions, features });
    if (refused?.reason === "no-common-schema") {
      this.close(CloseCode.UNSUPPORTED_PROTOCOL, refused.message);
      return;
    }
    if (refused !== null) {
      this.#log.error({ sfu: hello.sfu.name, applied }, `refused the SFU's hello: ${refused.message}`);
      this.close(CloseCode.PROTOCOL_ERROR, `hello refused: ${refused.message}`);
      return;
    }
    this.#hello = hello;
    this.#log.info(
      { sfu: hello.sfu.name, sfuVersion: hello.sfu.version, applied, schemaVersions, features },
      "SFU hello",
    );
    this.#link.wake();
  }

  #onReply(msg: AckMessage | NackMessage): void {
    if (msg.nonce > this.#lastNonce) {
      this.close(CloseCode.BAD_NONCE, `nonce ${msg.nonce} was never issued (last ${this.#lastNonce})`);
      return;
    }
    const p = this.#pending;
    if (p === null || msg.nonce !== p.nonce) {
      this.#log.debug({ nonce: msg.nonce, type: msg.type }, "ignored a stale reply");
      return;
    }
    if (msg.version !== p.version || msg.hash !== p.hash) {
      this.close(CloseCode.PROTOCOL_ERROR, `${msg.type} of nonce ${p.nonce} names another version or hash`);
      return;
    }
    this.#pending = null;
    p.resolve(
      msg.type === "ack"
        ? { type: "ack" }
        : {
            type: "nack",
            error: {
              code: msg.error.code,
              message: msg.error.message,
              ...(msg.error.path === undefined ? {} : { path: msg.error.path }),
            },
          },
    );
  }
}
