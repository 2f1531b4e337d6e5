/**
 * Ephemeral TURN credentials: the TURN REST API format, checked against a
 * value computed here independently with node:crypto (and a fixed vector),
 * and a secret object that prints nothing of itself.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import { pino } from "pino";
import { mintTurnCredential, TurnAuthSecret } from "../../../sfu/turn-credentials.ts";

describe("mintTurnCredential", () => {
  it("username is expiry:participant and the credential base64(HMAC-SHA1(secret, username))", () => {
    const secret = new TurnAuthSecret("north-wind-42\n");
    const c = mintTurnCredential(secret, "p-1", 3600, 1_700_000_000_000);
    assert.equal(c.username, "1700003600:p-1");
    assert.equal(c.expiresAt, 1_700_003_600);
    const expected = createHmac("sha1", "north-wind-42").update("1700003600:p-1").digest("base64");
    assert.equal(c.credential, expected);
    // Fixed vector, computed with `openssl dgst -sha1 -hmac north-wind-42 -binary | base64`.
    assert.equal(c.credential, "U7Ivm3a51VC2sMsGGJcJqESD9Do=");
  });

  it("rounds the expiry up to a whole second and honours the TTL", () => {
    const secret = new TurnAuthSecret("s");
    assert.equal(mintTurnCredential(secret, "a", 60, 1000).expiresAt, 61);
    assert.equal(mintTurnCredential(secret, "a", 60, 1001).expiresAt, 62);
    assert.equal(mintTurnCredential(secret, "a", 86400, 0).username, "86400:a");
  });

  it("different participants and different secrets give different credentials", () => {
    const a = new TurnAuthSecret("one");
    const b = new TurnAuthSecret("two");
    const now = 1_700_000_000_000;
    assert.notEqual(mintTurnCredential(a, "x", 60, now).credential, mintTurnCredential(a, "y", 60, now).credential);
    assert.notEqual(mintTurnCredential(a, "x", 60, now).credential, mintTurnCredential(b, "x", 60, now).credential);
  });

  it("refuses participant ids with ':' or empty, and non-positive or fractional TTLs", () => {
    const s = new TurnAuthSecret("s");
    assert.throws(() => mintTurnCredential(s, "a:b", 60), TypeError);
    assert.throws(() => mintTurnCredential(s, "", 60), TypeError);
    assert.throws(() => mintTurnCredential(s, "a", 0), TypeError);
    assert.throws(() => mintTurnCredential(s, "a", 1.5), TypeError);
  });
});

describe("TurnAuthSecret", () => {
  it("trims surrounding whitespace and refuses an empty secret", () => {
    assert.ok(new TurnAuthSecret("  abc \n").equals(new TurnAuthSecret("abc")));
    assert.ok(!new TurnAuthSecret("abc").equals(new TurnAuthSecret("abd")));
    assert.throws(() => new TurnAuthSecret(" \n"), /empty/);
  });

  it("never prints the secret: JSON, inspect, template strings and pino", () => {
    const value = "Zq9-distinctive-secret-Zq9";
    const secret = new TurnAuthSecret(value);
    let logged = "";
    const logger = pino(
      { level: "info" },
      new Writable({
        write(chunk: Buffer, _e, cb) {
          logged += chunk.toString();
          cb();
        },
      }),
    );
    logger.info({ secret, nested: { secret } }, `holding ${secret}`);
    for (const text of [
      JSON.stringify({ secret }),
      inspect(secret),
      inspect({ a: { secret } }, { depth: 5 }),
      `${secret}`,
      logged,
    ]) {
      assert.ok(!text.includes(value), text);
      assert.ok(text.includes("redacted"), text);
    }
  });
});
