import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ConfigApplier } from "../../../sfu/config-applier.ts";
import { ConfigClient } from "../../../sfu/config-client.ts";
import { ConfigState } from "../../../sfu/config-state.ts";
import { InvalidOptionsError } from "../../../sfu/errors.ts";

const logger = pino({ level: "silent" });
const state = new ConfigState();
const applier = new ConfigApplier({ state, logger });

describe("ConfigClient options and backoff", () => {
  it("backs off exponentially from 0.5 s to 30 s with jitter in [50%, 100%]", () => {
    const hi = new ConfigClient({ url: "ws://127.0.0.1:1", logger, applier, state, random: () => 0.999999 });
    const lo = new ConfigClient({ url: "ws://127.0.0.1:1", logger, applier, state, random: () => 0 });
    assert.deepEqual(
      [0, 1, 2, 3].map((a) => hi.backoffDelay(a)),
      [500, 1000, 2000, 4000],
    );
    assert.equal(hi.backoffDelay(10), 30_000);
    assert.equal(hi.backoffDelay(1000), 30_000);
    assert.equal(lo.backoffDelay(0), 250);
    assert.equal(lo.backoffDelay(20), 15_000);
  });

  it("rejects bad options at construction", () => {
    assert.throws(() => new ConfigClient({ url: "nope", logger, applier, state }), InvalidOptionsError);
    assert.throws(() => new ConfigClient({ url: "http://x", logger, applier, state }), /ws:\/\//);
    assert.throws(
      () => new ConfigClient({ url: "ws://x", logger, applier, state, initialBackoffMs: 0 }),
      InvalidOptionsError,
    );
    assert.throws(
      () => new ConfigClient({ url: "ws://x", logger, applier, state, initialBackoffMs: 10, maxBackoffMs: 5 }),
      InvalidOptionsError,
    );
  });
});
