/**
 * One SFU connection as the conformance kit sees it: waits for `hello`, then
 * turns every later frame into a {@link SessionEvent} the cases consume in
 * order. Frames are checked with the protocol's own parser
 * (protocol/messages.ts); a frame it refuses makes the kit close the link with
 * the close code the parser names, exactly as the real agent would.
 *
 * The session never throws for anything the SFU does: timeouts, closes and
 * bad frames are returned values.
 */
import type { WebSocket } from "ws";
import { CloseCode } from "../../protocol/close-codes.ts";
import { closeReason, parseSfuFrame } from "../../protocol/messages.ts";
import type { AckMessage, HealthMessage, HelloMessage, NackMessage } from "../../protocol/messages-schema.ts";

/** Health frames a session keeps (the newest). */
const MAX_HEALTH_FRAMES = 100;

/** How a WebSocket connection ended. `byKit` is true when the kit started the close. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** Clock reading (ms) when the close was observed. */
  at: number;
  byKit: boolean;
}

/** Something that happened on a session after `hello`, in arrival order. */
export type SessionEvent =
  | { kind: "reply"; message: AckMessage | NackMessage; raw: string }
  /** The SFU sent a frame the protocol refuses; the kit closed the link with `closeCode`. */
  | { kind: "invalid"; reason: string; closeCode: number; raw: string }
  | { kind: "closed"; close: CloseInfo }
  | { kind: "timeout" };

/** Outcome of waiting for an SFU's `hello` on a new connection. */
export type HelloOutcome = { ok: true; hello: HelloMessage; delayMs: number } | { ok: false; reason: string };

/** Dependencies of a session. */
export interface SessionDeps {
  /** Monotonic clock in milliseconds. */
  clock: () => number;
}

/** Options of a session. */
export interface SessionOptions {
  /** How long the SFU has to send `hello` after the connection opens (PROTOCOL.md: 5 s). */
  helloTimeoutMs: number;
}

type Waiter = (event: SessionEvent) => void;

/**
 * Wraps an accepted WebSocket. Construct it as soon as the connection opens;
 * {@link SfuSession.helloOutcome} settles once the first frame (or the hello
 * timeout) is seen. Afterwards use {@link next}, {@link send},
 * {@link sendRaw}, {@link close} and {@link waitClosed}.
 */
export class SfuSession {
  /** Settles with the hello, or why there was none (the kit then closed the link). */
  readonly helloOutcome: Promise<HelloOutcome>;
  /** Clock reading when the connection opened. */
  readonly openedAt: number;
  /** Highest nonce the kit has sent on this connection (0 before the first config). */
  lastNonce = 0;
  /**
   * Valid `health` frames received after hello (the optional call-health
   * feature the kit advertises), in arrival order with the clock reading. They
   * are not events: a case waiting for a reply never sees them.
   */
  readonly healthFrames: { message: HealthMessage; at: number }[] = [];
  #ws: WebSocket;
  #clock: () => number;
  #hello: HelloMessage | null = null;
  #events: SessionEvent[] = [];
  #waiters: Waiter[] = [];
  #closeWaiters: ((info: CloseInfo) => void)[] = [];
  #closeInfo: CloseInfo | null = null;
  #kitClosing = false;

  constructor(ws: WebSocket, options: SessionOptions, deps: SessionDeps) {
    this.#ws = ws;
    this.#clock = deps.clock;
    this.openedAt = deps.clock();
    let settleHello: (outcome: HelloOutcome) => void = () => {};
    this.helloOutcome = new Promise((resolve) => {
      settleHello = resolve;
    });
    const timer = setTimeout(() => {
      settleHello({ ok: false, reason: `no hello within ${options.helloTimeoutMs} ms of connecting` });
      this.close(CloseCode.HELLO_TIMEOUT, "hello timeout");
    }, options.helloTimeoutMs);
    ws.on("message", (data, isBinary) => {
      const raw = isBinary ? "<binary frame>" : String(data);
      const parsed = isBinary
        ? ({ ok: false, closeCode: CloseCode.BAD_JSON, reason: "binary frame" } as const)
        : parseSfuFrame(data as Buffer);
      if (this.#hello === null) {
        clearTimeout(timer);
        if (!parsed.ok) {
          settleHello({ ok: false, reason: `first frame refused (${parsed.closeCode}): ${parsed.reason}` });
          this.close(parsed.closeCode, parsed.reason);
        } else if (parsed.message.type !== "hello") {
          settleHello({ ok: false, reason: `first frame is ${JSON.stringify(parsed.message.type)}, not "hello"` });
          this.close(CloseCode.HELLO_REQUIRED, "hello required");
        } else {
          this.#hello = parsed.message;
          settleHello({ ok: true, hello: parsed.message, delayMs: this.#clock() - this.openedAt });
        }
        return;
      }
      if (!parsed.ok) {
        this.#push({ kind: "invalid", reason: parsed.reason, closeCode: parsed.closeCode, raw });
        this.close(parsed.closeCode, parsed.reason);
      } else if (parsed.message.type === "hello") {
        this.#push({ kind: "invalid", reason: "second hello", closeCode: CloseCode.HELLO_REQUIRED, raw });
        this.close(CloseCode.HELLO_REQUIRED, "hello sent twice");
      } else if (parsed.message.type === "health") {
        if (this.healthFrames.length >= MAX_HEALTH_FRAMES) this.healthFrames.shift();
        this.healthFrames.push({ message: parsed.message, at: this.#clock() });
      } else {
        this.#push({ kind: "reply", message: parsed.message, raw });
      }
    });
    ws.on("close", (code, reason) => {
      clearTimeout(timer);
      const info: CloseInfo = { code, reason: reason.toString("utf8"), at: this.#clock(), byKit: this.#kitClosing };
      this.#closeInfo = info;
      if (this.#hello === null) settleHello({ ok: false, reason: `connection closed (${code}) before hello` });
      this.#push({ kind: "closed", close: info });
      for (const waiter of this.#closeWaiters.splice(0)) waiter(info);
    });
    ws.on("error", () => {
      // A 'close' event always follows; nothing else to do.
    });
  }

  /** The SFU's hello (null until it arrived). */
  get hello(): HelloMessage | null {
    return this.#hello;
  }

  /** True until the connection closed or the kit started closing it. */
  get isOpen(): boolean {
    return this.#closeInfo === null && !this.#kitClosing;
  }

  /** How the connection ended, or null while open. */
  get closeInfo(): CloseInfo | null {
    return this.#closeInfo;
  }

  /** Sends a JSON message as one text frame. No-op once closed. */
  send(message: unknown): void {
    this.sendRaw(JSON.stringify(message));
  }

  /** Sends `text` verbatim as one text frame (used for malformed frames). No-op once closed. */
  sendRaw(text: string): void {
    if (this.#closeInfo !== null || this.#kitClosing) return;
    this.#ws.send(text);
  }

  /** Next event after hello; `{ kind: "timeout" }` after `timeoutMs` without one. */
  next(timeoutMs: number): Promise<SessionEvent> {
    const queued = this.#events.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closeInfo !== null) return Promise.resolve({ kind: "closed", close: this.#closeInfo });
    return new Promise((resolve) => {
      const waiter: Waiter = (event) => {
        clearTimeout(timer);
        resolve(event);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve({ kind: "timeout" });
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Resolves with the close once the connection ended, or null after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<CloseInfo | null> {
    if (this.#closeInfo !== null) return Promise.resolve(this.#closeInfo);
    return new Promise((resolve) => {
      const done = (info: CloseInfo | null) => {
        clearTimeout(timer);
        resolve(info);
      };
      const timer = setTimeout(() => {
        this.#closeWaiters = this.#closeWaiters.filter((w) => w !== done);
        done(null);
      }, timeoutMs);
      this.#closeWaiters.push(done);
    });
  }

  /** Starts a close with `code` and `reason` (truncated to 123 bytes); idempotent. */
  close(code: number, reason: string): void {
    if (this.#closeInfo !== null || this.#kitClosing) return;
    this.#kitClosing = true;
    this.#ws.close(code, closeReason(reason));
  }

  /** Drops the TCP connection without a close handshake (used on shutdown). */
  terminate(): void {
    this.#kitClosing = true;
    this.#ws.terminate();
  }

  #push(event: SessionEvent): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(event);
    else this.#events.push(event);
  }
}
