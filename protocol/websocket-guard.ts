/**
 * Two rules every WebSocket server of the project applies (the agent's push
 * server, the conformance kit's server, the SFU's `/ws` signalling; PROTOCOL.md
 * section 7):
 *
 * - **Version 13 only** ({@link webSocketVersionRefusal}): RFC 6455 is
 *   version 13. `ws` also accepts the draft version 8 (hybi-08); the project's
 *   upgrade gates refuse anything but 13 with `426 Upgrade Required` and
 *   `Sec-WebSocket-Version: 13` (RFC 6455 section 4.4) before handing the
 *   request to `ws`.
 * - **Pings answered up to a rate** ({@link guardPings}): every ping gets its
 *   pong while the peer stays under {@link PING_LIMITS} (a token bucket:
 *   `burst` pings at once, `perSecond` after); a peer over it is closed with
 *   1008 (policy violation) and a reason that says so, and the caller logs it.
 *   Without this, `ws` answers pings itself and, once more than 60 pongs are
 *   waiting to be written, cuts the TCP connection without a close frame or a
 *   word (a flood of 10,000 pings got 11-33 pongs, then silence). Servers
 *   create their sockets with `autoPong: false` and call {@link guardPings}
 *   on each.
 */

/** The only `Sec-WebSocket-Version` served (RFC 6455). */
export const WEBSOCKET_VERSION = "13";

/** Close code for a peer that broke a limit of this module (RFC 6455 1008, policy violation). */
export const POLICY_VIOLATION_CLOSE = 1008;

/**
 * The raw `426` response refusing an upgrade whose `Sec-WebSocket-Version`
 * is not 13 (absent included), or null when it is 13. The caller writes it
 * to the socket and ends it.
 */
export function webSocketVersionRefusal(version: string | string[] | undefined): string | null {
  if (version === WEBSOCKET_VERSION) return null;
  const body = `WebSocket version ${WEBSOCKET_VERSION} (RFC 6455) required\n`;
  return (
    `HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: ${WEBSOCKET_VERSION}\r\nConnection: close\r\n` +
    `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
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
 * Answers each ping of `ws` with a pong while the peer stays under `limits`;
 * over them, closes `ws` with {@link POLICY_VIOLATION_CLOSE} (cut off after
 * {@link FLOOD_CLOSE_TIMEOUT_MS} without a closing handshake) and calls
 * `onFlood` once with the reason (for the caller's log and metrics). The
 * socket must have been created with `autoPong: false`. `now` is the clock
 * (ms), for tests.
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
