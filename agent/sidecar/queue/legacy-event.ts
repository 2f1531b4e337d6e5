/**
 * The article-style reload message, `{"event":"configReload","commit":"<sha>"}`:
 * what the hook of the configmap-reload setup this project grew from
 * publishes, and so what users migrating from it send first. It carries no
 * config hash, so it cannot wait for a given content the way a full reload
 * event does; the agent takes it as "check the mounted file now": it re-reads
 * the file, attaches `commit` as the revision of the hash found there, and
 * settles that hash like a full event (see settlement.ts). The queue README
 * says how to move to the full event.
 */

import { parseEventJson } from "../../../protocol/messages.ts";

/** Longest `commit` accepted (a full SHA-256 object name is 64 hex digits; refs may be longer). */
const MAX_COMMIT_LENGTH = 128;

/** An article-style reload message. */
export interface LegacyReload {
  commit: string;
  envelope: boolean;
}

/**
 * Recognises an article-style message (raw or in an SNS envelope): an object
 * whose `event` is `"configReload"` and whose `commit` is a non-empty string
 * of printable ASCII without spaces, at most 128 characters. Bodies are read within
 * EVENT_JSON_LIMITS (protocol/messages.ts). Returns null for
 * anything else (which the caller parses as a full reload event).
 */
export function parseLegacyReload(body: string): LegacyReload | null {
  // The same bounded reader (bytes, depth, values, keys) as every other SQS body.
  const parsed = parseEventJson(body);
  if (!parsed.ok) return null;
  const { value, envelope } = parsed;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  if (o["event"] !== "configReload") return null;
  const commit = o["commit"];
  if (typeof commit !== "string" || commit.length === 0 || commit.length > MAX_COMMIT_LENGTH) return null;
  if (!/^[\x21-\x7e]+$/.test(commit)) return null;
  return { commit, envelope };
}
