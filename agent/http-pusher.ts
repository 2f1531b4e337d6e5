/**
 * The HTTP push adapter (`sfu-agent run --push URL`, PROTOCOL.md section 12)
 * for SFUs that cannot hold a WebSocket: instead of waiting for the SFU to
 * dial in, the agent POSTs each config to `URL` as the same `config` message
 * (JSON). The answer is the HTTP status:
 *
 * - 2xx: ack (applied);
 * - 409 or 422 with a JSON body `{code, message, path?}`: nack with that
 *   error (a body that is not such an object gives code `HTTP_409`/`HTTP_422`);
 * - any other status, no answer within the ack timeout, or no connection:
 *   retried after a capped exponential backoff with jitter
 *   ({@link reconnectDelay}: 0.5 s doubling to 30 s, times a random factor in
 *   [0.5, 1]); a newer config arriving meanwhile waits for that same retry
 *   time and replaces the pending one (latest wins), so requests are never
 *   closer than the backoff allows.
 *
 * Versions: before its first POST the agent GETs `URL`; an SFU that answers
 * `{"applied": {"version", "hash"} | null}` lets the agent continue its
 * numbering above the SFU's (versions never go backwards across agent
 * restarts) and skip a config the SFU already runs. 404, 405 and 501 (or a
 * 2xx without such a document) mean "not supported": the agent numbers from
 * its own counter. Any other failure of the GET is retried like a push. With
 * GET supported the agent checks again every `resyncIntervalMs` while idle
 * and after a push got no definite answer; an SFU reporting a different
 * applied config than the agent knows has restarted, which starts a new push
 * session (HTTP's "new connection": rejected hashes may be sent again).
 * Otherwise a rejected hash is not sent again until it becomes desired
 * again, or, nacked with APPLY_FAILED, after a capped backoff (1 s doubling
 * to 5 min; see push-ledger.ts). An applied version out of range (see
 * SnapshotStore.checkSfuApplied) is refused: reported as lastError and in
 * `sfu_agent_versions_refused_total`, and the agent numbers from its own
 * counter.
 *
 * The delivery bookkeeping is the {@link PushLedger} shared with the
 * WebSocket server. The token (`Authorization: Bearer`) is never logged nor
 * shown; the URL is shown without its query string.
 */
import type { Logger } from "pino";
import { reconnectDelay } from "../protocol/backoff.ts";
import { LifecycleError } from "./errors.ts";
import { checkPushUrl, MAX_PUSH_RESPONSE_BYTES, parseAppliedDocument, parseErrorDocument } from "./http-push-wire.ts";
import { type ExchangeResult, exchange } from "./http-request.ts";
import type { AgentMetrics } from "./metrics.ts";
import { type AppliedRef, configMessage, type NackRetryOptions, PushLedger } from "./push-ledger.ts";
import type { DesiredSnapshot, SnapshotStore } from "./snapshot-store.ts";
import type { HttpPushStatus, StatusTracker } from "./status-tracker.ts";

export type { HttpPushOutcome, HttpPushStatus } from "./status-tracker.ts";

/** Options of {@link HttpPusher}; see {@link HTTP_PUSHER_DEFAULTS}. */
export interface HttpPusherOptions {
  /** `http:` or `https:` URL the configs are POSTed to (and the applied state is read from, GET). No userinfo. */
  url: string;
  /** Token sent as `Authorization: Bearer <token>`; null = none. */
  token?: string | null;
  /** Longest time one request (connect to last byte) may take. */
  ackTimeoutMs?: number;
  /** First retry delay ceiling; doubles per consecutive failure. */
  retryBaseMs?: number;
  /** Cap of the retry delay. */
  retryMaxMs?: number;
  /** Re-check of the SFU's applied state (GET) while idle. */
  resyncIntervalMs?: number;
  /** Backoff of the re-send of an APPLY_FAILED config (default 1 s doubling to 5 min); a test knob. */
  nackRetry?: NackRetryOptions | null;
}

/** Documented defaults of the optional {@link HttpPusherOptions}. */
export const HTTP_PUSHER_DEFAULTS = {
  token: null,
  ackTimeoutMs: 10_000,
  retryBaseMs: 500,
  retryMaxMs: 30_000,
  resyncIntervalMs: 60_000,
  nackRetry: null,
} as const;

/** Dependencies of {@link HttpPusher}. */
export interface HttpPusherDeps {
  logger: Logger;
  store: SnapshotStore;
  /** Receives link and outcome events (through the ledger) and shows {@link HttpPusher.status} as /status `sfu`. */
  tracker?: StatusTracker;
  /** Counts retries and applied-state checks (the rest of the metrics follow the tracker). */
  metrics?: AgentMetrics;
  clock: () => Date;
  /** Uniform [0, 1) source of the backoff jitter (Math.random when omitted). */
  random?: () => number;
}

/** Statuses of a GET meaning "this SFU does not serve its applied state". */
const GET_UNSUPPORTED = new Set([404, 405, 501]);

/** Pushes configs to one SFU over HTTP; see the module comment. */
export class HttpPusher {
  readonly #deps: HttpPusherDeps;
  readonly #opts: Required<HttpPusherOptions>;
  readonly #url: URL;
  readonly #shownUrl: string;
  readonly #ledger: PushLedger;
  readonly #log: Logger;
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #unsubscribe: (() => void) | null = null;
  #abort = new AbortController();
  #current: Promise<void> | null = null;
  /** Whether the request in flight is a POST (only a push is worth waiting for at stop). */
  #currentIsPost = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryAt: string | null = null;
  #resyncTimer: NodeJS.Timeout | null = null;
  #failures = 0;
  #nonce = 0;
  #needCheck = true;
  #appliedState: HttpPushStatus["appliedState"] = "pending";
  #connected = false;
  #lastPush: HttpPushStatus["lastPush"] = null;
  /** The last POST that got no definite answer (it may have been applied). */
  #unanswered: AppliedRef | null = null;
  /** Hash whose ack timeout was last reported to the store (reported once, not per retry). */
  #timeoutReported: string | null = null;

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
    this.#ledger = new PushLedger({
      store: deps.store,
      tracker: deps.tracker,
      transport: "http",
      onRetryDue: () => this.#kick(),
      nackRetry: opts.nackRetry ?? undefined,
    });
    this.#log = deps.logger.child({ component: "push-http" });
  }

  /** Starts pushing: reads the SFU's applied state (GET), then pushes the desired config and every newer one. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new LifecycleError(`HttpPusher already ${this.#state}`);
    this.#state = "running";
    this.#deps.metrics?.initPushOutcomes("http");
    this.#unsubscribe = this.#deps.store.subscribe((e) => {
      if (e.type === "desired") {
        this.#ledger.desiredAgain(e.hash);
        this.#kick();
      }
    });
    this.#deps.tracker?.setLinkDetail(() => this.status());
    this.#log.info({ url: this.#shownUrl, bearer: this.#opts.token !== null }, "HTTP push mode");
    this.#kick();
  }

  /** Whether the pusher is running. */
  get running(): boolean {
    return this.#state === "running";
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
  async stop(drainMs = 5_000): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") return;
    this.#state = "stopping";
    this.#unsubscribe?.();
    this.#clearTimers();
    const current = this.#current;
    if (current) {
      let t: NodeJS.Timeout | undefined;
      if (this.#currentIsPost) await Promise.race([current, new Promise<void>((r) => (t = setTimeout(r, drainMs)))]);
      clearTimeout(t);
      this.#abort.abort();
      await current;
    }
    this.#state = "stopped";
    this.#ledger.dispose();
    this.#setConnected(false);
  }

  /** Sends what is due now, unless a request is in flight or a retry is scheduled (then that time comes first). */
  #kick(): void {
    if (this.#state !== "running" || this.#current !== null || this.#retryTimer !== null) return;
    if (this.#needCheck && this.#appliedState !== "unsupported") {
      this.#run(this.#check(), false);
      return;
    }
    const d = this.#ledger.next();
    if (d === null) {
      this.#scheduleResync();
      return;
    }
    this.#run(this.#post(d), true);
  }

  #run(p: Promise<void>, isPost: boolean): void {
    this.#currentIsPost = isPost;
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
      if (applied !== undefined) return this.#onApplied(applied);
      this.#log.warn({ status: r.status }, "GET answered without an {applied} document; applied state unknown");
      return this.#onUnsupported(r.status);
    }
    if (r.kind === "response" && GET_UNSUPPORTED.has(r.status)) return this.#onUnsupported(r.status);
    this.#deps.metrics?.appliedChecks.inc({ result: "failed" });
    this.#fail("GET", r);
  }

  #onApplied(applied: AppliedRef | null): void {
    this.#deps.metrics?.appliedChecks.inc({ result: "ok" });
    const first = this.#appliedState === "pending";
    this.#appliedState = "supported";
    this.#needCheck = false;
    this.#succeeded();
    const known = this.#ledger.applied;
    const unanswered = this.#unanswered;
    this.#unanswered = null;
    if (first) {
      this.#log.info({ applied }, "SFU applied state (versions continue above it)");
      this.#adopt(applied);
    } else if (applied !== null && unanswered !== null && applied.hash === unanswered.hash) {
      this.#log.info({ applied }, "SFU applied the push whose answer was lost");
      this.#ledger.recordLateAck(unanswered.version, unanswered.hash);
    } else if (applied?.hash !== known?.hash) {
      this.#log.info({ applied, known }, "SFU reports another applied config (restarted?): new push session");
      this.#ledger.reset();
      this.#adopt(applied);
    }
  }

  /** Takes in the SFU's applied state, unless its version is out of range (then numbers from the agent's counter). */
  #adopt(applied: AppliedRef | null): void {
    const refused = this.#ledger.adopt(applied);
    if (refused !== null) {
      this.#log.error({ applied }, `refused the SFU's applied state: ${refused}; versions continue from the agent's`);
    }
  }

  #onUnsupported(status: number): void {
    this.#deps.metrics?.appliedChecks.inc({ result: "unsupported" });
    this.#appliedState = "unsupported";
    this.#needCheck = false;
    this.#succeeded();
    this.#log.info(
      { status },
      "SFU does not serve its applied state (GET); versions continue from the agent's counter",
    );
  }

  async #post(d: DesiredSnapshot): Promise<void> {
    const nonce = ++this.#nonce;
    const body = JSON.stringify(configMessage(d, nonce));
    const started = performance.now();
    this.#ledger.recordSent();
    this.#log.info({ nonce, version: d.version, hash: d.hash, revision: d.revision }, "pushing config (HTTP POST)");
    const r = await exchange({
      url: this.#url,
      method: "POST",
      headers: { ...this.#headers(), "content-type": "application/json" },
      body,
      timeoutMs: this.#opts.ackTimeoutMs,
      maxBodyBytes: MAX_PUSH_RESPONSE_BYTES,
      signal: this.#abort.signal,
    });
    if (this.#state === "stopped" || this.#abort.signal.aborted) return; // cut off by stop(): no outcome
    const seconds = (performance.now() - started) / 1000;
    const at = this.#deps.clock().toISOString();
    const push = { at, version: d.version, hash: d.hash };
    if (r.kind === "response" && r.status >= 200 && r.status < 300) {
      this.#lastPush = { ...push, outcome: "ack", httpStatus: r.status, error: null };
      this.#unanswered = null;
      this.#succeeded();
      this.#ledger.recordAck(d.version, d.hash, seconds);
      this.#log.info(
        { nonce, version: d.version, hash: d.hash, ms: Math.round(seconds * 1e4) / 10 },
        "SFU applied config",
      );
      return;
    }
    if (r.kind === "response" && (r.status === 409 || r.status === 422)) {
      const error = parseErrorDocument(r.body) ?? {
        code: `HTTP_${r.status}`,
        message: `HTTP ${r.status} without a JSON error body {code, message}`,
      };
      this.#lastPush = { ...push, outcome: "nack", httpStatus: r.status, error: error.code };
      this.#unanswered = null;
      this.#succeeded();
      const retryInMs = this.#ledger.recordNack(d.version, d.hash, error, seconds);
      this.#log.warn(
        { nonce, version: d.version, hash: d.hash, error, retryInMs },
        retryInMs === null
          ? "SFU rejected config; not re-sending it in this push session unless it becomes desired again"
          : "SFU could not apply config; re-sending it after a backoff",
      );
      return;
    }
    this.#unanswered = { version: d.version, hash: d.hash };
    if (this.#appliedState === "supported" && r.kind !== "response") this.#needCheck = true;
    if (r.kind === "timeout") {
      this.#ledger.recordTimeout(d.version, d.hash, this.#timeoutReported !== d.hash);
      this.#timeoutReported = d.hash;
    } else {
      this.#ledger.recordFailure(r.kind === "response" ? "http_error" : "unreachable");
    }
    this.#lastPush = {
      ...push,
      outcome: r.kind === "response" ? "http_error" : r.kind,
      httpStatus: r.kind === "response" ? r.status : null,
      error: describeFailure(r, this.#opts.ackTimeoutMs),
    };
    this.#fail("POST", r, d);
  }

  /** A definite answer: the SFU is reachable and the backoff starts over. */
  #succeeded(): void {
    this.#failures = 0;
    this.#setConnected(true);
  }

  /** A failed exchange: schedule the next attempt after the backoff (latest wins then). */
  #fail(method: "GET" | "POST", r: ExchangeResult, d?: DesiredSnapshot): void {
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
    this.#ledger.recordLink(connected);
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
