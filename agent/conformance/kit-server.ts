/**
 * The conformance kit's agent-side WebSocket server: it lets SFUs dial in
 * through the agent's own upgrade gate and hands each connection that said
 * `hello` to the suite. PROTOCOL.md
 * [section 2](../../protocol/PROTOCOL.md#2-transport).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { CloseCode } from "../../protocol/close-codes.ts";
import { FEATURES_HEADER, HEALTH_FEATURE, MAX_FRAME_BYTES, SUBPROTOCOL } from "../../protocol/messages-schema.ts";
import { abortHandshake, guardPings, type UpgradeRefusal, upgradeRefusal } from "../../protocol/websocket-guard.ts";
import { AgentError } from "../shared/errors.ts";
import { SfuSession } from "./sfu-session.ts";

/** A dial-in as the suite sees it: a session that said hello, or why not. */
export type DialOutcome =
  | { ok: true; session: SfuSession; delayMs: number }
  | { ok: false; reason: string; timeout?: boolean };

/** One WebSocket upgrade request that reached the kit. */
export interface DialAttempt {
  /** Clock reading (ms) when the request arrived. */
  at: number;
  /** `accepted`, or the HTTP status the kit refused it with (PROTOCOL.md section 2). */
  outcome: "accepted" | UpgradeRefusal["status"];
}

/** Options of {@link ConformanceServer}; see {@link CONFORMANCE_SERVER_DEFAULTS}. */
export interface ConformanceServerOptions {
  /** Interface to listen on. */
  host?: string;
  /** TCP port; 0 picks a free one. */
  port?: number;
  /** Bearer token SFUs must present; null accepts any. Never logged. */
  token?: string | null;
  /** How long an SFU has to send hello after connecting, ms. */
  helloTimeoutMs?: number;
}

/** Defaults of {@link ConformanceServerOptions}: the agent's own (`ws://127.0.0.1:7070`, no token, 5 s for hello). */
export const CONFORMANCE_SERVER_DEFAULTS = {
  host: "127.0.0.1",
  port: 7070,
  token: null,
  helloTimeoutMs: 5000,
} as const;

/** Dependencies of {@link ConformanceServer}. */
export interface ConformanceServerDeps {
  /** Monotonic clock in milliseconds. */
  clock: () => number;
  /** Receives one human-readable line per notable event (refused dials); never a secret. */
  log: (line: string) => void;
}

type Resolved = Required<ConformanceServerOptions>;

/**
 * The kit's WebSocket server. Call {@link start}, then {@link nextDial};
 * always {@link stop}.
 *
 * For the reconnect case it can refuse the next N dial attempts with HTTP 503
 * (as an agent that is restarting would), and it records the time of every
 * attempt so the suite can check the SFU backs off.
 *
 * Like the agent, it advertises the optional `health` frame in the upgrade
 * response (`sfu-config-features: health`), so the call-health case can see
 * whether the SFU sends valid ones.
 */
export class ConformanceServer {
  readonly options: Resolved;
  /** Every upgrade request seen, oldest first. */
  readonly attempts: DialAttempt[] = [];
  #deps: ConformanceServerDeps;
  #http: Server | null = null;
  #wss: WebSocketServer | null = null;
  #sessions = new Set<SfuSession>();
  #active: SfuSession | null = null;
  #outcomes: DialOutcome[] = [];
  #waiters: ((outcome: DialOutcome) => void)[] = [];
  #refuse = 0;
  #url: string | null = null;

  constructor(options: ConformanceServerOptions, deps: ConformanceServerDeps) {
    const o: Resolved = { ...CONFORMANCE_SERVER_DEFAULTS, ...stripUndefined(options) };
    if (typeof o.host !== "string" || o.host.length === 0)
      throw new AgentError("CONFORMANCE_OPTIONS", "host must be set");
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new AgentError("CONFORMANCE_OPTIONS", `port must be an integer 0..65535, got ${String(o.port)}`);
    }
    if (o.token !== null && (typeof o.token !== "string" || o.token.length === 0)) {
      throw new AgentError("CONFORMANCE_OPTIONS", "token must be a non-empty string or null");
    }
    if (!Number.isInteger(o.helloTimeoutMs) || o.helloTimeoutMs <= 0) {
      throw new AgentError(
        "CONFORMANCE_OPTIONS",
        `helloTimeoutMs must be a positive integer, got ${String(o.helloTimeoutMs)}`,
      );
    }
    this.options = o;
    this.#deps = deps;
  }

  /** `ws://host:port` the kit listens on (after {@link start}). */
  get url(): string {
    if (this.#url === null) throw new Error("server not started");
    return this.#url;
  }

  /** Listens; resolves with the bound URL. Throws an {@link AgentError} `CONFORMANCE_LISTEN_FAILED` when it cannot. */
  async start(): Promise<string> {
    if (this.#http !== null) throw new Error("server already started");
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_FRAME_BYTES,
      autoPong: false, // pongs through guardPings (protocol/websocket-guard.ts)
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    wss.on("headers", (headers) => headers.push(`${FEATURES_HEADER}: ${HEALTH_FEATURE}`));
    const http = createServer((_req, res) => {
      res.writeHead(426, { "content-type": "text/plain" }).end("sfu-config conformance kit: WebSocket only\n");
    });
    http.on("upgrade", (req, socket, head) => this.#onUpgrade(wss, req, socket, head));
    this.#wss = wss;
    this.#http = http;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new AgentError(
            "CONFORMANCE_LISTEN_FAILED",
            `cannot listen on ${this.options.host}:${this.options.port}: ${err.code ?? err.message}`,
          ),
        );
      };
      http.once("error", onError);
      http.listen(this.options.port, this.options.host, () => {
        http.off("error", onError);
        resolve();
      });
    });
    const address = http.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.#url = `ws://${host}:${address.port}`;
    return this.#url;
  }

  /**
   * Closes every connection with 1001 ("going away", as the agent does when
   * it stops), waits up to 1 s for the SFU's close handshake and then drops
   * what is left, and closes the listener; idempotent.
   */
  async stop(): Promise<void> {
    for (const waiter of this.#waiters.splice(0)) waiter({ ok: false, reason: "kit stopped" });
    const sessions = [...this.#sessions];
    this.#sessions.clear();
    for (const session of sessions) session.close(1001, "conformance kit finished");
    await Promise.all(sessions.map((session) => session.waitClosed(1_000)));
    for (const session of sessions) session.terminate();
    this.#wss?.close();
    const http = this.#http;
    this.#http = null;
    this.#wss = null;
    if (http) {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  }

  /** Refuses the next `count` dial attempts with HTTP 503 (an agent restarting). */
  refuseNextDials(count: number): void {
    this.#refuse = count;
  }

  /**
   * The next dial-in, oldest first: a session that said hello, a connection
   * that failed before hello, or `{ ok: false, timeout: true }` when none
   * arrived within `timeoutMs`.
   */
  nextDial(timeoutMs: number): Promise<DialOutcome> {
    const queued = this.#outcomes.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const waiter = (outcome: DialOutcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve({ ok: false, reason: `no SFU dialed in within ${timeoutMs} ms`, timeout: true });
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  #deliver(outcome: DialOutcome): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(outcome);
    else this.#outcomes.push(outcome);
  }

  #onUpgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const at = this.#deps.clock();
    const refusal = upgradeRefusal(req, {
      subprotocol: SUBPROTOCOL,
      token: this.options.token,
      available: this.#refuse === 0,
    });
    if (refusal !== null) {
      if (refusal.reason === "shutting down") this.#refuse -= 1;
      this.attempts.push({ at, outcome: refusal.status });
      const why = refusal.reason === "shutting down" ? "the kit simulates an agent restart" : refusal.detail;
      this.#deps.log(`refused a dial-in with HTTP ${refusal.status}: ${why}`);
      abortHandshake(socket, refusal);
      return;
    }
    this.attempts.push({ at, outcome: "accepted" });
    wss.handleUpgrade(req, socket, head, (ws) => {
      guardPings(ws, (reason) => this.#deps.log(`closed a connection with 1008: ${reason}`));
      const session = new SfuSession(ws, { helloTimeoutMs: this.options.helloTimeoutMs }, { clock: this.#deps.clock });
      this.#sessions.add(session);
      ws.on("close", () => {
        this.#sessions.delete(session);
        if (this.#active === session) this.#active = null;
      });
      if (this.#active?.isOpen) {
        this.#deps.log("closed a second concurrent connection with 4010");
        session.close(CloseCode.ALREADY_CONNECTED, "already connected");
        return;
      }
      this.#active = session;
      void session.helloOutcome.then((outcome) => {
        this.#deliver(outcome.ok ? { ok: true, session, delayMs: outcome.delayMs } : outcome);
      });
    });
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
