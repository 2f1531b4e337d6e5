/**
 * The contract between the delivery core (agent/sidecar/delivery.ts) and a push transport: what the core
 * asks a transport to carry, the answers, what a transport reports ({@link DeliveryLink}), and the
 * core's one event stream (PROTOCOL.md [section 4](../protocol/PROTOCOL.md#4-messages)).
 */
import type { HealthRefusal } from "../../protocol/health-checks.ts";
import type { ConfigMessage, HealthCounters } from "../../protocol/messages-schema.ts";
import type { DesiredSnapshot } from "./snapshot-store.ts";

/** A config the SFU runs: `{version, hash}`. */
export interface AppliedRef {
  version: number;
  hash: string;
}

/** A NACK error as carried by a `nack` or an HTTP 409/422 body. */
export interface PushError {
  code: string;
  message: string;
  path?: string;
}

/** Label of a transport in outcome events and metrics. */
export type PushTransport = "websocket" | "http";

/**
 * Outcome of one push: `ack`, `nack`, `timeout`; `http_error` (a status other than 2xx/409/422)
 * and `unreachable` (no connection) over HTTP; `unsupported_schema`: not sent, the SFU did not
 * list the config's schemaVersion.
 */
export type PushOutcome = "ack" | "nack" | "timeout" | "http_error" | "unreachable" | "unsupported_schema";

/**
 * Outcome of one secrets reload: `ack`, `nack`, `timeout`; `unsupported`: the secret files
 * changed but the SFU (or the transport) has no `secrets-reload`.
 */
export type SecretRotationOutcome = "ack" | "nack" | "timeout" | "unsupported";

/** The one wording of an ack timeout (lastError, settlements); the hash is named when given. */
export function ackTimeoutError(version: number, hash?: string): { code: "ACK_TIMEOUT"; message: string } {
  return {
    code: "ACK_TIMEOUT",
    message: `the SFU did not answer version ${version}${hash === undefined ? "" : ` (${hash})`} in time`,
  };
}

/** What the core asks a transport to carry; `nonce` increases from 1 per session. */
export type Outbound =
  | { type: "config"; nonce: number; snapshot: DesiredSnapshot }
  | { type: "secrets-reload"; nonce: number; applied: AppliedRef; generation: number };

/**
 * The SFU's answer to one {@link Outbound}, or why none came: `timeout` (the transport's own
 * deadline passed), `failed` (no definite answer: HTTP status, no connection), `closed` (the
 * link ended or the transport stopped: no outcome).
 */
export type Reply =
  | { type: "ack" }
  | { type: "nack"; error: PushError }
  | { type: "timeout" }
  | { type: "failed"; outcome: "http_error" | "unreachable" }
  | { type: "closed" };

/** A push transport, driven by the delivery core: framing, connection and timing only. */
export interface Transport {
  readonly kind: PushTransport;
  /** How texts name it ("HTTP push mode"). */
  readonly label: string;
  /** Whether it can carry `secrets-reload` (else every secret change is recorded `unsupported`). */
  readonly secretsReload: boolean;
  /** Whether a reply can still arrive after the ack timeout (WebSocket); else a timed-out push is over and retried. */
  readonly lateReplies: boolean;
  /** Whether it runs (listening, or pushing): the readiness probe's part. */
  readonly ready: boolean;
  /** Whether it may send now (no request of its own in flight, no retry pending). */
  readonly canSend: boolean;
  readonly url: string;
  start(link: DeliveryLink): Promise<void>;
  /** Stops; an unanswered push gets up to `drainMs` ({@link DeliveryLink.drain}). */
  stop(drainMs: number): Promise<void>;
  /** Sends `message`; resolves with the answer. `signal` aborts when the core gave up on it. */
  send(message: Outbound, signal: AbortSignal): Promise<Reply>;
}

/** What the SFU says about itself when a session starts (WebSocket `hello`, HTTP `GET`). */
export interface SessionInfo {
  /** Its software (`hello.sfu`); null when the transport does not say. */
  sfu: { name: string; version: string } | null;
  /** What it runs; omitted when it does not say. */
  applied?: AppliedRef | null;
  /** The schemaVersions it takes; omitted when not negotiated. */
  schemaVersions?: readonly number[];
  /** `hello.features`. */
  features?: readonly string[];
}

/** Why a session was refused: no schemaVersion in common, or an applied version out of range. */
export interface OpenRefusal {
  reason: "no-common-schema" | "version-refused";
  message: string;
}

/** The core as a transport sees it. */
export interface DeliveryLink {
  /** A session starts (a new connection's hello; HTTP: the first answer); null when taken in (then {@link wake}). */
  open(info: SessionInfo): OpenRefusal | null;
  /** The SFU reports again what it runs (HTTP `GET`): a lost answer, or a restart (a new session). */
  report(applied: AppliedRef | null): OpenRefusal | null;
  /** The session ended (the connection closed). */
  close(): void;
  /** The SFU answered a request (`true`) or not: the link, for transports without a connection. */
  reachable(up: boolean): void;
  /** The transport may send again. */
  wake(): void;
  /** A call-health report (PROTOCOL.md section 15). */
  health(counters: HealthCounters): void;
  /** Resolves when no push is unanswered, or after `ms`. */
  drain(ms: number): Promise<void>;
}

/** The one event stream of the core. */
export type DeliveryEvent =
  | { type: "sent"; transport: PushTransport }
  | { type: "outcome"; transport: PushTransport; outcome: PushOutcome; seconds: number | null }
  | { type: "link-up"; sfu: { name: string; version: string } | null }
  | { type: "link-down" }
  | { type: "version-refused"; reported: number; reason: string }
  | { type: "secrets-changed"; generation: number }
  | { type: "secrets-unknown" }
  | { type: "secrets-applied"; generation: number }
  | {
      type: "secret-rotation";
      generation: number;
      outcome: SecretRotationOutcome;
      error: { code: string; message: string } | null;
    }
  | { type: "health"; counters: HealthCounters }
  | { type: "health-dropped"; reason: HealthRefusal["code"] };

/** The observers of the core, wired once (go-control-plane's `Callbacks`). */
export interface DeliveryCallbacks {
  onEvent(e: DeliveryEvent): void;
}

/** Builds the `config` message (WebSocket frame or HTTP body) of a desired snapshot. */
export function configMessage(d: DesiredSnapshot, nonce: number): ConfigMessage {
  return {
    type: "config",
    nonce,
    version: d.version,
    hash: d.hash,
    revision: d.revision,
    schemaVersion: d.config.schemaVersion,
    config: d.config as unknown as ConfigMessage["config"],
  };
}
