import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { AgentMetrics } from "../../../agent/metrics.ts";
import { configMessage, PushLedger } from "../../../agent/push-ledger.ts";
import { SnapshotStore, type StoreEvent } from "../../../agent/snapshot-store.ts";
import { normalise } from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";

const normalisedConfig = () =>
  normalise({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
  } as unknown as SfuConfigV1);

const hash = (c: string) => `sha256:${c.repeat(64)}`;

function setup() {
  const store = new SnapshotStore({ clock: () => new Date("2026-01-01T00:00:00Z") });
  const metrics = new AgentMetrics(new Registry());
  const events: StoreEvent[] = [];
  store.subscribe((e) => events.push(e));
  const ledger = new PushLedger({ store, metrics, transport: "http" });
  return { store, metrics, events, ledger };
}

test("next: the newest desired config, unless applied, rejected or skipped", () => {
  const { store, ledger } = setup();
  assert.equal(ledger.next(), null);
  store.offerValid(normalisedConfig(), hash("a"));
  assert.equal(ledger.next()?.hash, hash("a"));
  assert.equal(
    ledger.next((h) => h === hash("a")),
    null,
  );
  ledger.recordNack(1, hash("a"), { code: "APPLY_FAILED", message: "no" }, 0.01);
  assert.equal(ledger.isRejected(hash("a")), true);
  assert.equal(ledger.next(), null, "a rejected hash is not sent again");
  store.offerValid(normalisedConfig(), hash("b"));
  assert.equal(ledger.next()?.version, 2, "latest wins");
  ledger.recordAck(2, hash("b"), 0.01);
  assert.equal(ledger.next(), null, "the applied hash is not re-pushed");
  ledger.reset();
  assert.equal(ledger.applied, null);
  assert.equal(ledger.isRejected(hash("a")), false, "a new session forgets rejections");
});

test("outcomes go to the store and the metrics once", async () => {
  const { store, metrics, events, ledger } = setup();
  store.offerValid(normalisedConfig(), hash("a"));
  ledger.recordSent();
  ledger.recordTimeout(1, hash("a"));
  ledger.recordTimeout(1, hash("a"), false);
  ledger.recordFailure("unreachable");
  ledger.recordLateAck(1, hash("a"));
  assert.deepEqual(
    events.map((e) => e.type),
    ["desired", "ack-timeout", "applied"],
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
  store.offerValid(normalisedConfig(), hash("a"));
  ledger.adopt({ version: 9, hash: hash("b") });
  assert.equal(ledger.applied?.version, 9);
  const d = ledger.next();
  assert.equal(d?.version, 10);
  const msg = configMessage(d!, 4);
  assert.deepEqual(Object.keys(msg), ["type", "nonce", "version", "hash", "revision", "schemaVersion", "config"]);
  assert.equal(msg.nonce, 4);
  assert.equal(msg.schemaVersion, 1);
});
