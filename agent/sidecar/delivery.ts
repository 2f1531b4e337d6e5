/**
 * The delivery core: the one owner of what the SFU is sent, when, and what its answers mean
 * (PROTOCOL.md [sections 5, 6](../protocol/PROTOCOL.md#5-nonces-versions-and-delivery-rules),
 * [12.4](../protocol/PROTOCOL.md#124-delivery-and-retry-rules-agent) and [18](../protocol/PROTOCOL.md#18-secret-files-and-secrets-reload)),
 * over one {@link Transport} that only moves bytes; observers get its {@link DeliveryEvent}s through one {@link DeliveryCallbacks}.
 */
import type { Logger } from "pino";
import { backoffDelay } from "../../protocol/backoff.ts";
import { SUPPORTED_SCHEMA_VERSIONS } from "../../protocol/config-schema.ts";
import { type HealthRefusal, healthCountersRefusal } from "../../protocol/health-checks.ts";
import type { HealthCounters } from "../../protocol/messages-schema.ts";
import { SECRETS_RELOAD_FEATURE } from "../../protocol/secrets-reload.ts";
import type { DesiredSnapshot, SnapshotStore } from "./snapshot-store.ts";
import type {
  AppliedRef,
  DeliveryCallbacks,
  DeliveryEvent,
  DeliveryLink,
  OpenRefusal,
  Outbound,
  PushError,
  PushOutcome,
  Reply,
  SecretRotationOutcome,
  SessionInfo,
  Transport,
} from "./transport.ts";

/** Backoff of the re-send of a config nacked with `APPLY_FAILED`: `baseMs` doubling per nack, capped at `maxMs`. */
export interface NackRetryOptions {
  baseMs: number;
  maxMs: number;
}

/** Options of {@link Delivery}; see {@link DELIVERY_DEFAULTS}. */
export interface DeliveryOptions {
  /** How long a config or `secrets-reload` may stay unanswered before it counts as `timeout`. */
  ackTimeoutMs?: number;
  /** Re-send backoff of an `APPLY_FAILED` hash on the same session. */
  nackRetry?: NackRetryOptions | null;
}

/** Defaults of {@link DeliveryOptions}: a 10 s ack timeout; `APPLY_FAILED` re-sent after 1 s doubling to 5 min. */
export const DELIVERY_DEFAULTS = {
  ackTimeoutMs: 10_000,
  nackRetry: { baseMs: 1_000, maxMs: 300_000 } as NackRetryOptions,
} as const;

/** The NACK code whose hash is retried on the same session after a backoff. */
export const RETRYABLE_NACK_CODE = "APPLY_FAILED";

/** The secret-file rotations the core tells the SFU about (agent/sidecar/secret-watch.ts). */
export interface SecretSource {
  readonly generation: number;
  readonly hasSecrets: boolean;
  subscribe(listener: (generation: number) => void): () => void;
}

/** Dependencies of {@link Delivery}. */
export interface DeliveryDeps {
  logger: Logger;
  store: SnapshotStore;
  transport: Transport;
  callbacks: DeliveryCallbacks;
  /** Secret rotations; none when omitted. */
  secrets?: SecretSource;
}

/** At most one debug line per this interval for dropped health reports. */
const HEALTH_DROP_LOG_INTERVAL_MS = 10_000;

interface Rejection {
  code: string;
  /** Consecutive APPLY_FAILED nacks of this hash (the backoff exponent). */
  attempts: number;
  timer: NodeJS.Timeout | null;
}

interface InFlight {
  message: Outbound;
  version: number;
  hash: string;
  /** The secrets generation when it was sent (applying a config reads the secret files too). */
  generation: number;
  sentAt: number;
  timer: NodeJS.Timeout | null;
  timedOut: boolean;
  abort: AbortController;
}

interface Session {
  /** The SFU's schemaVersions; null when not negotiated. */
  schemaVersions: readonly number[] | null;
  /** Whether the SFU listed `secrets-reload` in `hello.features`. */
  reloadFeature: boolean;
}

/** Per-SFU delivery state and rules; see the module comment. */
export class Delivery implements DeliveryLink {
  readonly #deps: DeliveryDeps;
  readonly #transport: Transport;
  readonly #ackTimeoutMs: number;
  readonly #retry: NackRetryOptions;
  readonly #log: Logger;
  readonly #rejected = new Map<string, Rejection>();
  /** APPLY_FAILED attempts of hashes whose retry came due (kept for the next backoff step). */
  readonly #attempts = new Map<string, number>();
  /** Hashes whose push timed out on this session and was given up for a newer one (lateReplies). */
  readonly #abandoned = new Set<string>();
  #state: "new" | "running" | "stopping" | "stopped" = "new";
  #session: Session | null = null;
  #applied: AppliedRef | null = null;
  #inFlight: InFlight | null = null;
  /** The last push that got no definite answer (it may have been applied); transports without late replies. */
  #unanswered: AppliedRef | null = null;
  /** The push whose ack timeout was last reported to the store (once per version, not per retry). */
  #timeoutReported: AppliedRef | null = null;
  #lastNonce = 0;
  /** The secrets generation the SFU confirmed reading in this session; null = not confirmed. */
  #secretsConfirmed: number | null = null;
  /** The last generation a `secrets-reload` was sent for (a failed one is not re-sent in the session). */
  #secretsTried: number | null = null;
  #drainWaiters: (() => void)[] = [];
  #unsubscribe: (() => void)[] = [];
  #healthDropsUnlogged = 0;
  #healthDropLoggedAt = Number.NEGATIVE_INFINITY;

  constructor(deps: DeliveryDeps, options: DeliveryOptions = {}) {
    const ackTimeoutMs = options.ackTimeoutMs ?? DELIVERY_DEFAULTS.ackTimeoutMs;
    const retry = options.nackRetry ?? DELIVERY_DEFAULTS.nackRetry;
    if (!Number.isInteger(ackTimeoutMs) || ackTimeoutMs < 1)
      throw new TypeError("Delivery: ackTimeoutMs must be >= 1 ms");
    if (!(Number.isInteger(retry.baseMs) && retry.baseMs >= 1 && retry.maxMs >= retry.baseMs)) {
      throw new TypeError("Delivery: nackRetry needs integer baseMs >= 1 and maxMs >= baseMs");
    }
    this.#deps = deps;
    this.#transport = deps.transport;
    this.#ackTimeoutMs = ackTimeoutMs;
    this.#retry = { ...retry };
    this.#log = deps.logger.child({ component: "push" });
  }

  /** The transport, for its URL and readiness. */
  get transport(): Transport {
    return this.#transport;
  }

  /** Follows the store's desired config and the secret rotations, and starts the transport. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`Delivery already ${this.#state}`);
    this.#state = "running";
    this.#unsubscribe.push(
      this.#deps.store.subscribe((e) => {
        if (e.type === "desired") this.#onDesired(e.hash);
      }),
    );
    const secrets = this.#deps.secrets;
    if (secrets) this.#unsubscribe.push(secrets.subscribe((g) => this.#onSecretsChanged(g)));
    await this.#transport.start(this);
  }

  /** Stops following, lets an unanswered push finish within `drainMs`, stops the transport. Idempotent. */
  async stop(drainMs: number): Promise<void> {
    if (this.#state === "stopping" || this.#state === "stopped") return;
    const started = this.#state === "running";
    this.#state = "stopping";
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    if (started) await this.#transport.stop(drainMs);
    this.#endSession();
    this.#state = "stopped";
  }

  // --- DeliveryLink: what the transport reports ---

  open(info: SessionInfo): OpenRefusal | null {
    const supported = SUPPORTED_SCHEMA_VERSIONS as readonly number[];
    if (info.schemaVersions !== undefined && !info.schemaVersions.some((v) => supported.includes(v))) {
      return {
        reason: "no-common-schema",
        message: `no common schema version: this agent pushes schemaVersions ${supported.join(", ")}`,
      };
    }
    this.#endSession();
    this.#timeoutReported = null;
    this.#lastNonce = 0;
    if (info.applied !== undefined) {
      const refused = this.#adopt(info.applied);
      if (refused !== null) return refused;
    }
    this.#session = {
      schemaVersions: info.schemaVersions === undefined ? null : [...info.schemaVersions],
      reloadFeature: (info.features ?? []).includes(SECRETS_RELOAD_FEATURE),
    };
    this.#emit({ type: "link-up", sfu: info.sfu === null ? null : { name: info.sfu.name, version: info.sfu.version } });
    if (this.#transport.secretsReload) this.#emit({ type: "secrets-unknown" });
    return null;
  }

  report(applied: AppliedRef | null): OpenRefusal | null {
    const known = this.#applied;
    const unanswered = this.#unanswered;
    this.#unanswered = null;
    if (applied !== null && unanswered !== null && applied.hash === unanswered.hash) {
      this.#log.info({ applied }, "SFU applied the push whose answer was lost");
      this.#markApplied(unanswered.version, unanswered.hash, null, null);
      return null;
    }
    if (applied?.hash === known?.hash) return null;
    this.#log.info({ applied, known }, "SFU reports another applied config (restarted?): new push session");
    this.#forgetSession();
    return this.#adopt(applied);
  }

  close(): void {
    if (this.#session === null) return;
    this.#endSession();
    this.#emit({ type: "link-down" });
  }

  reachable(up: boolean): void {
    this.#emit(up ? { type: "link-up", sfu: null } : { type: "link-down" });
  }

  wake(): void {
    this.#pump();
  }

  health(counters: HealthCounters): void {
    const refusal = this.#healthRefusal(counters);
    if (refusal !== null) {
      this.#emit({ type: "health-dropped", reason: refusal.code });
      this.#logHealthDrop(refusal);
      return;
    }
    this.#log.debug({ health: counters }, "SFU call health");
    this.#emit({ type: "health", counters });
  }

  drain(ms: number): Promise<void> {
    if (this.#inFlight === null || this.#inFlight.timedOut) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#drainWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // --- rules ---

  /** A config became desired: a hash held back after a NACK or a timeout is desired again, so it may be pushed again. */
  #onDesired(hash: string): void {
    this.#forget(hash);
    this.#attempts.delete(hash);
    this.#abandoned.delete(hash);
    this.#pump();
  }

  /**
   * The secret files changed: a reload is due for an SFU with the feature; for one without
   * (or a transport without it), the change is recorded `unsupported`.
   */
  #onSecretsChanged(generation: number): void {
    this.#emit({ type: "secrets-changed", generation });
    if (!this.#transport.secretsReload) {
      this.#rotation(generation, "unsupported", {
        code: "SECRETS_RELOAD_UNSUPPORTED",
        message: `the secret files changed (generation ${generation}) but ${this.#transport.label} has no secrets-reload; the SFU keeps what it read until a new config is applied or it restarts`,
      });
      return;
    }
    if (this.#session === null) return;
    if (!this.#session.reloadFeature) {
      const applied = this.#applied;
      this.#rotation(generation, "unsupported", {
        code: "SECRETS_RELOAD_UNSUPPORTED",
        message: `the secret files changed (generation ${generation}) but the SFU does not support secrets-reload; it keeps what it read${applied === null ? "" : ` for version ${applied.version}`} until a new config is applied or it restarts`,
      });
      return;
    }
    this.#pump();
  }

  /** The store's newest desired config unless the SFU runs it, it is held back, or its push is given up on this session. */
  #next(): DesiredSnapshot | null {
    const d = this.#deps.store.desired();
    if (d === null || this.#applied?.hash === d.hash || this.#rejected.has(d.hash)) return null;
    if (this.#abandoned.has(d.hash)) return null;
    // The timed-out push may still be answered late.
    const f = this.#inFlight;
    if (f?.message.type === "config" && f.hash === d.hash) return null;
    return d;
  }

  /** Sends the desired config if it is due and may go now (latest wins), else a due `secrets-reload`. */
  #pump(): void {
    if (this.#state !== "running" || this.#session === null || !this.#transport.canSend) return;
    const f = this.#inFlight;
    if (f !== null && !f.timedOut) return; // latest wins at reply time
    const d = this.#next();
    if (d === null) {
      this.#maybeReloadSecrets();
      return;
    }
    const sfuSchemas = this.#session.schemaVersions;
    const schemaVersion = d.config.schemaVersion;
    if (sfuSchemas !== null && !sfuSchemas.includes(schemaVersion)) {
      const message = `the SFU supports schemaVersions [${sfuSchemas.join(", ")}]; this config is schemaVersion ${schemaVersion}`;
      this.#reject(d.version, d.hash, "UNSUPPORTED_SCHEMA", message);
      this.#emitOutcome("unsupported_schema", null);
      this.#log.warn({ version: d.version, hash: d.hash, schemaVersion, sfuSchemas }, `not pushing config: ${message}`);
      return;
    }
    if (f?.timedOut && f.message.type === "config") this.#abandoned.add(f.hash);
    this.#send({ type: "config", nonce: ++this.#lastNonce, snapshot: d }, d.version, d.hash);
    this.#emit({ type: "sent", transport: this.#transport.kind });
  }

  /** Sends `secrets-reload` when the SFU runs the desired config and has not confirmed the current generation. */
  #maybeReloadSecrets(): void {
    const secrets = this.#deps.secrets;
    if (secrets === undefined || !this.#session?.reloadFeature || !secrets.hasSecrets) return;
    const applied = this.#applied;
    if (applied === null || applied.hash !== this.#deps.store.desired()?.hash) return;
    const generation = secrets.generation;
    if (this.#secretsConfirmed === generation || this.#secretsTried === generation) return;
    this.#secretsTried = generation;
    const nonce = ++this.#lastNonce;
    this.#send({ type: "secrets-reload", nonce, applied: { ...applied }, generation }, applied.version, applied.hash);
    this.#log.info({ nonce, version: applied.version, hash: applied.hash, generation }, "sent secrets-reload");
  }

  #send(message: Outbound, version: number, hash: string): void {
    const f: InFlight = {
      message,
      version,
      hash,
      generation: message.type === "secrets-reload" ? message.generation : (this.#deps.secrets?.generation ?? 0),
      sentAt: performance.now(),
      timer: null,
      timedOut: false,
      abort: new AbortController(),
    };
    f.timer = setTimeout(() => this.#onAckTimeout(f), this.#ackTimeoutMs);
    this.#inFlight = f;
    this.#transport.send(message, f.abort.signal).then(
      (reply) => this.#onReply(f, reply),
      (err: unknown) => this.#log.error({ err }, "push transport failed unexpectedly"),
    );
  }

  #onAckTimeout(f: InFlight): void {
    if (f.timer) clearTimeout(f.timer);
    f.timer = null;
    if (this.#inFlight !== f || f.timedOut) return;
    f.timedOut = true;
    if (!this.#transport.lateReplies) {
      this.#inFlight = null;
      f.abort.abort();
    }
    if (f.message.type === "secrets-reload") {
      this.#log.warn(
        { nonce: f.message.nonce, generation: f.generation, timeoutMs: this.#ackTimeoutMs },
        "SFU did not answer secrets-reload in time; not re-sending it",
      );
      this.#rotation(f.generation, "timeout", {
        code: "SECRETS_RELOAD_TIMEOUT",
        message: `the SFU did not answer secrets-reload of generation ${f.generation} in time`,
      });
    } else {
      this.#log.warn(
        { nonce: f.message.nonce, version: f.version, hash: f.hash, timeoutMs: this.#ackTimeoutMs },
        this.#transport.lateReplies
          ? "SFU did not answer the push in time; not re-sending it"
          : "SFU did not answer the push in time; retrying after backoff",
      );
      this.#emitOutcome("timeout", null);
      if (!this.#transport.lateReplies) this.#unanswered = { version: f.version, hash: f.hash };
      const last = this.#timeoutReported;
      if (last?.version !== f.version || last.hash !== f.hash) this.#deps.store.markAckTimeout(f.version, f.hash);
      this.#timeoutReported = { version: f.version, hash: f.hash };
    }
    this.#settleDrain();
    this.#pump();
  }

  #onReply(f: InFlight, reply: Reply): void {
    if (this.#inFlight !== f) return; // stale: superseded, or the session ended
    if (reply.type === "closed") return;
    if (reply.type === "timeout") {
      this.#onAckTimeout(f);
      return;
    }
    if (f.timer) clearTimeout(f.timer);
    this.#inFlight = null;
    const seconds = (performance.now() - f.sentAt) / 1000;
    const nonce = f.message.nonce;
    if (reply.type === "failed") {
      this.#emitOutcome(reply.outcome, null);
      this.#unanswered = { version: f.version, hash: f.hash };
    } else if (f.message.type === "secrets-reload") {
      this.#onReloadReply(f, reply);
    } else if (reply.type === "ack") {
      this.#unanswered = null;
      this.#markApplied(f.version, f.hash, f.generation, seconds);
      this.#log.info(
        { nonce, version: f.version, hash: f.hash, ms: Math.round(seconds * 1e4) / 10 },
        "SFU applied config",
      );
    } else {
      this.#unanswered = null;
      const retryInMs = this.#reject(f.version, f.hash, reply.error.code, reply.error.message);
      this.#emitOutcome("nack", seconds);
      this.#log.warn(
        { nonce, version: f.version, hash: f.hash, error: reply.error, retryInMs },
        retryInMs === null
          ? "SFU rejected config; not re-sending it in this session unless it becomes desired again"
          : "SFU could not apply config; re-sending it after a backoff",
      );
    }
    this.#settleDrain();
    this.#pump();
  }

  #onReloadReply(f: InFlight, reply: { type: "ack" } | { type: "nack"; error: PushError }): void {
    if (reply.type === "ack") {
      this.#secretsConfirmed = f.generation;
      this.#rotation(f.generation, "ack", null);
      this.#log.info({ nonce: f.message.nonce, generation: f.generation }, "SFU reloaded its secret files");
      return;
    }
    const { code, message, path } = reply.error;
    this.#rotation(f.generation, "nack", { code, message });
    this.#log.warn(
      { nonce: f.message.nonce, generation: f.generation, error: { code, message }, path },
      "SFU could not reload its secret files; it keeps what it read before",
    );
  }

  /**
   * `version`/`hash` is applied (an ack after `seconds`, or a lost answer found applied: no
   * sample). Applying a config reads the secret files: the SFU confirms the generation it was
   * sent at (a transport without `secrets-reload`: the one current now).
   */
  #markApplied(version: number, hash: string, generation: number | null, seconds: number | null): void {
    this.#applied = { version, hash };
    this.#attempts.delete(hash);
    this.#abandoned.delete(hash);
    const secrets = this.#deps.secrets;
    if (secrets !== undefined) {
      const confirmed = this.#transport.secretsReload && generation !== null ? generation : secrets.generation;
      this.#secretsConfirmed = confirmed;
      this.#emit({ type: "secrets-applied", generation: confirmed });
    }
    if (seconds !== null) this.#emitOutcome("ack", seconds);
    this.#deps.store.markApplied(version, hash);
  }

  /**
   * Holds `hash` back on this session and records it rejected: an `APPLY_FAILED` one until its
   * capped backoff ends (the returned delay, ms), any other code until it becomes desired again
   * or a new session starts (null).
   */
  #reject(version: number, hash: string, code: string, message: string): number | null {
    this.#forget(hash);
    const retryable = code === RETRYABLE_NACK_CODE;
    const attempts = retryable ? (this.#attempts.get(hash) ?? 0) : 0;
    const r: Rejection = { code, attempts, timer: null };
    this.#rejected.set(hash, r);
    let delay: number | null = null;
    if (retryable) {
      delay = backoffDelay(attempts, { ...this.#retry, jitter: "none" });
      this.#attempts.set(hash, attempts + 1);
      r.timer = setTimeout(() => {
        r.timer = null;
        if (this.#rejected.get(hash) !== r) return;
        this.#rejected.delete(hash);
        this.#pump();
      }, delay);
      r.timer.unref();
    }
    this.#deps.store.markRejected(version, hash, { code, message });
    return delay;
  }

  /** Takes in what the SFU reports it runs, unless its version is out of range (SnapshotStore.checkSfuApplied). */
  #adopt(applied: AppliedRef | null): OpenRefusal | null {
    const ref = applied === null ? null : { version: applied.version, hash: applied.hash };
    const refused = this.#deps.store.checkSfuApplied(ref);
    if (refused !== null) {
      this.#emit({ type: "version-refused", reported: ref?.version ?? 0, reason: refused });
      return { reason: "version-refused", message: refused };
    }
    this.#applied = ref;
    this.#deps.store.adoptSfuApplied(ref);
    return null;
  }

  /**
   * Why a health report is not stored: about a hash the SFU does not run (its applied hash, or
   * the config in flight: the SFU reports a new hash before its ack), or counters that
   * contradict each other (protocol/health-checks.ts). Null when it is stored.
   */
  #healthRefusal(counters: HealthCounters): HealthRefusal | null {
    const f = this.#inFlight;
    const inFlight = f?.message.type === "config" ? f.hash : null;
    if (counters.hash !== this.#applied?.hash && counters.hash !== inFlight) {
      return {
        ok: false,
        code: "UNKNOWN_HASH",
        message: `health for ${counters.hash}, which the SFU does not run (applied ${this.#applied?.hash ?? "none"})`,
      };
    }
    return healthCountersRefusal(counters);
  }

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

  /** Forgets rejections (and their retries) and what the SFU runs: a new session of the same link. */
  #forgetSession(): void {
    for (const hash of [...this.#rejected.keys()]) this.#forget(hash);
    this.#attempts.clear();
    this.#applied = null;
  }

  /** Ends the session: the push in flight is dropped unanswered, drains settle, everything per session is forgotten. */
  #endSession(): void {
    const f = this.#inFlight;
    if (f?.timer) clearTimeout(f.timer);
    f?.abort.abort();
    this.#inFlight = null;
    this.#settleDrain();
    this.#forgetSession();
    this.#abandoned.clear();
    this.#secretsConfirmed = null;
    this.#secretsTried = null;
    this.#session = null;
  }

  #forget(hash: string): void {
    const r = this.#rejected.get(hash);
    if (r?.timer) clearTimeout(r.timer);
    this.#rejected.delete(hash);
  }

  #settleDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #rotation(generation: number, outcome: SecretRotationOutcome, error: { code: string; message: string } | null): void {
    this.#emit({ type: "secret-rotation", generation, outcome, error });
  }

  #emitOutcome(outcome: PushOutcome, seconds: number | null): void {
    this.#emit({ type: "outcome", transport: this.#transport.kind, outcome, seconds });
  }

  #emit(e: DeliveryEvent): void {
    this.#deps.callbacks.onEvent(e);
  }
}
