/**
 * The HTTP push transport (`sfu-agent run --push URL`, PROTOCOL.md
 * [section 12](../protocol/PROTOCOL.md#12-push-over-http)): POSTs each message the
 * {@link DeliveryLink} hands it, reads the SFU's applied state with `GET`, and retries a request
 * without a definite answer after the protocol's backoff; the token is never logged nor shown.
 */
import type { Logger } from "pino";
import { reconnectDelay } from "../../protocol/backoff.ts";
import { DELIVERY_DEFAULTS } from "./delivery.ts";
import {
  checkPushUrl,
  type HttpPushStatus,
  MAX_PUSH_RESPONSE_BYTES,
  parseAppliedDocument,
  parseErrorDocument,
} from "./http-push-wire.ts";
import { type ExchangeResult, exchange } from "./http-request.ts";
import type { AgentMetrics } from "./metrics.ts";
import { configMessage, type DeliveryLink, type Outbound, type Reply, type Transport } from "./transport.ts";

export type { HttpPushOutcome, HttpPushStatus } from "./http-push-wire.ts";

/** Options of {@link HttpPusher}; see {@link HTTP_PUSHER_DEFAULTS}. */
export interface HttpPusherOptions {
  /** `http:` or `https:` URL the configs are POSTed to (and the applied state is read from, GET). No userinfo. */
  url: string;
  /** Token sent as `Authorization: Bearer <token>`. */
  token?: string | null;
  /** Longest time one request (connect to last byte) may take. */
  ackTimeoutMs?: number;
  /** Ceiling of the first retry delay; doubles per consecutive failure. */
  retryBaseMs?: number;
  /** Cap of the retry delay ceiling. */
  retryMaxMs?: number;
  /** Re-check of the SFU's applied state (GET) while idle. */
  resyncIntervalMs?: number;
}

/** Defaults of the optional {@link HttpPusherOptions}: no token, the core's ack timeout per request, retries 0.5 s doubling to 30 s (PROTOCOL.md 12.4), a GET every minute while idle. */
export const HTTP_PUSHER_DEFAULTS = {
  token: null,
  ackTimeoutMs: DELIVERY_DEFAULTS.ackTimeoutMs,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  resyncIntervalMs: 60_000,
} as const;

/** Dependencies of {@link HttpPusher}. */
export interface HttpPusherDeps {
  logger: Logger;
  /** Counts retries and applied-state checks. */
  metrics?: AgentMetrics;
  clock: () => Date;
  /** Uniform [0, 1) source of the backoff jitter (Math.random when omitted). */
  random?: () => number;
}

/** Statuses of a GET meaning "this SFU does not serve its applied state". */
const GET_UNSUPPORTED = new Set([404, 405, 501]);

/** Pushes to one SFU over HTTP; see the module comment. */
export class HttpPusher implements Transport {
  readonly kind = "http";
  readonly label = "HTTP push mode";
  readonly secretsReload = false;
  readonly lateReplies = false;
  readonly #deps: HttpPusherDeps;
  readonly #opts: Required<HttpPusherOptions>;
  readonly #url: URL;
  readonly #shownUrl: string;
  readonly #log: Logger;
  #link: DeliveryLink | null = null;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #abort = new AbortController();
  #current: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryAt: string | null = null;
  #resyncTimer: NodeJS.Timeout | null = null;
  #failures = 0;
  #needCheck = true;
  #appliedState: HttpPushStatus["appliedState"] = "pending";
  #connected = false;
  #lastPush: HttpPushStatus["lastPush"] = null;

  /** Checks `options` (throws TypeError naming the bad one). */
  constructor(deps: HttpPusherDeps, options: HttpPusherOptions) {
    const opts = { ...HTTP_PUSHER_DEFAULTS, ...options } as Required<HttpPusherOptions>;
    const url = checkPushUrl(opts.url);
    if (typeof url === "string") throw new TypeError(`HttpPusher: options.url ${url}`);
    for (const k of ["ackTimeoutMs", "retryBaseMs", "retryMaxMs", "resyncIntervalMs"] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new TypeError(`HttpPusher: options.${k} must be >= 1 ms`);
    }
    if (opts.retryMaxMs < opts.retryBaseMs)
      throw new TypeError("HttpPusher: options.retryMaxMs must be >= retryBaseMs");
    if (opts.token !== null && (opts.token.length === 0 || /[\r\n]/.test(opts.token))) {
      throw new TypeError("HttpPusher: options.token must be a non-empty single line");
    }
    this.#deps = deps;
    this.#opts = opts;
    this.#url = url;
    this.#shownUrl = `${url.origin}${url.pathname}`;
    this.#log = deps.logger.child({ component: "push-http" });
  }

  /** Starts: reads the SFU's applied state (GET), then sends what `link` hands it. */
  async start(link: DeliveryLink): Promise<void> {
    if (this.#state !== "new") throw new Error(`HttpPusher already ${this.#state}`);
    this.#link = link;
    this.#state = "running";
    this.#log.info({ url: this.#shownUrl, bearer: this.#opts.token !== null }, "HTTP push mode");
    this.#kick();
  }

  /** Whether the pusher is running. */
  get ready(): boolean {
    return this.#state === "running";
  }

  /** Whether a POST may go now: no request in flight, no retry pending, no applied-state read due. */
  get canSend(): boolean {
    const checkDue = this.#needCheck && this.#appliedState !== "unsupported";
    return this.#state === "running" && this.#current === null && this.#retryTimer === null && !checkDue;
  }

  /** The push URL as shown in logs and /status (no query string). */
  get url(): string {
    return this.#shownUrl;
  }

  /** `/status` `sfu` document. */
  status(): HttpPushStatus {
    return {
      connected: this.#connected,
      name: null,
      version: null,
      mode: "http",
      url: this.#shownUrl,
      appliedState: this.#appliedState,
      lastPush: this.#lastPush === null ? null : { ...this.#lastPush },
      retry: this.#retryAt === null ? null : { attempt: this.#failures, at: this.#retryAt },
    };
  }

  /** Stops: no new request; a POST in flight gets up to `drainMs` to be answered, then is aborted (a GET at once). Idempotent. */
  async stop(drainMs: number): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") return;
    this.#state = "stopping";
    this.#clearTimers();
    const current = this.#current;
    if (current) {
      await this.#link?.drain(drainMs);
      this.#abort.abort();
      await current;
    }
    this.#state = "stopped";
    this.#setConnected(false);
  }

  /** POSTs `message` (a config: this transport carries no `secrets-reload`). */
  send(message: Outbound, signal: AbortSignal): Promise<Reply> {
    if (message.type !== "config" || !this.canSend) return Promise.resolve({ type: "closed" });
    const reply = this.#post(message, signal);
    // The core takes the reply in while this request still counts as current; then #kick runs.
    this.#run(reply.then(() => undefined));
    return reply;
  }

  /** Reads the applied state when due, else lets the core send what is due; idle, schedules the next read. */
  #kick(): void {
    if (this.#state !== "running" || this.#current !== null || this.#retryTimer !== null) return;
    if (this.#needCheck && this.#appliedState !== "unsupported") {
      this.#run(this.#check());
      return;
    }
    this.#link?.wake();
    if (this.#current === null) this.#scheduleResync();
  }

  #run(p: Promise<void>): void {
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    this.#resyncTimer = null;
    const current = p
      .catch((err: unknown) => this.#log.error({ err }, "HTTP push failed unexpectedly"))
      .finally(() => {
        if (this.#current === current) this.#current = null;
        this.#kick();
      });
    this.#current = current;
  }

  #headers(): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", "user-agent": "sfu-agent (sfu-config/1)" };
    if (this.#opts.token !== null) h["authorization"] = `Bearer ${this.#opts.token}`;
    return h;
  }

  async #check(): Promise<void> {
    const r = await exchange({
      url: this.#url,
      method: "GET",
      headers: this.#headers(),
      timeoutMs: this.#opts.ackTimeoutMs,
      maxBodyBytes: MAX_PUSH_RESPONSE_BYTES,
      signal: this.#abort.signal,
    });
    if (this.#state === "stopped" || this.#abort.signal.aborted) return;
    if (r.kind === "response" && r.status >= 200 && r.status < 300) {
      const applied = parseAppliedDocument(r.body);
      if (applied !== undefined) {
        this.#deps.metrics?.appliedChecks.inc({ result: "ok" });
        const first = this.#appliedState === "pending";
        this.#appliedState = "supported";
        this.#needCheck = false;
        this.#succeeded();
        if (first) this.#log.info({ applied }, "SFU applied state (versions continue above it)");
        const refused = first ? this.#link?.open({ sfu: null, applied }) : this.#link?.report(applied);
        if (refused) {
          this.#log.error(
            { applied },
            `refused the SFU's applied state: ${refused.message}; versions continue from the agent's`,
          );
          if (first) this.#link?.open({ sfu: null });
        }
        return;
      }
      this.#log.warn({ status: r.status }, "GET answered without an {applied} document; applied state unknown");
      return this.#onUnsupported(r.status);
    }
    if (r.kind === "response" && GET_UNSUPPORTED.has(r.status)) return this.#onUnsupported(r.status);
    this.#deps.metrics?.appliedChecks.inc({ result: "failed" });
    this.#fail("GET", r);
  }

  #onUnsupported(status: number): void {
    this.#deps.metrics?.appliedChecks.inc({ result: "unsupported" });
    const first = this.#appliedState === "pending";
    this.#appliedState = "unsupported";
    this.#needCheck = false;
    this.#succeeded();
    this.#log.info(
      { status },
      "SFU does not serve its applied state (GET); versions continue from the agent's counter",
    );
    if (first) this.#link?.open({ sfu: null });
  }

  async #post(message: Outbound & { type: "config" }, signal: AbortSignal): Promise<Reply> {
    const d = message.snapshot;
    const body = JSON.stringify(configMessage(d, message.nonce));
    this.#log.info(
      { nonce: message.nonce, version: d.version, hash: d.hash, revision: d.revision },
      "pushing config (HTTP POST)",
    );
    const r = await exchange({
      url: this.#url,
      method: "POST",
      headers: { ...this.#headers(), "content-type": "application/json" },
      body,
      timeoutMs: this.#opts.ackTimeoutMs,
      maxBodyBytes: MAX_PUSH_RESPONSE_BYTES,
      signal: AbortSignal.any([this.#abort.signal, signal]),
    });
    if (this.#state === "stopped" || this.#abort.signal.aborted) return { type: "closed" }; // cut off by stop()
    // The core gave up on it at its ack timeout: a timeout like the request's own.
    const result: ExchangeResult = signal.aborted ? { kind: "timeout" } : r;
    const push = { at: this.#deps.clock().toISOString(), version: d.version, hash: d.hash };
    if (result.kind === "response" && result.status >= 200 && result.status < 300) {
      this.#lastPush = { ...push, outcome: "ack", httpStatus: result.status, error: null };
      this.#succeeded();
      return { type: "ack" };
    }
    if (result.kind === "response" && (result.status === 409 || result.status === 422)) {
      const error = parseErrorDocument(result.body) ?? {
        code: `HTTP_${result.status}`,
        message: `HTTP ${result.status} without a JSON error body {code, message}`,
      };
      this.#lastPush = { ...push, outcome: "nack", httpStatus: result.status, error: error.code };
      this.#succeeded();
      return { type: "nack", error };
    }
    // No definite answer: it may have been applied, so the applied state is read before the retry.
    if (this.#appliedState === "supported" && result.kind !== "response") this.#needCheck = true;
    this.#lastPush = {
      ...push,
      outcome: result.kind === "response" ? "http_error" : result.kind,
      httpStatus: result.kind === "response" ? result.status : null,
      error: describeFailure(result, this.#opts.ackTimeoutMs),
    };
    this.#fail("POST", result, d);
    if (result.kind === "timeout") return { type: "timeout" };
    return { type: "failed", outcome: result.kind === "response" ? "http_error" : "unreachable" };
  }

  /** A definite answer: the SFU is reachable and the backoff starts over. */
  #succeeded(): void {
    this.#failures = 0;
    this.#setConnected(true);
  }

  /** A failed exchange: schedule the next attempt after the backoff (latest wins then). */
  #fail(method: "GET" | "POST", r: ExchangeResult, d?: { version: number; hash: string }): void {
    this.#setConnected(false);
    if (this.#state !== "running") return;
    const delay = reconnectDelay(
      this.#failures,
      { baseMs: this.#opts.retryBaseMs, maxMs: this.#opts.retryMaxMs },
      this.#deps.random,
    );
    this.#failures++;
    this.#deps.metrics?.pushRetries.inc();
    this.#retryAt = new Date(this.#deps.clock().getTime() + delay).toISOString();
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#retryAt = null;
      this.#kick();
    }, delay);
    this.#log.warn(
      {
        method,
        ...(d ? { version: d.version, hash: d.hash } : {}),
        failure: describeFailure(r, this.#opts.ackTimeoutMs),
        attempt: this.#failures,
        retryInMs: delay,
      },
      "HTTP push request failed; retrying after backoff",
    );
  }

  #scheduleResync(): void {
    if (this.#appliedState !== "supported" || this.#resyncTimer !== null || this.#state !== "running") return;
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = null;
      this.#needCheck = true;
      this.#kick();
    }, this.#opts.resyncIntervalMs);
  }

  #setConnected(connected: boolean): void {
    this.#connected = connected;
    this.#link?.reachable(connected);
  }

  #clearTimers(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    this.#retryTimer = null;
    this.#resyncTimer = null;
    this.#retryAt = null;
  }
}

/** A credential-free description of a failed exchange (never the body: it may echo the config). */
function describeFailure(r: ExchangeResult, timeoutMs: number): string {
  if (r.kind === "timeout") return `no answer within ${timeoutMs} ms`;
  if (r.kind === "unreachable") return `unreachable: ${r.error}`;
  return `HTTP ${r.status}`;
}
