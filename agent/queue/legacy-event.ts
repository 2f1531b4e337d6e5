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
 * of printable ASCII without spaces, at most 128 characters. Returns null for
 * anything else (which the caller parses as a full reload event).
 */
export function parseLegacyReload(body: string): LegacyReload | null {
  if (body.length > 64 * 1024) return null;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  let envelope = false;
  const v = value as { Type?: unknown; Message?: unknown } | null;
  if (typeof v === "object" && v !== null && v.Type === "Notification" && typeof v.Message === "string") {
    envelope = true;
    try {
      value = JSON.parse(v.Message);
    } catch {
      return null;
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  if (o["event"] !== "configReload") return null;
  const commit = o["commit"];
  if (typeof commit !== "string" || commit.length === 0 || commit.length > MAX_COMMIT_LENGTH) return null;
  if (!/^[\x21-\x7e]+$/.test(commit)) return null;
  return { commit, envelope };
}
