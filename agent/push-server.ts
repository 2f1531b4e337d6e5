/**
 * The push server: a WebSocket server (ws) the SFU dials, speaking
 * sfu-config/1 exactly as protocol/PROTOCOL.md says.
 *
 * Access control happens at the HTTP upgrade, before any frame:
 * - an upgrade carrying an `Origin` header is refused with 403 (browsers
 *   always send one; a web page must never read the config);
 * - the subprotocol `sfu-config.v1` must be offered (else 426);
 * - with a token configured, `Authorization: Bearer <token>` must match,
 *   compared in constant time (else 401).
 * One SFU at a time: a second connection is accepted and closed at once with
 * 4010 ALREADY_CONNECTED and a reason saying so.
 *
 * Per connection ({@link SfuSession}): `hello` must come first, within
 * `helloTimeoutMs`; config nonces increase from 1; the pushed version comes
 * from the store, which continues above `hello.applied.version`; nothing is
 * pushed when the SFU already runs the desired hash; while a push is
 * unanswered only the newest desired config is kept (it is read from the
 * store when the reply arrives); a NACKed hash is not re-sent on the same
 * connection at once (it is on a new one, when it becomes desired again, and
 * after a capped backoff when the code was APPLY_FAILED); a `hello.applied`
 * version out of range closes with 4000 and a reason (see
 * SnapshotStore.checkSfuApplied); an ack timeout is reported once, the push
 * is then abandoned (a newer config may be pushed; the same hash is not
 * re-sent on this connection); stale replies (an older nonce) are ignored;
 * a never-issued nonce closes with 4004; bad frames close with the 4xxx code
 * protocol/messages.ts chooses. The delivery bookkeeping (latest wins, no
 * re-push of the applied hash, no NACK loop, outcome recording) is the
 * {@link PushLedger} shared with the HTTP pusher; one ledger per connection.
 * What the session learns (link up/down, outcomes) goes through the ledger
 * to the {@link StatusTracker}.
 *
 * Schema negotiation: a `hello` whose `schemaVersions` shares no version
 * with this agent closes with 4007. Otherwise a desired config whose
 * schemaVersion the SFU did not list is not sent: it is recorded as
 * rejected with code `UNSUPPORTED_SCHEMA` (lastError, settlement, metrics)
 * and the connection stays open, so a later config the SFU can take is
 * pushed as usual.
 *
 * Secret rotation: when the SFU lists `secrets-reload` in `hello.features`,
 * runs the desired config, and has not confirmed reading the secret files
 * as of the {@link SecretWatch}'s current generation on this connection
 * (by acking a config sent at that generation, or a `secrets-reload`), the
 * session sends `secrets-reload` (one message outstanding at a time, like a
 * config; a config that is due goes first, since applying it reads the files
 * too). So a new connection to an SFU already running the desired config
 * gets one reload: the agent cannot know whether the files changed while it
 * was not connected. A generation nacked or timed out is not re-sent on the
 * connection; the next change is. An SFU without the feature gets nothing;
 * a change is then recorded as outcome `unsupported`.
 *
 * Call health: every upgrade response carries `sfu-config-features: health`,
 * the optional `health` frame this agent accepts (an SFU sends it only when
 * advertised). A valid one after `hello` goes to the tracker (`/status
 * health`); before `hello` it closes with 4005 like any other frame; an
 * invalid one closes with 4003.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type WebSocket, WebSocketServer } from "ws";
import { CloseCode } from "../protocol/close-codes.ts";
import { SUPPORTED_SCHEMA_VERSIONS } from "../protocol/config-schema.ts";
import { type HealthRefusal, healthCountersRefusal } from "../protocol/health-checks.ts";
import { closeReason, parseSfuFrame } from "../protocol/messages.ts";
import {
  type AckMessage,
  FEATURES_HEADER,
  HEALTH_FEATURE,
  type HealthCounters,
  type HealthMessage,
  type HelloMessage,
  MAX_FRAME_BYTES,
  type NackMessage,
  SUBPROTOCOL,
} from "../protocol/messages-schema.ts";
import { helloFeatures, SECRETS_RELOAD_FEATURE, secretsReloadMessage } from "../protocol/secrets-reload.ts";
import { abortHandshake, guardPings, upgradeRefusal } from "../protocol/websocket-guard.ts";
import { LifecycleError, type ListenError } from "./errors.ts";
import { listenOn } from "./listen.ts";
import type { AgentMetrics } from "./metrics.ts";
import { configMessage, type NackRetryOptions, PushLedger } from "./push-ledger.ts";
import type { SecretWatch } from "./secret-watch.ts";
import type { SnapshotStore } from "./snapshot-store.ts";
import type { StatusTracker } from "./status-tracker.ts";

/** Options of {@link PushServer}; see {@link PUSH_SERVER_DEFAULTS}. */
export interface PushServerOptions {
  host: string;
  /** 0 picks a free port (see {@link PushServer.address}). */
  port: number;
  /** Shared token the SFU must present; null = no token required. */
  token?: string | null;
  ackTimeoutMs?: number;
  helloTimeoutMs?: number;
  /** Backoff of the re-send of an APPLY_FAILED config (default NACK_RETRY_DEFAULTS: 1 s doubling to 5 min); a test knob. */
  nackRetry?: NackRetryOptions | null;
}

/** Documented defaults of the optional {@link PushServerOptions}. */
export const PUSH_SERVER_DEFAULTS = {
  token: null,
  ackTimeoutMs: 10_000,
  helloTimeoutMs: 5_000,
  nackRetry: null,
} as const;

/**
 * ws refuses frames above this with 1009 before the agent sees them; frames
 * between MAX_FRAME_BYTES and this are closed by the agent with 4009.
 */
const WS_MAX_PAYLOAD = 4 * MAX_FRAME_BYTES;

/** Dependencies of {@link PushServer}. */
export interface PushServerDeps {
  logger: Logger;
  store: SnapshotStore;
  /** Receives link and outcome events (through each session's ledger). */
  tracker?: StatusTracker;
  /** Counts refused upgrades (the rest of the metrics follow the tracker). */
  metrics?: AgentMetrics;
  /** Secret rotations to tell the SFU about (`secrets-reload`); none when omitted. */
  secrets?: SecretWatch;
}

/** The WebSocket push server; see the module comment for its rules. */
export class PushServer {
  readonly #deps: PushServerDeps;
  readonly #opts: Required<PushServerOptions>;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  #session: SfuSession | null = null;
  #state: "new" | "listening" | "stopping" | "stopped" = "new";
  #unsubscribe: (() => void) | null = null;
  #unsubscribeSecrets: (() => void) | null = null;

  constructor(deps: PushServerDeps, options: PushServerOptions) {
    const opts = { ...PUSH_SERVER_DEFAULTS, ...options } as Required<PushServerOptions>;
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new TypeError(`PushServer: options.port must be 0..65535, got ${opts.port}`);
    }
    for (const k of ["ackTimeoutMs", "helloTimeoutMs"] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new TypeError(`PushServer: options.${k} must be >= 1 ms`);
    }
    if (opts.token !== null && opts.token.length === 0)
      throw new TypeError("PushServer: options.token must not be empty");
    this.#deps = deps;
    this.#opts = opts;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: WS_MAX_PAYLOAD,
      perMessageDeflate: false,
      autoPong: false, // pongs through guardPings (protocol/websocket-guard.ts)
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    // Advertises the optional frames this agent accepts (see the module comment).
    this.#wss.on("headers", (headers) => headers.push(`${FEATURES_HEADER}: ${HEALTH_FEATURE}`));
    this.#http = createServer((_req, res) => {
      res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
      res.end(`sfu-config push server: WebSocket with subprotocol ${SUBPROTOCOL} required\n`);
    });
    this.#http.on("upgrade", (req, socket, head) => this.#onUpgrade(req, socket, head));
  }

  /** Starts listening. Throws {@link ListenError} when the address is unavailable. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new LifecycleError(`PushServer already ${this.#state}`);
    await listenOn(this.#http, this.#opts.host, this.#opts.port, "push server");
    this.#state = "listening";
    this.#deps.metrics?.initPushOutcomes("websocket");
    this.#unsubscribe = this.#deps.store.subscribe((e) => {
      if (e.type === "desired") this.#session?.onDesired(e.hash);
    });
    this.#unsubscribeSecrets = this.#deps.secrets?.subscribe((g) => this.#session?.onSecretsChanged(g)) ?? null;
    this.#deps.logger.info({ address: this.url }, "push server listening");
  }

  /** Whether the server accepts connections. */
  get listening(): boolean {
    return this.#state === "listening";
  }

  /** The bound address (after start). */
  address(): AddressInfo {
    const a = this.#http.address();
    if (a === null || typeof a === "string") throw new LifecycleError("PushServer is not listening");
    return a;
  }

  /** `ws://host:port` of the server (after start). */
  get url(): string {
    const a = this.address();
    return `ws://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** The current SFU session, if an SFU is connected. */
  get session(): SfuSession | null {
    return this.#session;
  }

  /**
   * Stops accepting connections, waits up to `drainMs` for an unanswered
   * push to be answered, then closes the SFU connection with 1001. Idempotent.
   */
  async stop(drainMs = 5_000): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") return;
    const wasListening = this.#state === "listening";
    this.#state = "stopping";
    this.#unsubscribe?.();
    this.#unsubscribeSecrets?.();
    const closed = wasListening ? new Promise<void>((r) => this.#http.close(() => r())) : Promise.resolve();
    const session = this.#session;
    if (session) {
      await session.drain(drainMs);
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
      const session = new SfuSession(this.#deps, ws, {
        ackTimeoutMs: this.#opts.ackTimeoutMs,
        helloTimeoutMs: this.#opts.helloTimeoutMs,
        nackRetry: this.#opts.nackRetry,
      });
      this.#session = session;
      void session.closed.then(() => {
        if (this.#session === session) this.#session = null;
      });
    });
  }
}

/** Per-connection options of {@link SfuSession}. */
interface SessionOptions {
  ackTimeoutMs: number;
  helloTimeoutMs: number;
  nackRetry: NackRetryOptions | null;
}

/** At most one debug line per this interval for dropped health reports (a flood of bad reports must not flood the log). */
const HEALTH_DROP_LOG_INTERVAL_MS = 10_000;

interface InFlight {
  /** A config push, or a `secrets-reload` (version and hash then name the applied config). */
  kind: "config" | "secrets-reload";
  /** The secrets generation when it was sent (applying a config reads the secret files too). */
  generation: number;
  nonce: number;
  version: number;
  hash: string;
  sentAt: number;
  timer: NodeJS.Timeout | null;
  timedOut: boolean;
}

/** One SFU connection and its protocol state. Created by {@link PushServer}. */
export class SfuSession {
  /** Resolves with the close code and reason once the connection is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  readonly #opts: SessionOptions;
  readonly #ledger: PushLedger;
  readonly #abandoned = new Set<string>();
  readonly #log: Logger;
  readonly #deps: PushServerDeps;
  #hello: HelloMessage | null = null;
  /** The SFU's `hello.schemaVersions`. */
  #schemaVersions: readonly number[] = [];
  /** Whether the SFU listed `secrets-reload` in `hello.features`. */
  #reloadFeature = false;
  /** The secrets generation the SFU confirmed reading on this connection; null = not confirmed. */
  #secretsConfirmed: number | null = null;
  /** The last generation a `secrets-reload` was sent for (a failed one is not re-sent on this connection). */
  #secretsTried: number | null = null;
  #helloTimer: NodeJS.Timeout | null;
  #lastNonce = 0;
  #inFlight: InFlight | null = null;
  #drainWaiters: (() => void)[] = [];
  #open = true;
  /** Set once this side closed: later frames are ignored. */
  #closing = false;

  constructor(deps: PushServerDeps, ws: WebSocket, opts: SessionOptions) {
    this.#ws = ws;
    this.#opts = opts;
    this.#deps = deps;
    this.#ledger = new PushLedger({
      store: deps.store,
      tracker: deps.tracker,
      transport: "websocket",
      onRetryDue: () => this.maybePush(),
      nackRetry: opts.nackRetry ?? undefined,
    });
    this.#log = deps.logger.child({ component: "push" });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.#open = false;
        if (this.#helloTimer) clearTimeout(this.#helloTimer);
        if (this.#inFlight?.timer) clearTimeout(this.#inFlight.timer);
        this.#inFlight = null;
        this.#settleDrain();
        this.#ledger.dispose();
        if (this.#hello !== null) this.#ledger.recordLink(false);
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

  /** The SFU's hello, once received. */
  get hello(): HelloMessage | null {
    return this.#hello;
  }

  /** Closes the connection with `code` and `reason` (truncated to 123 bytes). */
  close(code: number, reason: string): void {
    if (!this.#open) return;
    if (code !== 1000 && code !== 1001) this.#log.warn({ code, reason }, "closing SFU connection");
    this.#closing = true;
    this.#ws.close(code, closeReason(reason));
    // A peer that never answers the close handshake is cut off.
    setTimeout(() => this.#ws.terminate(), 2_000).unref();
  }

  /** Resolves when no push is unanswered, or after `ms`. */
  drain(ms: number): Promise<void> {
    if (this.#inFlight === null || this.#inFlight.timedOut || !this.#open) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#drainWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** A config became desired: a hash held back after a NACK may be pushed again; then pushes what is due. */
  onDesired(hash: string): void {
    this.#ledger.desiredAgain(hash);
    this.#abandoned.delete(hash);
    this.maybePush();
  }

  /**
   * The secret files changed (new `generation`): a reload is due for an SFU
   * with the feature; for one without, the change is recorded as
   * `unsupported` (it keeps what it read until its config is re-applied).
   */
  onSecretsChanged(generation: number): void {
    if (!this.#open || this.#hello === null) return;
    if (!this.#reloadFeature) {
      const applied = this.#ledger.applied;
      this.#deps.tracker?.secretRotation(generation, "unsupported", {
        code: "SECRETS_RELOAD_UNSUPPORTED",
        message: `the secret files changed (generation ${generation}) but the SFU does not support secrets-reload; it keeps what it read${applied === null ? "" : ` for version ${applied.version}`} until a new config is applied or it restarts`,
      });
      return;
    }
    this.maybePush();
  }

  /** Pushes the store's desired config if this SFU needs it and may get it now, else a due `secrets-reload` (see the module comment). */
  maybePush(): void {
    if (!this.#open || this.#hello === null) return;
    if (this.#inFlight !== null && !this.#inFlight.timedOut) return; // latest wins at reply time
    // Not an abandoned hash, nor the timed-out one (it may still be answered late).
    const d = this.#ledger.next(
      (hash) => this.#abandoned.has(hash) || (this.#inFlight?.kind === "config" && this.#inFlight.hash === hash),
    );
    if (d === null) {
      this.#maybeReloadSecrets();
      return;
    }
    const schemaVersion = d.config.schemaVersion;
    if (!this.#schemaVersions.includes(schemaVersion)) {
      const message = `the SFU supports schemaVersions [${this.#schemaVersions.join(", ")}]; this config is schemaVersion ${schemaVersion}`;
      this.#ledger.recordUnsupported(d.version, d.hash, message);
      this.#log.warn(
        { version: d.version, hash: d.hash, schemaVersion, sfuSchemaVersions: this.#schemaVersions },
        `not pushing config: ${message}`,
      );
      return;
    }
    const nonce = ++this.#lastNonce;
    const msg = configMessage(d, nonce);
    if (this.#inFlight?.timedOut && this.#inFlight.kind === "config") this.#abandoned.add(this.#inFlight.hash);
    const inFlight: InFlight = {
      kind: "config",
      generation: this.#deps.secrets?.generation ?? 0,
      nonce,
      version: d.version,
      hash: d.hash,
      sentAt: performance.now(),
      timer: null,
      timedOut: false,
    };
    inFlight.timer = setTimeout(() => this.#onAckTimeout(inFlight), this.#opts.ackTimeoutMs);
    this.#inFlight = inFlight;
    this.#ws.send(JSON.stringify(msg));
    this.#ledger.recordSent();
    this.#log.info({ nonce, version: d.version, hash: d.hash, revision: d.revision }, "pushed config");
  }

  /** Sends `secrets-reload` when one is due (see the module comment). */
  #maybeReloadSecrets(): void {
    const secrets = this.#deps.secrets;
    if (secrets === undefined || !this.#reloadFeature || !secrets.hasSecrets) return;
    const applied = this.#ledger.applied;
    if (applied === null || applied.hash !== this.#deps.store.desired()?.hash) return;
    const generation = secrets.generation;
    if (this.#secretsConfirmed === generation || this.#secretsTried === generation) return;
    const nonce = ++this.#lastNonce;
    const inFlight: InFlight = {
      kind: "secrets-reload",
      generation,
      nonce,
      version: applied.version,
      hash: applied.hash,
      sentAt: performance.now(),
      timer: null,
      timedOut: false,
    };
    inFlight.timer = setTimeout(() => this.#onAckTimeout(inFlight), this.#opts.ackTimeoutMs);
    this.#inFlight = inFlight;
    this.#secretsTried = generation;
    this.#ws.send(JSON.stringify(secretsReloadMessage(nonce, applied, generation)));
    this.#log.info({ nonce, version: applied.version, hash: applied.hash, generation }, "sent secrets-reload");
  }

  #onAckTimeout(inFlight: InFlight): void {
    inFlight.timer = null;
    if (this.#inFlight !== inFlight || !this.#open) return;
    inFlight.timedOut = true;
    if (inFlight.kind === "secrets-reload") {
      this.#log.warn(
        { nonce: inFlight.nonce, generation: inFlight.generation, timeoutMs: this.#opts.ackTimeoutMs },
        "SFU did not answer secrets-reload in time; not re-sending it",
      );
      this.#deps.tracker?.secretRotation(inFlight.generation, "timeout", {
        code: "SECRETS_RELOAD_TIMEOUT",
        message: `the SFU did not answer secrets-reload of generation ${inFlight.generation} in time`,
      });
      this.#settleDrain();
      this.maybePush();
      return;
    }
    this.#log.warn(
      { nonce: inFlight.nonce, version: inFlight.version, hash: inFlight.hash, timeoutMs: this.#opts.ackTimeoutMs },
      "SFU did not answer the push in time; not re-sending it",
    );
    this.#ledger.recordTimeout(inFlight.version, inFlight.hash);
    this.#settleDrain();
    this.maybePush();
  }

  #settleDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
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
      this.#onHealth(msg);
      return;
    }
    this.#onReply(msg);
  }

  #onHealth(msg: HealthMessage): void {
    const { type: _type, ...counters } = msg;
    const refusal = this.#healthRefusal(counters);
    if (refusal !== null) {
      this.#deps.metrics?.healthFramesDropped.inc({ reason: refusal.code });
      this.#logHealthDrop(refusal);
      return;
    }
    this.#log.debug({ health: counters }, "SFU call health");
    this.#deps.tracker?.recordHealth(counters);
  }

  /**
   * Why a health report is not stored: about a hash the SFU does not run
   * (its applied hash, or the config in flight: the SFU reports a new hash
   * as it applies it, before its ack arrives), or counters that contradict
   * each other (protocol/health-checks.ts). Null when it is stored.
   */
  #healthRefusal(counters: HealthCounters): HealthRefusal | null {
    const inFlight = this.#inFlight?.kind === "config" ? this.#inFlight.hash : null;
    if (counters.hash !== this.#ledger.applied?.hash && counters.hash !== inFlight) {
      return {
        ok: false,
        code: "UNKNOWN_HASH",
        message: `health for ${counters.hash}, which the SFU does not run (applied ${this.#ledger.applied?.hash ?? "none"})`,
      };
    }
    return healthCountersRefusal(counters);
  }

  #healthDropsUnlogged = 0;
  #healthDropLoggedAt = Number.NEGATIVE_INFINITY;

  /** Debug-logs a dropped health report: at most one line per {@link HEALTH_DROP_LOG_INTERVAL_MS}, with the count skipped. */
  #logHealthDrop(refusal: HealthRefusal): void {
    const now = Date.now();
    if (now - this.#healthDropLoggedAt < HEALTH_DROP_LOG_INTERVAL_MS) {
      this.#healthDropsUnlogged++;
      return;
    }
    this.#log.debug(
      { code: refusal.code, reason: refusal.message, notLogged: this.#healthDropsUnlogged },
      "dropped an SFU health report",
    );
    this.#healthDropLoggedAt = now;
    this.#healthDropsUnlogged = 0;
  }

  #onHello(hello: HelloMessage): void {
    if (this.#hello !== null) {
      this.close(CloseCode.HELLO_REQUIRED, "hello sent twice");
      return;
    }
    if (this.#helloTimer) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    const schemaVersions = hello.schemaVersions as number[];
    const supported = SUPPORTED_SCHEMA_VERSIONS as readonly number[];
    if (!schemaVersions.some((v) => supported.includes(v))) {
      this.close(
        CloseCode.UNSUPPORTED_PROTOCOL,
        `no common schema version: this agent pushes schemaVersions ${supported.join(", ")}`,
      );
      return;
    }
    const applied = hello.applied as { version: number; hash: string } | null;
    const refused = this.#ledger.adopt(applied);
    if (refused !== null) {
      this.#log.error({ sfu: hello.sfu.name, applied }, `refused the SFU's hello: ${refused}`);
      this.close(CloseCode.PROTOCOL_ERROR, `hello refused: ${refused}`);
      return;
    }
    this.#hello = hello;
    this.#schemaVersions = [...schemaVersions];
    this.#reloadFeature = helloFeatures(hello).includes(SECRETS_RELOAD_FEATURE);
    this.#ledger.recordLink({ name: hello.sfu.name, version: hello.sfu.version });
    this.#deps.tracker?.secretsUnknown();
    this.#log.info(
      {
        sfu: hello.sfu.name,
        sfuVersion: hello.sfu.version,
        applied,
        schemaVersions,
        secretsReload: this.#reloadFeature,
      },
      "SFU hello",
    );
    this.maybePush();
  }

  #onReply(msg: AckMessage | NackMessage): void {
    if (msg.nonce > this.#lastNonce) {
      this.close(CloseCode.BAD_NONCE, `nonce ${msg.nonce} was never issued (last ${this.#lastNonce})`);
      return;
    }
    const f = this.#inFlight;
    if (f === null || msg.nonce !== f.nonce) {
      this.#log.debug({ nonce: msg.nonce, type: msg.type }, "ignored a stale reply");
      return;
    }
    if (msg.version !== f.version || msg.hash !== f.hash) {
      this.close(CloseCode.PROTOCOL_ERROR, `${msg.type} of nonce ${f.nonce} names another version or hash`);
      return;
    }
    if (f.timer) clearTimeout(f.timer);
    this.#inFlight = null;
    const seconds = (performance.now() - f.sentAt) / 1000;
    if (f.kind === "secrets-reload") {
      this.#onReloadReply(f, msg);
      this.#settleDrain();
      this.maybePush();
      return;
    }
    if (msg.type === "ack") {
      // Applying a config reads the secret files: the SFU reads them as of the generation it was sent at.
      this.#secretsConfirmed = f.generation;
      if (this.#deps.secrets !== undefined) this.#deps.tracker?.secretsApplied(f.generation);
      this.#abandoned.delete(f.hash);
      this.#ledger.recordAck(f.version, f.hash, seconds);
      this.#log.info(
        { nonce: f.nonce, version: f.version, hash: f.hash, ms: Math.round(seconds * 1e4) / 10 },
        "SFU applied config",
      );
    } else {
      const error = { code: msg.error.code, message: msg.error.message };
      const retryInMs = this.#ledger.recordNack(f.version, f.hash, error, seconds);
      this.#log.warn(
        { nonce: f.nonce, version: f.version, hash: f.hash, error, retryInMs },
        retryInMs === null
          ? "SFU rejected config; not re-sending it on this connection unless it becomes desired again"
          : "SFU could not apply config; re-sending it after a backoff",
      );
    }
    this.#settleDrain();
    this.maybePush();
  }

  #onReloadReply(f: InFlight, msg: AckMessage | NackMessage): void {
    if (msg.type === "ack") {
      this.#secretsConfirmed = f.generation;
      this.#deps.tracker?.secretRotation(f.generation, "ack", null);
      this.#log.info({ nonce: f.nonce, generation: f.generation }, "SFU reloaded its secret files");
      return;
    }
    const error = { code: msg.error.code, message: msg.error.message };
    this.#deps.tracker?.secretRotation(f.generation, "nack", error);
    this.#log.warn(
      { nonce: f.nonce, generation: f.generation, error, path: msg.error.path },
      "SFU could not reload its secret files; it keeps what it read before",
    );
  }
}
