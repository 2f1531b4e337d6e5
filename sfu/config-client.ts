/**
 * The SFU side of sfu-config/1: dials the agent, says `hello`, applies each
 * pushed config through the {@link ConfigApplier} and answers `ack` or `nack`,
 * and sends `health` frames when the agent advertises them. PROTOCOL.md
 * [section 3](../protocol/PROTOCOL.md#3-connection-lifecycle).
 */
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { type ClientOptions, type RawData, WebSocket } from "ws";
import {
  type AckMessage,
  CloseCode,
  type ConfigMessage,
  closeReason,
  configHash,
  FEATURES_HEADER,
  HEALTH_FEATURE,
  type HealthMessage,
  type HelloMessage,
  MAX_FRAME_BYTES,
  type NackMessage,
  PROTOCOL_VERSION,
  parseAgentFrame,
  readTokenFile,
  reconnectDelay,
  SECRETS_RELOAD_FEATURE,
  type SecretsReloadMessage,
  SUBPROTOCOL,
  SUPPORTED_SCHEMA_VERSIONS,
} from "../protocol/index.ts";
import type { CallHealth } from "./call-health.ts";
import type { ConfigApplier } from "./config-applier.ts";
import type { ConfigState } from "./config-state.ts";
import { InvalidOptionsError } from "./errors.ts";

/** Optional protocol features this SFU advertises in `hello.features`. */
export const SFU_FEATURES = [SECRETS_RELOAD_FEATURE] as const;

/** Options of {@link ConfigClient}; defaults in {@link CONFIG_CLIENT_DEFAULTS}. */
export interface ConfigClientOptions {
  /** Agent URL, e.g. `ws://127.0.0.1:7070`. */
  url: string;
  logger: Logger;
  applier: ConfigApplier;
  state: ConfigState;
  /** File holding a bearer token sent as `Authorization: Bearer <token>`; re-read on every dial. */
  tokenFile?: string | null;
  sfuName?: string;
  sfuVersion?: string;
  /** First reconnect delay (ms). */
  initialBackoffMs?: number;
  /** Largest reconnect delay (ms). */
  maxBackoffMs?: number;
  /** Random source in [0, 1) for jitter. */
  random?: () => number;
  /** Called with every applied or refused version (for metrics). */
  onOutcome?: (outcome: "ack" | "nack", code: string | null) => void;
  /** Called with the outcome of every secrets reload (for metrics). */
  onSecretsReload?: (outcome: "ack" | "nack") => void;
  /** Call-health counters reported in `health` frames when the agent advertises the feature. */
  health?: CallHealth | null;
  /** Interval of `health` frames while the counters change (ms). */
  healthIntervalMs?: number;
}

/** Defaults of {@link ConfigClientOptions}. */
export const CONFIG_CLIENT_DEFAULTS = {
  sfuName: "sfu-server",
  sfuVersion: "0.1.0",
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  healthIntervalMs: 5_000,
} as const;

/**
 * How long a close handshake with the agent may take before ws destroys the
 * socket (its `closeTimeout` option): the agent is on 127.0.0.1, so an
 * answer that takes longer means it is stuck, and stop() must not wait on it.
 */
export const AGENT_CLOSE_TIMEOUT_MS = 1000;

/**
 * Dials the agent and applies what it pushes. start()/stop().
 *
 * Protocol violations by the agent (bad JSON, unknown type, schema mismatch,
 * oversize, a nonce that did not increase) close the control connection with
 * the matching 4xxx code; media is never affected. The client reconnects with
 * exponential backoff and jitter and keeps serving with the last applied
 * config meanwhile.
 *
 * The first dial at boot is made at once (the backoff only comes before
 * re-attempts). `ws` itself fails a connection whose 101 does not select the
 * subprotocol, closes invalid UTF-8 text with 1007, and closes frames above
 * its own limit (2 x MAX_FRAME_BYTES here, so that the protocol layer answers
 * 4009 first) with 1009. Configs are answered one at a time, in order.
 *
 * Call health (optional): when the agent's upgrade response carries
 * `sfu-config-features: health`, the client sends a `health` frame with the
 * counters of the applied hash right after `hello`, at once when a config
 * with another hash is applied (the counters restart), and every
 * `healthIntervalMs` while they changed. Without the header it never sends
 * one, so an agent that does not know the frame never sees it.
 */
export class ConfigClient {
  readonly #o: Required<Omit<ConfigClientOptions, "tokenFile" | "onOutcome" | "onSecretsReload" | "health">> &
    Pick<ConfigClientOptions, "tokenFile" | "onOutcome" | "onSecretsReload" | "health">;
  readonly #log: Logger;
  #ws: WebSocket | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #running = false;
  #connected = false;
  /** Configs are answered one at a time, in the order received. */
  #answering: Promise<void> = Promise.resolve();
  #healthTimer: ReturnType<typeof setInterval> | undefined;
  #healthOff: (() => void) | undefined;

  constructor(options: ConfigClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new InvalidOptionsError(`ConfigClient: url ${JSON.stringify(options.url)} is not a URL`);
    }
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      throw new InvalidOptionsError(`ConfigClient: url must be ws:// or wss://, got ${url.protocol}`);
    }
    const o = { ...CONFIG_CLIENT_DEFAULTS, random: Math.random, ...stripUndefined(options) };
    if (!(o.initialBackoffMs > 0) || !(o.maxBackoffMs >= o.initialBackoffMs)) {
      throw new InvalidOptionsError("ConfigClient: need 0 < initialBackoffMs <= maxBackoffMs");
    }
    if (!(Number.isFinite(o.healthIntervalMs) && o.healthIntervalMs >= 10)) {
      throw new InvalidOptionsError("ConfigClient: healthIntervalMs must be >= 10 ms");
    }
    this.#o = o;
    this.#log = options.logger.child({ component: "config-client" });
  }

  /** True while a control connection to the agent is open. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Starts dialing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#dial();
  }

  /** Closes the connection and stops reconnecting. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#stopHealth();
    const ws = this.#ws;
    this.#ws = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      // Emitted at the latest AGENT_CLOSE_TIMEOUT_MS after close(): ws then destroys the socket.
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "SFU stopping");
      });
    }
  }

  /** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter in [50%, 100%]. */
  backoffDelay(attempt: number): number {
    return reconnectDelay(attempt, { baseMs: this.#o.initialBackoffMs, maxMs: this.#o.maxBackoffMs }, this.#o.random);
  }

  async #dial(): Promise<void> {
    if (!this.#running) return;
    const headers: Record<string, string> = {};
    if (this.#o.tokenFile) {
      const token = await readTokenFile(this.#o.tokenFile);
      if (!token.ok) {
        this.#log.error({ code: token.code, file: this.#o.tokenFile, reason: token.message }, "cannot read token file");
        this.#scheduleReconnect();
        return;
      }
      headers.authorization = `Bearer ${token.value}`;
    }
    if (!this.#running) return;
    // closeTimeout is a ws option its type definitions do not list yet.
    const options: ClientOptions & { closeTimeout: number } = {
      headers,
      maxPayload: MAX_FRAME_BYTES * 2,
      handshakeTimeout: 10_000,
      closeTimeout: AGENT_CLOSE_TIMEOUT_MS,
    };
    const ws = new WebSocket(this.#o.url, SUBPROTOCOL, options);
    this.#ws = ws;
    let lastNonce = 0;
    let healthAdvertised = false;
    ws.on("upgrade", (res: IncomingMessage) => {
      healthAdvertised = advertises(res.headers[FEATURES_HEADER], HEALTH_FEATURE);
    });
    ws.on("open", () => {
      this.#connected = true;
      this.#attempt = 0;
      const hello: HelloMessage = {
        type: "hello",
        protocol: PROTOCOL_VERSION,
        sfu: { name: this.#o.sfuName, version: this.#o.sfuVersion },
        schemaVersions: [...SUPPORTED_SCHEMA_VERSIONS],
        applied: this.#o.state.applied,
        features: [...SFU_FEATURES],
      };
      ws.send(JSON.stringify(hello));
      this.#log.info({ url: this.#o.url, applied: hello.applied, health: healthAdvertised }, "connected to agent");
      if (healthAdvertised) this.#startHealth(ws);
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) return this.#violation(ws, CloseCode.BAD_JSON, "binary frames are not allowed");
      const text = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
      const parsed = parseAgentFrame(text);
      if (!parsed.ok) return this.#violation(ws, parsed.closeCode, parsed.reason);
      const message = parsed.message;
      if (message.nonce <= lastNonce) {
        return this.#violation(
          ws,
          CloseCode.BAD_NONCE,
          `config nonce ${message.nonce} did not increase (last ${lastNonce})`,
        );
      }
      lastNonce = message.nonce;
      this.#answering = this.#answering
        .then(() =>
          message.type === "secrets-reload" ? this.#handleSecretsReload(ws, message) : this.#handleConfig(ws, message),
        )
        .catch((err: unknown) => this.#log.error({ err }, "answering a config failed"));
    });
    ws.on("close", (code, reason) => {
      const was = this.#connected;
      if (this.#ws === ws) {
        this.#ws = null;
        this.#connected = false;
        this.#stopHealth();
      }
      if (was) this.#log.warn({ code, reason: reason.toString() }, "agent connection closed");
      this.#scheduleReconnect();
    });
    ws.on("error", (err) => this.#log.debug({ err: err.message }, "agent connection error"));
  }

  /**
   * Whether `message` carries the config already applied: a supported
   * schemaVersion equal to `config.schemaVersion`, and a hash that is both
   * correct for its config and the applied one (section 6, steps 1, 2, 2a).
   */
  #alreadyApplied(message: ConfigMessage): boolean {
    const current = this.#o.state.current;
    if (current === null || current.hash !== message.hash) return false;
    if (!(SUPPORTED_SCHEMA_VERSIONS as readonly number[]).includes(message.schemaVersion)) return false;
    if ((message.config as { schemaVersion?: unknown }).schemaVersion !== message.schemaVersion) return false;
    try {
      return configHash(message.config) === message.hash;
    } catch {
      return false;
    }
  }

  async #handleConfig(ws: WebSocket, message: ConfigMessage): Promise<void> {
    this.#log.debug({ nonce: message.nonce, version: message.version, hash: message.hash }, "config received");
    const current = this.#o.state.current;
    if (current !== null && this.#alreadyApplied(message)) {
      if (current.version !== message.version) {
        this.#o.state.swap({ ...current, version: message.version }, (err) =>
          this.#log.error({ err }, "config listener failed"),
        );
      }
      this.#log.info(
        { version: message.version, hash: message.hash },
        "config already applied (same hash): acked without re-applying",
      );
      this.#o.onOutcome?.("ack", null);
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "ack", nonce: message.nonce, version: message.version, hash: message.hash }));
      }
      return;
    }
    const outcome = await this.#o.applier.apply({
      version: message.version,
      hash: message.hash,
      revision: message.revision,
      schemaVersion: message.schemaVersion,
      config: message.config,
    });
    const base = { nonce: message.nonce, version: message.version, hash: message.hash };
    let reply: AckMessage | NackMessage;
    if (outcome.ok) {
      reply = { type: "ack", ...base };
      if (outcome.portIgnored) this.#log.info("server.port differs from --port; --port wins");
      this.#o.onOutcome?.("ack", null);
    } else {
      reply = { type: "nack", ...base, applied: this.#o.state.applied, error: { ...outcome.error } };
      this.#log.warn({ version: message.version, error: outcome.error }, "config refused");
      this.#o.onOutcome?.("nack", outcome.error.code);
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
  }

  async #handleSecretsReload(ws: WebSocket, message: SecretsReloadMessage): Promise<void> {
    const base = { nonce: message.nonce, version: message.version, hash: message.hash };
    const outcome = await this.#o.applier.reloadSecrets({ version: message.version, hash: message.hash });
    let reply: AckMessage | NackMessage;
    if (outcome.ok) {
      reply = { type: "ack", ...base };
      this.#o.onSecretsReload?.("ack");
      this.#log.info({ generation: message.generation, changed: outcome.changed }, "secrets reload acked");
    } else {
      reply = { type: "nack", ...base, applied: this.#o.state.applied, error: { ...outcome.error } };
      this.#o.onSecretsReload?.("nack");
      this.#log.warn({ generation: message.generation, error: outcome.error }, "secrets reload refused");
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
  }

  /** Sends the counters now, then every healthIntervalMs while they changed (see the module comment). */
  #startHealth(ws: WebSocket): void {
    const health = this.#o.health;
    if (!health) return;
    let sentGeneration = -1;
    let sentHash: string | null = null;
    const send = () => {
      const counters = health.snapshot();
      if (counters === null || health.generation === sentGeneration || ws.readyState !== WebSocket.OPEN) return;
      sentGeneration = health.generation;
      sentHash = counters.hash;
      const frame: HealthMessage = { type: "health", ...counters };
      ws.send(JSON.stringify(frame));
    };
    this.#stopHealth();
    send();
    this.#healthTimer = setInterval(send, this.#o.healthIntervalMs);
    this.#healthTimer.unref();
    this.#healthOff = health.onChange(() => {
      if (health.snapshot()?.hash !== sentHash) send();
    });
  }

  #stopHealth(): void {
    clearInterval(this.#healthTimer);
    this.#healthTimer = undefined;
    this.#healthOff?.();
    this.#healthOff = undefined;
  }

  #violation(ws: WebSocket, code: number, reason: string): void {
    this.#log.warn({ code, reason }, "agent protocol violation; closing control connection");
    // A peer that does not complete the close handshake is cut off by ws after AGENT_CLOSE_TIMEOUT_MS.
    ws.close(code, closeReason(reason));
  }

  #scheduleReconnect(): void {
    if (!this.#running || this.#timer !== undefined) return;
    const delay = this.backoffDelay(this.#attempt++);
    this.#log.debug({ delay }, "reconnecting to agent");
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#dial();
    }, delay);
  }
}

/** Whether a comma-separated feature header lists `feature`. */
export function advertises(header: string | string[] | undefined, feature: string): boolean {
  const text = Array.isArray(header) ? header.join(",") : (header ?? "");
  return text
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .includes(feature);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
