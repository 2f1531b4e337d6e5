/**
 * The rules every WebSocket server of the project applies at the upgrade and
 * after it: one upgrade gate ({@link upgradeRefusal} and {@link abortHandshake},
 * the agent's push server and the conformance kit's server), version 13 only,
 * and pings answered up to a rate ({@link guardPings}). PROTOCOL.md
 * [section 2](./PROTOCOL.md#2-transport).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

/** The only `Sec-WebSocket-Version` served (RFC 6455). */
export const WEBSOCKET_VERSION = "13";

/** Close code for a peer that broke a limit of this module (RFC 6455 1008, policy violation). */
export const POLICY_VIOLATION_CLOSE = 1008;

/**
 * The raw `426` response refusing an upgrade whose `Sec-WebSocket-Version`
 * is not 13 (absent included), or null when it is 13. `ws` also accepts the
 * draft version 8; the project serves only RFC 6455's 13. The caller writes
 * it to the socket and ends it.
 */
export function webSocketVersionRefusal(version: string | string[] | undefined): string | null {
  if (version === WEBSOCKET_VERSION) return null;
  return refusalResponse(VERSION_REFUSAL);
}

/** Why {@link upgradeRefusal} refused an upgrade (also the metric label of the agent's refusals). */
export type UpgradeRefusalReason = "method" | "version" | "subprotocol" | "origin" | "token" | "shutting down";

/** An upgrade refused by {@link upgradeRefusal}; written by {@link abortHandshake}. */
export interface UpgradeRefusal {
  status: 401 | 403 | 405 | 426 | 503;
  reason: UpgradeRefusalReason;
  /** The response body: the one-word reason, or the version text. */
  body: string;
  /** Response headers beyond Connection, Content-Type and Content-Length. */
  headers: Readonly<Record<string, string>>;
  /** One line for the server's log; never the token. */
  detail: string;
}

/** What {@link upgradeRefusal} checks besides the fixed rules. */
export interface UpgradeGate {
  /** The subprotocol the client must offer in `Sec-WebSocket-Protocol`. */
  subprotocol: string;
  /** The bearer token the client must present, or null when none is required. Never logged. */
  token: string | null;
  /** False while the server shuts down (or, in the kit, simulates a restart): refused with 503. */
  available: boolean;
}

/** The part of an upgrade request that {@link upgradeRefusal} reads. */
export interface UpgradeRequest {
  method?: string | undefined;
  headers: {
    origin?: string | undefined;
    authorization?: string | undefined;
    "sec-websocket-version"?: string | string[] | undefined;
    "sec-websocket-protocol"?: string | undefined;
  };
}

const VERSION_REFUSAL: UpgradeRefusal = {
  status: 426,
  reason: "version",
  body: `WebSocket version ${WEBSOCKET_VERSION} (RFC 6455) required\n`,
  headers: { "Sec-WebSocket-Version": WEBSOCKET_VERSION },
  detail: `WebSocket version ${WEBSOCKET_VERSION} required`,
};

function refusal(status: UpgradeRefusal["status"], reason: UpgradeRefusalReason, detail: string): UpgradeRefusal {
  return { status, reason, body: reason, headers: {}, detail };
}

/**
 * The one upgrade gate: null when `req` may be upgraded, else the first
 * refusal in PROTOCOL.md's order (section 2): method `GET` (405), version 13
 * (426), the subprotocol offered (426), no `Origin` header (403), the bearer
 * token when one is set (401, compared in constant time), the server
 * available (503). A second SFU is not refused here: it is accepted and
 * closed with 4010.
 */
export function upgradeRefusal(req: UpgradeRequest, gate: UpgradeGate): UpgradeRefusal | null {
  if (req.method !== "GET") return refusal(405, "method", `method ${String(req.method)} is not GET`);
  if (req.headers["sec-websocket-version"] !== WEBSOCKET_VERSION) return VERSION_REFUSAL;
  const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
  if (!offered.includes(gate.subprotocol))
    return refusal(426, "subprotocol", `subprotocol ${gate.subprotocol} not offered`);
  if (req.headers.origin !== undefined) {
    return refusal(403, "origin", "an Origin header is present (browsers may not connect)");
  }
  if (gate.token !== null && !tokenMatches(req.headers.authorization, gate.token)) {
    return refusal(401, "token", "missing or wrong bearer token");
  }
  if (!gate.available) return refusal(503, "shutting down", "shutting down");
  return null;
}

/**
 * Constant-time check of an `Authorization` header against `Bearer <token>`:
 * both sides are hashed first, so neither the time nor the comparison
 * depends on where or whether their lengths differ.
 */
export function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(header), digest(`Bearer ${token}`));
}

function refusalResponse(r: UpgradeRefusal): string {
  const headers = { Connection: "close", "Content-Type": "text/plain", ...r.headers };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return (
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\n${lines.join("")}` +
    `Content-Length: ${Buffer.byteLength(r.body)}\r\n\r\n${r.body}`
  );
}

/**
 * Writes `refusal` as the HTTP response to the upgrade on `socket` and ends
 * it (destroyed once written, as `ws` does): the one place a refusal is
 * written.
 */
export function abortHandshake(socket: Duplex, refusal: UpgradeRefusal): void {
  socket.once("finish", () => socket.destroy());
  socket.end(refusalResponse(refusal));
}

/** Ping rate limits of {@link guardPings}. */
export interface PingLimits {
  /** Pings answered at once before the rate applies. */
  burst: number;
  /** Pings answered per second after the burst. */
  perSecond: number;
}

/**
 * Defaults: a liveness ping every few seconds is what any client needs; 100
 * at once and 20 a second leave two orders of magnitude of room.
 */
export const PING_LIMITS: Readonly<PingLimits> = { burst: 100, perSecond: 20 };

/** The part of a `ws` WebSocket that {@link guardPings} uses. */
export interface PingableSocket {
  on(event: "ping", listener: (data: Buffer) => void): unknown;
  pong(data: Buffer): void;
  close(code: number, reason: string): void;
  terminate(): void;
}

/** A flooding peer that does not answer the close frame within this time is cut off (ms). */
export const FLOOD_CLOSE_TIMEOUT_MS = 2_000;

/**
 * Answers each ping of `ws` with a pong while the peer stays under `limits`
 * (a token bucket); over them, closes `ws` with {@link POLICY_VIOLATION_CLOSE}
 * (cut off after {@link FLOOD_CLOSE_TIMEOUT_MS} without a closing handshake)
 * and calls `onFlood` once with the reason (for the caller's log and
 * metrics). Without it, `ws` answers pings itself and, once more than 60
 * pongs wait to be written, cuts the TCP connection without a close frame
 * (a flood of 10,000 pings got 11-33 pongs, then silence). The socket must
 * have been created with `autoPong: false`. `now` is the clock (ms), for
 * tests.
 */
export function guardPings(
  ws: PingableSocket,
  onFlood: (reason: string) => void,
  limits: Readonly<PingLimits> = PING_LIMITS,
  now: () => number = Date.now,
): void {
  if (!(limits.burst >= 1 && limits.perSecond > 0)) throw new RangeError("guardPings: burst >= 1 and perSecond > 0");
  let tokens = limits.burst;
  let at = now();
  let flooded = false;
  ws.on("ping", (data) => {
    if (flooded) return;
    const t = now();
    tokens = Math.min(limits.burst, tokens + ((t - at) / 1000) * limits.perSecond);
    at = t;
    if (tokens < 1) {
      flooded = true;
      const reason = `ping flood: over ${limits.burst} pings at once or ${limits.perSecond} a second`;
      ws.close(POLICY_VIOLATION_CLOSE, reason);
      setTimeout(() => ws.terminate(), FLOOD_CLOSE_TIMEOUT_MS).unref();
      onFlood(reason);
      return;
    }
    tokens -= 1;
    ws.pong(data);
  });
}
