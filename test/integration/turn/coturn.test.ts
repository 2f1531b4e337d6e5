/**
 * coturn itself with the SFU's credentials: a credential minted by
 * sfu/turn-credentials.ts allocates a relay on a real coturn (TURN REST API,
 * `use-auth-secret`); the same scheme with an expiry in the past, a wrong
 * secret or a tampered username gets 401. With two `static-auth-secret`
 * lines (a rotation's overlap) credentials from either secret allocate.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { mintTurnCredential, TurnAuthSecret } from "../../../sfu/turn-credentials.ts";
import { type Coturn, startCoturn } from "../../helpers/coturn.ts";
import { tryAllocate } from "../../helpers/turn-client.ts";

const OLD = "old-secret-7f3a";
const NEW = "new-secret-91bc";

describe("coturn with use-auth-secret", { timeout: 30_000 }, () => {
  let turn: Coturn;
  before(async () => {
    turn = await startCoturn({ secrets: [OLD, NEW] });
  });
  after(async () => {
    await turn?.stop();
  });

  it("allocates with a freshly minted credential from either secret of the overlap", async () => {
    for (const s of [OLD, NEW]) {
      const c = mintTurnCredential(new TurnAuthSecret(s), "participant-1", 600);
      const r = await tryAllocate(turn.port, c.username, c.credential);
      assert.equal(r.ok, true, JSON.stringify(r));
      if (r.ok) assert.ok(r.relayedPort > 0);
    }
    assert.match(await turn.log(), /ALLOCATE processed, success/);
  });

  it("refuses an expired credential with 401", async () => {
    const secret = new TurnAuthSecret(NEW);
    const expired = `${Math.floor(Date.now() / 1000) - 10}:participant-2`;
    const r = await tryAllocate(turn.port, expired, secret.sign(expired));
    assert.deepEqual(r.ok ? r : { ok: r.ok, status: r.status }, { ok: false, status: 401 });
  });

  it("refuses a credential signed with a secret coturn does not hold, and a tampered username", async () => {
    const c = mintTurnCredential(new TurnAuthSecret("not-configured"), "participant-3", 600);
    const wrong = await tryAllocate(turn.port, c.username, c.credential);
    assert.equal(wrong.ok ? 0 : wrong.status, 401);
    const good = mintTurnCredential(new TurnAuthSecret(NEW), "participant-3", 600);
    const tampered = await tryAllocate(
      turn.port,
      good.username.replace("participant-3", "participant-4"),
      good.credential,
    );
    assert.equal(tampered.ok ? 0 : tampered.status, 401);
  });
});
