/**
 * Ephemeral TURN credentials (the TURN REST API scheme that coturn implements
 * with `use-auth-secret` / `static-auth-secret`): for each participant the SFU
 * mints
 *
 *   username   = `${expiryUnixSeconds}:${participantId}`
 *   credential = base64(HMAC-SHA1(sharedSecret, username))
 *
 * The TURN server recomputes the HMAC from its own copy of the secret and
 * refuses a username whose expiry has passed, so a browser only ever holds a
 * password that is worthless after `ttl` seconds and names one participant.
 * The shared secret stays inside {@link TurnAuthSecret}: it is not enumerable,
 * not serialisable (toJSON and inspect print a placeholder) and never leaves
 * this module except as an HMAC.
 */
import { createHmac } from "node:crypto";
import { inspect } from "node:util";

/** Default lifetime of a minted credential, in seconds (also the config default of `credentialTtl`). */
export const DEFAULT_CREDENTIAL_TTL_SECONDS = 3600;

/** A username/credential pair for one participant, valid until `expiresAt` (unix seconds). */
export interface EphemeralCredential {
  username: string;
  credential: string;
  /** Unix seconds after which the TURN server refuses the username. */
  expiresAt: number;
}

/** Placeholder printed wherever a secret object is logged or serialised. */
const REDACTED = "[TurnAuthSecret redacted]";

/**
 * A TURN REST shared secret held in memory. The raw value is kept in a
 * private field: JSON.stringify, util.inspect (so pino and console) and
 * string conversion print a placeholder, so passing the object around by
 * mistake cannot leak it.
 */
export class TurnAuthSecret {
  readonly #key: Buffer;

  /**
   * `value` is the secret file's text; surrounding whitespace (the newline
   * an editor or `kubectl create secret --from-file` leaves) is removed, as
   * coturn reads `static-auth-secret` without it. Throws a TypeError when
   * nothing is left.
   */
  constructor(value: string | Buffer) {
    const text = (typeof value === "string" ? value : value.toString("utf8")).trim();
    if (text.length === 0) throw new TypeError("TURN auth secret is empty");
    this.#key = Buffer.from(text, "utf8");
  }

  /** `base64(HMAC-SHA1(secret, username))`. */
  sign(username: string): string {
    return createHmac("sha1", this.#key).update(username, "utf8").digest("base64");
  }

  /** True when `other` holds the same secret (constant-time is not needed: both are ours). */
  equals(other: TurnAuthSecret): boolean {
    return other.#key.equals(this.#key);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/**
 * Mints the credential of `participantId` valid for `ttlSeconds` from
 * `nowMs` (ms since epoch). The expiry is rounded up to a whole second.
 * Throws a TypeError for a participant id containing `:` (the scheme's
 * separator) or a TTL that is not a positive integer.
 */
export function mintTurnCredential(
  secret: TurnAuthSecret,
  participantId: string,
  ttlSeconds: number,
  nowMs: number = Date.now(),
): EphemeralCredential {
  if (participantId.length === 0 || participantId.includes(":")) {
    throw new TypeError(
      `TURN participant id must be non-empty and contain no ":", got ${JSON.stringify(participantId)}`,
    );
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError(`TURN credential TTL must be a positive integer of seconds, got ${ttlSeconds}`);
  }
  const expiresAt = Math.ceil(nowMs / 1000) + ttlSeconds;
  const username = `${expiresAt}:${participantId}`;
  return { username, credential: secret.sign(username), expiresAt };
}
