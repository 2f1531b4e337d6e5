import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { AgentMetrics } from "../../../agent/metrics.ts";
import { configMessage, PushLedger } from "../../../agent/push-ledger.ts";
import { SnapshotStore, type StoreEvent } from "../../../agent/snapshot-store.ts";
import { StatusTracker } from "../../../agent/status-tracker.ts";
import { normalise } from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";
import { offerConfig } from "../../helpers/config-text.ts";

const normalisedConfig = () =>
  normalise({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
  } as unknown as SfuConfigV1);

const hash = (c: string) => `sha256:${c.repeat(64)}`;

function setup(opts: { onRetryDue?: () => void } = {}) {
  const clock = () => new Date("2026-01-01T00:00:00Z");
  const store = new SnapshotStore({ clock });
  const tracker = new StatusTracker({ store, clock }, { watchSettlements: true });
  const metrics = new AgentMetrics(new Registry());
  metrics.follow(tracker);
  const events: StoreEvent[] = [];
  store.subscribe((e) => events.push(e));
  const ledger = new PushLedger({
    store,
    tracker,
    transport: "http",
    nackRetry: { baseMs: 20, maxMs: 50 },
    ...(opts.onRetryDue ? { onRetryDue: opts.onRetryDue } : {}),
  });
  return { store, tracker, metrics, events, ledger };
}

test("next: the newest desired config, unless applied, rejected or skipped", () => {
  const { store, ledger } = setup();
  assert.equal(ledger.next(), null);
  offerConfig(store, normalisedConfig(), hash("a"));
  assert.equal(ledger.next()?.hash, hash("a"));
  assert.equal(
    ledger.next((h) => h === hash("a")),
    null,
  );
  ledger.recordNack(1, hash("a"), { code: "INVALID_CONFIG", message: "no" }, 0.01);
  assert.equal(ledger.isRejected(hash("a")), true);
  assert.equal(ledger.retryDelayMs(hash("a")), null, "only APPLY_FAILED is retried on the same session");
  assert.equal(ledger.next(), null, "a rejected hash is not sent again");
  offerConfig(store, normalisedConfig(), hash("b"));
  assert.equal(ledger.next()?.version, 2, "latest wins");
  ledger.recordAck(2, hash("b"), 0.01);
  assert.equal(ledger.next(), null, "the applied hash is not re-pushed");
  ledger.reset();
  assert.equal(ledger.applied, null);
  assert.equal(ledger.isRejected(hash("a")), false, "a new session forgets rejections");
});

test("outcomes go to the store and the metrics once", async () => {
  const { store, metrics, events, ledger } = setup();
  offerConfig(store, normalisedConfig(), hash("a"));
  ledger.recordSent();
  ledger.recordTimeout(1, hash("a"));
  ledger.recordTimeout(1, hash("a"), false);
  ledger.recordFailure("unreachable");
  ledger.recordLateAck(1, hash("a"));
  assert.deepEqual(
    events.map((e) => e.type),
    ["valid", "desired", "ack-timeout", "applied"],
  );
  assert.equal(store.applied()?.hash, hash("a"));
  const counts = await metrics.pushOutcomes.get();
  const of = (o: string) => counts.values.find((v) => v.labels["outcome"] === o)?.value;
  assert.equal(of("timeout"), 2);
  assert.equal(of("unreachable"), 1);
  assert.equal((await metrics.pushes.get()).values[0]?.value, 1);
});

test("adopt: versions continue above what the SFU reports", () => {
  const { store, ledger } = setup();
  offerConfig(store, normalisedConfig(), hash("a"));
  ledger.adopt({ version: 9, hash: hash("b") });
  assert.equal(ledger.applied?.version, 9);
  const d = ledger.next();
  assert.equal(d?.version, 10);
  const msg = configMessage(d!, 4);
  assert.deepEqual(Object.keys(msg), ["type", "nonce", "version", "hash", "revision", "schemaVersion", "config"]);
  assert.equal(msg.nonce, 4);
  assert.equal(msg.schemaVersion, 1);
});

test("APPLY_FAILED is re-sent after a capped, doubling backoff; other codes are not", async () => {
  let due = 0;
  const { store, ledger } = setup({ onRetryDue: () => due++ });
  offerConfig(store, normalisedConfig(), hash("a"));
  const delays: (number | null)[] = [];
  for (let i = 0; i < 4; i++) {
    assert.equal(ledger.next()?.hash, hash("a"), `attempt ${i} may be sent`);
    delays.push(ledger.recordNack(1, hash("a"), { code: "APPLY_FAILED", message: "credential file unreadable" }, 0));
    assert.equal(ledger.next(), null, "not re-sent at once");
    const before = due;
    await new Promise((r) => setTimeout(r, (delays.at(-1) ?? 0) + 15));
    assert.equal(due, before + 1, "the retry came due");
  }
  assert.deepEqual(delays, [20, 40, 50, 50], "1x, 2x, then capped");
  ledger.recordAck(1, hash("a"), 0);
  offerConfig(store, normalisedConfig(), hash("b"));
  assert.equal(
    ledger.recordNack(2, hash("b"), { code: "APPLY_FAILED", message: "x" }, 0),
    20,
    "the backoff restarts per hash",
  );
  ledger.dispose();
  const before = due;
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(due, before, "dispose cancels pending retries");
});

test("a rejected hash that becomes desired again is sent again (v1 -> H4 nack -> H2 ack -> H4)", () => {
  const { store, tracker, ledger } = setup();
  const cfg = normalisedConfig();
  offerConfig(store, cfg, hash("1"));
  ledger.recordAck(1, hash("1"), 0);
  offerConfig(store, cfg, hash("4"));
  ledger.desiredAgain(hash("4"));
  ledger.recordNack(2, hash("4"), { code: "RESTART_REQUIRED", message: "port" }, 0);
  offerConfig(store, cfg, hash("2"));
  ledger.desiredAgain(hash("2"));
  assert.equal(ledger.next()?.hash, hash("2"));
  ledger.recordAck(3, hash("2"), 0);
  offerConfig(store, cfg, hash("4"));
  ledger.desiredAgain(hash("4"));
  const d = ledger.next();
  assert.equal(d?.hash, hash("4"), "H4 is pushed again");
  assert.equal(d?.version, 4);
  ledger.recordAck(4, hash("4"), 0);
  assert.deepEqual(
    tracker.settlements().map((x) => [x.hash.slice(7, 8), x.version, x.outcome]),
    [
      ["1", 1, "applied"],
      ["4", 2, "rejected"],
      ["2", 3, "applied"],
      ["4", 4, "applied"],
    ],
    "and settles again",
  );
  assert.equal(tracker.lastError(), null);
  assert.equal(tracker.previousError()?.code, "RESTART_REQUIRED");
});

test("adopt refuses an out-of-range version and reports it", async () => {
  const { store, tracker, metrics, ledger } = setup();
  offerConfig(store, normalisedConfig(), hash("a"));
  const refused = ledger.adopt({ version: 2 ** 53 - 1, hash: hash("z") });
  assert.match(refused ?? "", /above the limit/);
  assert.equal(ledger.applied, null);
  assert.equal(store.desired()?.version, 1);
  assert.equal(tracker.lastError()?.code, "VERSION_REFUSED");
  assert.equal((await metrics.versionsRefused.get()).values[0]?.value, 1);
  assert.equal(ledger.adopt({ version: 3, hash: hash("a") }), null);
});
