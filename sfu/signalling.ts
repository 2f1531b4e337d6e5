/**
 * The browser-facing signalling endpoint: JSON over a WebSocket at `/ws`
 * (protocol in sfu/README.md). One socket = at most one participant; the
 * socket closing is how a departure is detected (not the ~30 s ICE consent
 * timeout). Every socket also receives `config` events when a new config
 * version is applied, so the demo page shows it live.
 *
 * Handshakes are checked against the page's `Origin` first
 * (sfu/origin-policy.ts): same origin, or one listed in the applied config's
 * `server.allowedOrigins`; others get 403 before any session exists, so a
 * foreign page can neither join nor receive TURN credentials.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type RawData, type ServerOptions, WebSocket, WebSocketServer } from "ws";
import { guardPings, requestHost, webSocketVersionRefusal } from "../protocol/index.ts";
import type { ConfigState } from "./config-state.ts";
import { SignalErrorCode } from "./errors.ts";
import { checkRequestOrigin } from "./origin-policy.ts";
import type { Participant } from "./participant.ts";
import type { RoomRegistry } from "./room.ts";
import { MAX_SIGNAL_FRAME_BYTES, parseClientMessage, type ServerMessage } from "./signal-messages.ts";

/** How long a signalling client may take to answer our close frame before ws destroys its socket. */
export const SIGNAL_CLOSE_TIMEOUT_MS = 1000;

/** Refused handshakes are logged at most once per this interval (ms). */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Dependencies of {@link SignallingServer}. */
export interface SignallingOptions {
  logger: Logger;
  rooms: RoomRegistry;
  state: ConfigState;
  /** Interval of WebSocket pings that detect dead clients (default 10 s). */
  pingIntervalMs?: number;
  /** Called when a handshake is refused (for metrics). */
  onRefused?: (reason: "origin" | "target" | "version") => void;
}

/** Accepts `/ws` upgrades and runs one session per socket. */
export class SignallingServer {
  readonly #wss: WebSocketServer;
  readonly #options: SignallingOptions;
  readonly #log: Logger;
  readonly #sockets = new Set<WebSocket>();
  readonly #alive = new WeakMap<WebSocket, boolean>();
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(options: SignallingOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "signalling" });
    // closeTimeout (a ws option its type definitions do not list yet): a client
    // that does not answer our close frame is cut off, so stop() never waits on it.
    const wsOptions: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      maxPayload: MAX_SIGNAL_FRAME_BYTES,
      autoPong: false, // pongs through guardPings (protocol/websocket-guard.ts)
      closeTimeout: SIGNAL_CLOSE_TIMEOUT_MS,
    };
    this.#wss = new WebSocketServer(wsOptions);
  }

  /** Starts config broadcasts and liveness pings. */
  start(): void {
    this.#unsubscribe = this.#options.state.onChange(() => {
      const message = JSON.stringify({ type: "config", config: this.#options.state.applied } satisfies ServerMessage);
      for (const ws of this.#sockets) if (ws.readyState === WebSocket.OPEN) ws.send(message);
    });
    this.#pingTimer = setInterval(() => {
      for (const ws of this.#sockets) {
        if (this.#alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.#alive.set(ws, false);
        ws.ping();
      }
    }, this.#options.pingIntervalMs ?? 10_000);
    this.#pingTimer.unref();
  }

  #stopping = false;

  /** Hands an HTTP upgrade request for `/ws` to the WebSocket server; refused with 503 once stop() began. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A client that re-dials at once must not join an SFU that is shutting down.
    if (this.#stopping) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const version = webSocketVersionRefusal(req.headers["sec-websocket-version"]);
    if (version !== null) {
      this.#options.onRefused?.("version");
      socket.end(version);
      return;
    }
    // An absolute-form target must name the Host's host (protocol/request-target.ts); then Host is the host.
    const target = requestHost(req.url, req.headers.host);
    if (!target.ok) {
      this.#options.onRefused?.("target");
      const body = `${target.reason}\n`;
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    const origin = req.headers.origin;
    const allowed = (this.#options.state.current?.config.server as { allowedOrigins?: readonly string[] } | undefined)
      ?.allowedOrigins;
    const decision = checkRequestOrigin(origin, req.headers.host, allowed);
    if (!decision.allowed) {
      this.#logRefusal(decision.reason);
      this.#options.onRefused?.("origin");
      const body = `${decision.reason}\n`;
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.#stopping) {
        ws.terminate();
        return;
      }
      guardPings(ws, (reason) => this.#log.warn({ reason }, "closed a signalling connection: ping flood"));
      this.#session(ws);
    });
  }

  #refusalLoggedAt = Number.NEGATIVE_INFINITY;
  #refusalsUnlogged = 0;

  /**
   * Logs a refused handshake, at most one line per REFUSAL_LOG_INTERVAL_MS
   * (any page can trigger refusals; the counter metric counts them all),
   * with how many were not logged since the last line.
   */
  #logRefusal(reason: string): void {
    const now = performance.now();
    if (now - this.#refusalLoggedAt < REFUSAL_LOG_INTERVAL_MS) {
      this.#refusalsUnlogged++;
      return;
    }
    this.#log.warn({ reason, notLogged: this.#refusalsUnlogged }, "signalling handshake refused");
    this.#refusalLoggedAt = now;
    this.#refusalsUnlogged = 0;
  }

  /** Number of open signalling sockets. */
  get connections(): number {
    return this.#sockets.size;
  }

  #session(ws: WebSocket): void {
    this.#sockets.add(ws);
    this.#alive.set(ws, true);
    ws.on("pong", () => this.#alive.set(ws, true));
    let participant: Participant | null = null;
    const send = (message: ServerMessage): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
    };
    const error = (code: (typeof SignalErrorCode)[keyof typeof SignalErrorCode], message: string): void =>
      send({ type: "error", code, message });
    const leave = async (): Promise<void> => {
      const p = participant;
      participant = null;
      if (p) await this.#options.rooms.leave(p);
    };
    // Messages are handled strictly in order: an answer must not overtake the join.
    let chain = Promise.resolve();
    ws.on("message", (data: RawData, isBinary: boolean) => {
      chain = chain.then(async () => {
        if (isBinary) return error(SignalErrorCode.BAD_MESSAGE, "binary frames are not accepted");
        const parsed = parseClientMessage(data.toString());
        if (!parsed.ok) return error(SignalErrorCode.BAD_MESSAGE, parsed.message);
        const m = parsed.message;
        if (m.type === "join") {
          if (participant) return error(SignalErrorCode.ALREADY_JOINED, "this socket has joined a room already");
          const result = this.#options.rooms.join({
            room: m.room,
            name: m.name,
            publish: m.publish,
            send,
            onDropped: (reason) => {
              participant = null;
              error(SignalErrorCode.NEGOTIATION_FAILED, `dropped by the SFU: ${reason}`);
              ws.close(1011, "dropped");
            },
          });
          if (!result.ok) return error(result.code, result.message);
          participant = result.participant;
          return;
        }
        if (!participant) return error(SignalErrorCode.NOT_JOINED, `${m.type} before join`);
        switch (m.type) {
          case "publish":
            this.#options.rooms.publish(participant, m.publish);
            return;
          case "answer": {
            const err = await participant.handleAnswer(m.sdp);
            if (err) error(SignalErrorCode.NEGOTIATION_FAILED, err);
            return;
          }
          case "candidate": {
            const err = await participant.handleCandidate(m.candidate);
            if (err) this.#log.debug({ err }, "candidate rejected");
            return;
          }
          case "leave":
            await leave();
            send({ type: "left" });
            return;
        }
      });
      chain = chain.catch((err) => this.#log.error({ err }, "signalling handler failed"));
    });
    ws.on("close", () => {
      this.#sockets.delete(ws);
      chain = chain.then(leave).catch((err) => this.#log.error({ err }, "leave failed"));
    });
    ws.on("error", (err) => this.#log.debug({ err }, "signalling socket error"));
    send({ type: "config", config: this.#options.state.applied });
  }

  /** Refuses new sockets, closes every open one (their participants leave) and stops pings. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#unsubscribe?.();
    clearInterval(this.#pingTimer);
    const closed = [...this.#sockets].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          ws.once("close", () => resolve());
          // Emitted at the latest SIGNAL_CLOSE_TIMEOUT_MS later (closeTimeout).
          ws.close(1001, "SFU shutting down");
        }),
    );
    await Promise.all(closed);
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
