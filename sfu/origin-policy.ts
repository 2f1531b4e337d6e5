/**
 * Which web pages may open the signalling WebSocket (`/ws`). Browsers send
 * `Origin` on every WebSocket handshake and let any page dial any host, so
 * without this check a page on another site could join rooms and collect
 * TURN credentials. Rules, in order:
 *
 * - no `Origin` header: allowed (non-browser clients, which could forge any
 *   header anyway, and are not what the check protects against);
 * - same origin: the Origin's host and port equal the request's `Host`
 *   (the demo page served by this SFU; default ports folded, names compared
 *   case-insensitively) — always allowed;
 * - an origin listed in `server.allowedOrigins` (scheme, host and port;
 *   compared after URL normalisation): allowed;
 * - anything else, including `Origin: null` (sandboxed frames, file: pages)
 *   and unparsable values: refused.
 */

/** Result of {@link checkRequestOrigin}: allowed, or refused with a reason for logs and the 403 body. */
export type OriginDecision =
  | { allowed: true; why: "no-origin" | "same-origin" | "listed" }
  | { allowed: false; reason: string };

/** Longest Origin value echoed into a reason; longer ones are cut (it is attacker-controlled). */
const MAX_ECHO = 120;

/**
 * Normalises an origin (`https://App.Example.com:443` -> `https://app.example.com`);
 * null when `value` is not an http(s) origin (no path, query, fragment or credentials).
 */
export function normaliseOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password || url.search || url.hash) return null;
  if (url.pathname !== "/" || /[^/]\/$/.test(value)) return null;
  return url.origin;
}

/**
 * Decides whether a handshake with headers `origin` and `host` may proceed
 * under the `allowed` list (undefined or empty: same-origin only).
 */
export function checkRequestOrigin(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[] | undefined,
): OriginDecision {
  if (origin === undefined) return { allowed: true, why: "no-origin" };
  const shown = JSON.stringify(origin.length > MAX_ECHO ? `${origin.slice(0, MAX_ECHO)}…` : origin);
  const normalised = normaliseOrigin(origin);
  if (normalised === null) return { allowed: false, reason: `Origin ${shown} is not an http(s) origin` };
  const url = new URL(normalised);
  if (host !== undefined && host !== "") {
    let hostUrl: URL | null = null;
    try {
      // The Host header seen through the Origin's scheme, so default ports fold the same way.
      hostUrl = new URL(`${url.protocol}//${host}`);
    } catch {
      hostUrl = null;
    }
    if (
      hostUrl !== null &&
      hostUrl.host === url.host &&
      hostUrl.pathname === "/" &&
      hostUrl.username === "" &&
      hostUrl.password === "" &&
      hostUrl.search === "" &&
      hostUrl.hash === ""
    ) {
      return { allowed: true, why: "same-origin" };
    }
  }
  if (allowed?.some((a) => normaliseOrigin(a) === normalised)) return { allowed: true, why: "listed" };
  return {
    allowed: false,
    reason: `Origin ${shown} is not this SFU's origin and not in server.allowedOrigins`,
  };
}
