/**
 * A minimal scripted agent side of sfu-config/1 for SFU tests: a WebSocket
 * server (subprotocol `sfu-config.v1`) on 127.0.0.1 that records `hello`,
 * `ack` and `nack` frames and the close codes the SFU uses, and pushes
 * `config` messages (valid ones, or whatever raw frame a test wants).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { type AckMessage, configHash, type HelloMessage, type NackMessage, SUBPROTOCOL } from "../../protocol/index.ts";

/** A frame the fake agent received, with the connection index it came on. */
export type Received =
  | { conn: number; message: HelloMessage }
  | { conn: number; message: AckMessage }
  | { conn: number; message: NackMessage };

/** Overrides of one pushed config message. */
export interface PushOptions {
  version?: number;
  /** Defaults to configHash(config). */
  hash?: string;
  /** Defaults to the next nonce of the current connection. */
  nonce?: number;
  schemaVersion?: number;
  revision?: string | null;
}

/** Options of {@link FakeAgent.start}. */
export interface FakeAgentOptions {
  /** When set, connections without `Authorization: Bearer <token>` are refused (401). */
  token?: string;
}

/** The scripted agent. Always call stop(). */
export class FakeAgent {
  readonly received: Received[] = [];
  /** Close codes of connections the SFU closed, in order. */
  readonly closes: { conn: number; code: number; reason: string }[] = [];
  /** Authorization headers seen on upgrade, in order. */
  readonly authHeaders: (string | undefined)[] = [];
  readonly #wss: WebSocketServer;
  #socket: WebSocket | null = null;
  #conn = -1;
  #nonce = 0;
  #version = 0;
  readonly #waiters = new Set<() => void>();

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
  }

  /** Starts listening on 127.0.0.1:0. */
  static async start(options: FakeAgentOptions = {}): Promise<FakeAgent> {
    const wss = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
      verifyClient: (info, cb) => {
        agent.authHeaders.push(info.req.headers.authorization);
        if (options.token && info.req.headers.authorization !== `Bearer ${options.token}`) cb(false, 401);
        else cb(true);
      },
    });
    const agent: FakeAgent = new FakeAgent(wss);
    await once(wss, "listening");
    wss.on("connection", (ws) => {
      const conn = ++agent.#conn;
      agent.#socket = ws;
      agent.#nonce = 0;
      ws.on("message", (data) => {
        const message = JSON.parse(data.toString()) as Received["message"];
        if (message.type === "hello" && message.applied)
          agent.#version = Math.max(agent.#version, message.applied.version);
        agent.received.push({ conn, message } as Received);
        agent.#notify();
      });
      ws.on("close", (code, reason) => {
        agent.closes.push({ conn, code, reason: reason.toString() });
        if (agent.#socket === ws) agent.#socket = null;
        agent.#notify();
      });
      agent.#notify();
    });
    return agent;
  }

  /** `ws://127.0.0.1:<port>` */
  get url(): string {
    return `ws://127.0.0.1:${(this.#wss.address() as AddressInfo).port}`;
  }

  /** Index of the latest connection (0-based), -1 before any. */
  get connectionCount(): number {
    return this.#conn + 1;
  }

  /** True while an SFU is connected. */
  get connected(): boolean {
    return this.#socket !== null && this.#socket.readyState === WebSocket.OPEN;
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves when `predicate` holds (checked after every event); rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (predicate()) {
          this.#waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`FakeAgent: timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Waits for the `hello` of connection `conn` (default: the next one) and returns it. */
  async waitForHello(conn = this.#conn + (this.connected ? 0 : 1)): Promise<HelloMessage> {
    await this.waitFor(
      () => this.received.some((r) => r.conn === conn && r.message.type === "hello"),
      `hello on connection ${conn}`,
    );
    return this.received.find((r) => r.conn === conn && r.message.type === "hello")!.message as HelloMessage;
  }

  /** Pushes `config`; returns the nonce used. */
  push(config: unknown, options: PushOptions = {}): { nonce: number; version: number; hash: string } {
    if (!this.#socket) throw new Error("FakeAgent: no SFU connected");
    const nonce = options.nonce ?? ++this.#nonce;
    if (options.nonce !== undefined) this.#nonce = Math.max(this.#nonce, nonce);
    const version = options.version ?? ++this.#version;
    this.#version = Math.max(this.#version, version);
    const hash = options.hash ?? configHash(config);
    this.#socket.send(
      JSON.stringify({
        type: "config",
        nonce,
        version,
        hash,
        revision: options.revision ?? null,
        schemaVersion: options.schemaVersion ?? configSchemaVersion(config),
        config,
      }),
    );
    return { nonce, version, hash };
  }

  /** Pushes `config` and waits for the ack or nack of its nonce. */
  async pushAndWait(config: unknown, options: PushOptions = {}): Promise<AckMessage | NackMessage> {
    const conn = this.#conn;
    const { nonce } = this.push(config, options);
    return this.waitForReply(nonce, conn);
  }

  /** Waits for the reply to `nonce` on connection `conn` (default current). */
  async waitForReply(nonce: number, conn = this.#conn): Promise<AckMessage | NackMessage> {
    const find = () =>
      this.received.find(
        (r) => r.conn === conn && r.message.type !== "hello" && (r.message as AckMessage).nonce === nonce,
      );
    await this.waitFor(() => find() !== undefined, `reply to nonce ${nonce}`);
    return find()!.message as AckMessage | NackMessage;
  }

  /**
   * Sends `secrets-reload` for the applied `version`/`hash` with `generation`
   * and waits for its ack or nack.
   */
  async secretsReloadAndWait(
    applied: { version: number; hash: string },
    generation: number,
  ): Promise<AckMessage | NackMessage> {
    if (!this.#socket) throw new Error("FakeAgent: no SFU connected");
    const conn = this.#conn;
    const nonce = ++this.#nonce;
    this.#socket.send(JSON.stringify({ type: "secrets-reload", nonce, ...applied, generation }));
    return this.waitForReply(nonce, conn);
  }

  /** Sends a raw text frame (for protocol-violation tests). */
  sendRaw(text: string): void {
    if (!this.#socket) throw new Error("FakeAgent: no SFU connected");
    this.#socket.send(text);
  }

  /** Drops the current connection (simulates an agent restart). */
  dropConnection(): void {
    this.#socket?.terminate();
  }

  /** Stops the server and closes every connection. */
  async stop(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

/** `config.schemaVersion` when it is an integer, else 1. */
function configSchemaVersion(config: unknown): number {
  const v = (config as { schemaVersion?: unknown } | null)?.schemaVersion;
  return typeof v === "number" && Number.isInteger(v) ? v : 1;
}
