/**
 * The wire documents and rules of HTTP push mode (PROTOCOL.md section 12),
 * as pure functions: the push URL check, the GET applied-state document, the
 * 409/422 error document (the retry backoff is protocol/backoff.ts).
 */
import { type JsonLimits, parseBoundedJson } from "../../protocol/bounded-json.ts";
import { HASH_PATTERN } from "../../protocol/hash.ts";
import type { SfuLinkStatus } from "./status-tracker.ts";
import type { AppliedRef, PushError, PushOutcome } from "./transport.ts";

const hashRe = new RegExp(HASH_PATTERN);

/** Body bytes kept of a push response (an applied or error document is small; http-request.ts stops reading past it). */
export const MAX_PUSH_RESPONSE_BYTES = 64 * 1024;
/** Limits on a push response document: a few fields, a shallow object. */
export const PUSH_RESPONSE_JSON_LIMITS: Readonly<JsonLimits> = {
  maxBytes: MAX_PUSH_RESPONSE_BYTES,
  maxDepth: 8,
  maxValues: 256,
  maxKeys: 64,
};

/** Result label of the last POST in HTTP push mode. */
export type HttpPushOutcome = PushOutcome;

/** `/status` `sfu` in HTTP push mode (the HTTP transport's detail of the link). Never holds the token. */
export interface HttpPushStatus extends SfuLinkStatus {
  /** Whether the last request (POST or GET) was answered: 2xx, 409, 422 or the applied state. */
  connected: boolean;
  name: null;
  version: null;
  mode: "http";
  /** The push URL without its query string. */
  url: string;
  /** Whether the SFU serves its applied state on GET: not known yet, yes, or no. */
  appliedState: "pending" | "supported" | "unsupported";
  lastPush: {
    at: string;
    version: number;
    hash: string;
    outcome: HttpPushOutcome;
    /** HTTP status, null when there was no response. */
    httpStatus: number | null;
    /** Error code (NACK) or failure description; null on ack. */
    error: string | null;
  } | null;
  /** The scheduled retry after consecutive failures; null when none is due. */
  retry: { attempt: number; at: string } | null;
}

/**
 * Checks a push URL: `http:` or `https:`, with a host, without userinfo
 * (use `--token-file`) or fragment. Returns the URL, or what is wrong with it.
 */
export function checkPushUrl(text: string): URL | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${JSON.stringify(text)} is not a URL`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "must be an http:// or https:// URL";
  if (url.hostname === "") return "must name a host";
  if (url.username !== "" || url.password !== "") return "must not carry user:password (use --token-file)";
  if (url.hash !== "") return "must not have a #fragment";
  return url;
}

/** Parses a GET body `{applied: {version, hash} | null}`; undefined when it is not one. */
export function parseAppliedDocument(body: Buffer): AppliedRef | null | undefined {
  const doc = parseJsonObject(body);
  if (doc === null || !("applied" in doc)) return undefined;
  const a = doc["applied"];
  if (a === null) return null;
  if (typeof a !== "object" || Array.isArray(a)) return undefined;
  const { version, hash } = a as Record<string, unknown>;
  if (!Number.isSafeInteger(version) || (version as number) < 0) return undefined;
  if (typeof hash !== "string" || !hashRe.test(hash)) return undefined;
  return { version: version as number, hash };
}

/** Parses a 409/422 body `{code, message, path?}` (or a nack-shaped `{error: {...}}`); null when it is not one. */
export function parseErrorDocument(body: Buffer): PushError | null {
  const doc = parseJsonObject(body);
  if (doc === null) return null;
  const e = typeof doc["error"] === "object" && doc["error"] !== null ? (doc["error"] as Record<string, unknown>) : doc;
  const { code, message, path } = e;
  if (typeof code !== "string" || code.length < 1 || code.length > 64 || typeof message !== "string") return null;
  return {
    code,
    message: message.slice(0, 8192),
    ...(typeof path === "string" ? { path: path.slice(0, 1024) } : {}),
  };
}

function parseJsonObject(body: Buffer): Record<string, unknown> | null {
  const parsed = parseBoundedJson(body, PUSH_RESPONSE_JSON_LIMITS, "push response");
  if (!parsed.ok) return null;
  const v = parsed.value;
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}
