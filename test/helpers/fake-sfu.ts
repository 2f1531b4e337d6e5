/**
 * A scripted SFU client of sfu-config/1 for tests and benchmarks: it dials
 * the agent's push server, sends `hello`, records every `config` it
 * receives, and answers each one as told: ack, nack (with a code), stall
 * (never answer; answer later by hand with {@link FakeSfu.ack}/{@link FakeSfu.nack}),
 * or disconnect. It never validates or applies the config: that is the real
 * SFU's job. With `features: ["secrets-reload"]` it also records every
 * `secrets-reload` and answers it as told (`reloadReply`, default ack).
 *
 * @example
 * const sfu = await FakeSfu.connect({ url: agent.pushUrl });
 * const first = await sfu.waitForConfig((m) => m.version === 1);
 * sfu.setReply({ kind: "nack", code: "RESTART_REQUIRED" });
 * await sfu.close();
 */
import WebSocket from "ws";
import { type ConfigMessage, SUBPROTOCOL } from "../../protocol/messages-schema.ts";
import type { SecretsReloadMessage } from "../../protocol/secrets-reload.ts";

/** How the fake SFU answers a config. */
export type FakeSfuReply =
  | { kind: "ack" }
  | { kind: "nack"; code: string; message?: string }
  | { kind: "stall" }
  | { kind: "disconnect" };

/** Options of {@link FakeSfu.connect}. */
export interface FakeSfuOptions {
  /** Push server URL, e.g. `ws://127.0.0.1:7070`. */
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as an `Origin` header (the agent must refuse it). */
  origin?: string;
  /** Offered subprotocols (default [`sfu-config.v1`]). */
  protocols?: string[];
  /** `hello.sfu` (default fake-sfu / 0.0.0). */
  name?: string;
  version?: string;
  /** `hello.applied`: what this SFU claims to run (default null). */
  applied?: { version: number; hash: string } | null;
  schemaVersions?: number[];
  /** `hello.features` (omitted from the hello when not given). */
  features?: string[];
  /** Answer to each secrets-reload (default ack; `disconnect` and `stall` as for configs). */
  reloadReply?: FakeSfuReply;
  /** Send hello on open (default true). */
  hello?: boolean;
  /** Answer to each config (default ack), or a function choosing per config. */
  reply?: FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply);
  /** Delay before answering, ms (default 0). */
  replyDelayMs?: number;
  /** Connect timeout, ms (default 5000). */
  timeoutMs?: number;
}

/** A config as received, with the receive time (`performance.now()`). */
export interface ReceivedConfig {
  message: ConfigMessage;
  at: number;
}

/** Why a connection attempt failed at the HTTP upgrade. */
export class FakeSfuRefused extends Error {
  readonly code = "REFUSED" as const;
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string) {
    super(`upgrade refused with HTTP ${status}: ${body.trim()}`);
    this.status = status;
    this.body = body;
  }
}

/** The scripted SFU client; see the module comment. */
export class FakeSfu {
  /** Every config received, in order. */
  readonly received: ReceivedConfig[] = [];
  /** Every secrets-reload received, in order. */
  readonly reloads: { message: SecretsReloadMessage; at: number }[] = [];
  /** Resolves when the connection closes, with the agent's close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** What this fake SFU runs: hello.applied, then the last acked config. */
  applied: { version: number; hash: string } | null;
  readonly #ws: WebSocket;
  #reply: FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply);
  readonly #delay: number;
  #reloadReply: FakeSfuReply;
  #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket, options: FakeSfuOptions) {
    this.#ws = ws;
    this.applied = options.applied ?? null;
    this.#reply = options.reply ?? { kind: "ack" };
    this.#delay = options.replyDelayMs ?? 0;
    this.#reloadReply = options.reloadReply ?? { kind: "ack" };
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.#wake();
        resolve({ code, reason: reason.toString("utf8") });
      });
    });
    ws.on("error", () => {});
    ws.on("message", (data) => this.#onMessage(String(data)));
  }

  /**
   * Connects and (unless `hello: false`) sends hello. Rejects with
   * {@link FakeSfuRefused} when the agent refuses the upgrade.
   */
  static connect(options: FakeSfuOptions): Promise<FakeSfu> {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`;
    if (options.origin !== undefined) headers["origin"] = options.origin;
    // closeTimeout (a ws option its type definitions do not list yet): close()
    // ends in a 'close' event within 2 s even when the agent does not answer.
    const wsOptions: WebSocket.ClientOptions & { closeTimeout: number } = {
      headers,
      handshakeTimeout: options.timeoutMs ?? 5_000,
      perMessageDeflate: false,
      closeTimeout: 2_000,
    };
    const ws = new WebSocket(options.url, options.protocols ?? [SUBPROTOCOL], wsOptions);
    const sfu = new FakeSfu(ws, options);
    return new Promise((resolve, reject) => {
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString("utf8");
        });
        res.on("end", () => {
          reject(new FakeSfuRefused(res.statusCode ?? 0, body));
          ws.terminate();
        });
      });
      ws.once("error", (err) => reject(err));
      ws.once("open", () => {
        if (options.hello !== false) {
          sfu.send({
            type: "hello",
            protocol: 1,
            sfu: { name: options.name ?? "fake-sfu", version: options.version ?? "0.0.0" },
            schemaVersions: options.schemaVersions ?? [1],
            applied: sfu.applied,
            ...(options.features === undefined ? {} : { features: options.features }),
          });
        }
        resolve(sfu);
      });
    });
  }

  /** Whether the connection is open. */
  get open(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Changes how later configs are answered. */
  setReply(reply: FakeSfuReply | ((msg: ConfigMessage) => FakeSfuReply)): void {
    this.#reply = reply;
  }

  /** Changes how later secrets-reload messages are answered. */
  setReloadReply(reply: FakeSfuReply): void {
    this.#reloadReply = reply;
  }

  /** Sends a raw frame (a string as is, anything else as JSON). */
  send(frame: unknown): void {
    this.#ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Acks `msg` (e.g. one received while stalling). */
  ack(msg: ConfigMessage): void {
    this.applied = { version: msg.version, hash: msg.hash };
    this.send({ type: "ack", nonce: msg.nonce, version: msg.version, hash: msg.hash });
  }

  /** Nacks `msg` with `code`. */
  nack(msg: ConfigMessage, code: string, message = `rejected by fake SFU (${code})`): void {
    this.send({
      type: "nack",
      nonce: msg.nonce,
      version: msg.version,
      hash: msg.hash,
      applied: this.applied,
      error: { code, message },
    });
  }

  /**
   * Resolves with the first received config (past or future) matching
   * `predicate`; rejects after `timeoutMs` or when the connection closes first.
   */
  async waitForConfig(predicate: (m: ConfigMessage) => boolean, timeoutMs = 5_000): Promise<ConfigMessage> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.received.find((r) => predicate(r.message));
      if (hit) return hit.message;
      if (this.#ws.readyState === WebSocket.CLOSED)
        throw new Error("fake SFU: connection closed while waiting for a config");
      const left = deadline - performance.now();
      if (left <= 0)
        throw new Error(`fake SFU: no matching config within ${timeoutMs} ms (got ${this.received.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves with the first secrets-reload (past or future) matching `predicate`; like {@link waitForConfig}. */
  async waitForReload(
    predicate: (m: SecretsReloadMessage) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<SecretsReloadMessage> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = this.reloads.find((r) => predicate(r.message));
      if (hit) return hit.message;
      if (this.#ws.readyState === WebSocket.CLOSED) {
        throw new Error("fake SFU: connection closed while waiting for a secrets-reload");
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`fake SFU: no matching secrets-reload within ${timeoutMs} ms (got ${this.reloads.length})`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves with the config carrying `hash` (see {@link waitForConfig}). */
  waitForHash(hash: string, timeoutMs = 5_000): Promise<ConfigMessage> {
    return this.waitForConfig((m) => m.hash === hash, timeoutMs);
  }

  /** Closes the connection (1000) and waits until it is closed. */
  async close(): Promise<void> {
    if (this.#ws.readyState !== WebSocket.CLOSED) this.#ws.close(1000, "fake SFU done");
    await this.closed;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #onMessage(text: string): void {
    const parsed = JSON.parse(text) as ConfigMessage | SecretsReloadMessage;
    if (parsed.type === "secrets-reload") {
      this.#onReload(parsed);
      return;
    }
    const msg = parsed;
    if (msg.type !== "config") return;
    this.received.push({ message: msg, at: performance.now() });
    this.#wake();
    const reply = typeof this.#reply === "function" ? this.#reply(msg) : this.#reply;
    const act = () => {
      if (!this.open) return;
      switch (reply.kind) {
        case "ack":
          return this.ack(msg);
        case "nack":
          return this.nack(msg, reply.code, reply.message);
        case "disconnect":
          return this.#ws.close(1000, "fake SFU disconnects");
        case "stall":
          return;
      }
    };
    if (this.#delay > 0) setTimeout(act, this.#delay);
    else act();
  }

  #onReload(msg: SecretsReloadMessage): void {
    this.reloads.push({ message: msg, at: performance.now() });
    this.#wake();
    const reply = this.#reloadReply;
    const act = () => {
      if (!this.open) return;
      switch (reply.kind) {
        case "ack":
          return this.send({ type: "ack", nonce: msg.nonce, version: msg.version, hash: msg.hash });
        case "nack":
          return this.send({
            type: "nack",
            nonce: msg.nonce,
            version: msg.version,
            hash: msg.hash,
            applied: this.applied,
            error: { code: reply.code, message: reply.message ?? `reload refused by fake SFU (${reply.code})` },
          });
        case "disconnect":
          return this.#ws.close(1000, "fake SFU disconnects");
        case "stall":
          return;
      }
    };
    if (this.#delay > 0) setTimeout(act, this.#delay);
    else act();
  }
}
