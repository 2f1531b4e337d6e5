/**
 * The host an HTTP/1.1 request is for, from its request target and its
 * `Host` header together: the one rule every HTTP and WebSocket server of the
 * agent and the SFU applies before any check that looks at the host (the
 * agent's Host allow-list, the SFU's same-origin WebSocket check).
 *
 * A request line may carry an absolute-form target (`GET
 * http://evil.example/ HTTP/1.1`, RFC 9112 section 3.2.2); a server must then
 * take the host from the target, not from `Host`, and an intermediary may
 * route by either. Checking `Host` alone thus lets a request for another
 * authority through. So an absolute-form target is accepted only when its
 * scheme is http(s) or ws(s), it carries no userinfo, and its authority is
 * the `Host` header's (ports folded by the target's scheme: `a` and `a:80`
 * are the same for `http:`); the host is then checked as usual. Anything
 * else is refused with 400. Origin-form (`/path`) and asterisk-form (`*`)
 * targets leave the `Host` header as the host.
 */

/** Outcome of {@link requestHost}. */
export type RequestHost =
  /** `host`: the `Host` header to check as before (undefined: none sent, and the target is origin-form). */
  | { ok: true; host: string | undefined }
  /** The request must be refused with 400: `reason` says why (safe to show: no header value in it). */
  | { ok: false; status: 400; reason: string };

const SCHEMES = new Set(["http:", "https:", "ws:", "wss:"]);

/**
 * The host to check for a request with target `target` (`req.url`) and
 * `Host` header `hostHeader` (see the module comment). Never throws.
 */
export function requestHost(target: string | undefined, hostHeader: string | undefined): RequestHost {
  if (target === undefined || target.startsWith("/") || target === "*") return { ok: true, host: hostHeader };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { ok: false, status: 400, reason: "the request target is neither a path nor an absolute URL" };
  }
  if (!SCHEMES.has(url.protocol)) {
    return { ok: false, status: 400, reason: "an absolute request target must be http:, https:, ws: or wss:" };
  }
  if (url.username !== "" || url.password !== "" || url.host === "") {
    return { ok: false, status: 400, reason: "an absolute request target must name a host and carry no user:password" };
  }
  // No Host header (HTTP/1.0): the target's authority is the host.
  if (hostHeader === undefined) return { ok: true, host: url.host };
  let fromHeader: URL;
  try {
    fromHeader = new URL(`${url.protocol}//${hostHeader.trim()}`);
  } catch {
    return { ok: false, status: 400, reason: "the Host header is not a valid authority" };
  }
  if (
    fromHeader.host !== url.host ||
    fromHeader.pathname !== "/" ||
    fromHeader.search !== "" ||
    fromHeader.hash !== "" ||
    fromHeader.username !== ""
  ) {
    return { ok: false, status: 400, reason: "the absolute request target names another host than the Host header" };
  }
  return { ok: true, host: hostHeader };
}
