import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_SFU_VERSION, SnapshotStore, type StoreEvent } from "../../../agent/sidecar/snapshot-store.ts";
import { normalise } from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";
import { offerConfig } from "../../helpers/config-text.ts";

const cfg = (n: number) =>
  normalise({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
    limits: { maxRooms: n },
  } as unknown as SfuConfigV1);
const H = (c: string) => `sha256:${c.repeat(64)}`;
const clock = () => new Date("2026-11-26T21:00:00Z");

function store() {
  const s = new SnapshotStore({ clock });
  const events: StoreEvent[] = [];
  s.subscribe((e) => events.push(e));
  return { s, events };
}

test("the constructor checks its deps", () => {
  assert.throws(() => new SnapshotStore({} as { clock: () => Date }), /clock/);
});

test("new content gets a new version; the same hash is a no-op", () => {
  const { s, events } = store();
  assert.equal(s.desired(), null);
  assert.deepEqual(offerConfig(s, cfg(1), H("a")), { changed: true, version: 1 });
  assert.deepEqual(offerConfig(s, cfg(1), H("a")), { changed: false, version: 1 });
  assert.deepEqual(offerConfig(s, cfg(2), H("b")), { changed: true, version: 2 });
  assert.deepEqual(offerConfig(s, cfg(1), H("a")), { changed: true, version: 3 }, "going back is a new version");
  assert.deepEqual(
    events.map((e) => e.type),
    ["valid", "desired", "valid", "desired", "valid", "desired"],
  );
  assert.equal(s.fileHash(), H("a"));
});

test("invalid content keeps the last valid config, is reported once per content", () => {
  const { s, events } = store();
  offerConfig(s, cfg(1), H("a"));
  assert.equal(s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }), true);
  assert.equal(s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }), false);
  assert.equal(s.desired()?.hash, H("a"));
  assert.equal(s.fileHash(), null);
  assert.deepEqual(events.at(-1), {
    type: "invalid",
    hash: H("x"),
    error: { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad", at: "2026-11-26T21:00:00.000Z" },
  });
  assert.equal(events.filter((e) => e.type === "invalid").length, 1);
  offerConfig(s, cfg(1), H("a"));
  assert.equal(
    events.at(-1)?.type,
    "valid",
    "the same valid hash after an invalid read is news (valid), not a new version",
  );
  offerConfig(s, cfg(1), H("a"));
  assert.equal(
    s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }),
    true,
    "bad again after a valid read is news",
  );
});

test("hello.applied: versions continue above it, equal hash adopts its version", () => {
  const { s } = store();
  offerConfig(s, cfg(1), H("a"));
  s.adoptSfuApplied({ version: 5, hash: H("a") });
  assert.equal(s.desired()?.version, 5);
  assert.equal(s.applied()?.version, 5);
  offerConfig(s, cfg(2), H("b"));
  assert.equal(s.desired()?.version, 6);
  s.adoptSfuApplied({ version: 6, hash: H("z") });
  assert.equal(s.desired()?.version, 7, "renumbered above what the SFU runs");
  s.adoptSfuApplied({ version: 3, hash: H("z") });
  assert.equal(s.desired()?.version, 7, "never backwards");
  s.adoptSfuApplied(null);
  assert.equal(s.desired()?.version, 7);
  const fresh = new SnapshotStore({ clock });
  offerConfig(fresh, cfg(1), H("a"));
  fresh.adoptSfuApplied({ version: 10, hash: H("z") });
  assert.equal(fresh.desired()?.version, 11, "after an agent restart the SFU's version is taken in");
});

test("version poisoning: out-of-range hello.applied versions are refused, the counter stays safe", () => {
  const s = new SnapshotStore({ clock });
  offerConfig(s, cfg(1), H("a"));
  assert.match(s.checkSfuApplied({ version: 2 ** 53 - 1, hash: H("z") }) ?? "", /above the limit 2147483648/);
  assert.match(s.checkSfuApplied({ version: MAX_SFU_VERSION + 1, hash: H("z") }) ?? "", /above the limit/);
  assert.match(s.checkSfuApplied({ version: 1.5, hash: H("z") }) ?? "", /safe integer/);
  assert.throws(() => s.adoptSfuApplied({ version: 2 ** 53 - 1, hash: H("z") }), RangeError);
  assert.equal(s.desired()?.version, 1, "a refused version changes nothing");
  assert.equal(s.checkSfuApplied({ version: MAX_SFU_VERSION, hash: H("z") }), null, "the bound itself is taken in");
  s.adoptSfuApplied({ version: 7, hash: H("z") });
  assert.equal(s.desired()?.version, 8);
  assert.match(
    s.checkSfuApplied({ version: 9, hash: H("y") }) ?? "",
    /above the highest version this agent issued \(8\)/,
    "once the agent talked to an SFU, versions it never issued are refused",
  );
  assert.equal(s.checkSfuApplied({ version: 8, hash: H("a") }), null);
  // The worst case: the bound adopted, then many changes; still far below 2^53.
  const worst = new SnapshotStore({ clock });
  worst.adoptSfuApplied({ version: MAX_SFU_VERSION, hash: H("z") });
  for (let i = 0; i < 1000; i++) offerConfig(worst, cfg(i), `sha256:${i.toString(16).padStart(64, "0")}`);
  assert.ok(Number.isSafeInteger((worst.desired()?.version ?? 0) * 2 ** 20));
});

test("apply, reject, timeout events and rejection()", () => {
  const { s, events } = store();
  offerConfig(s, cfg(1), H("a"));
  s.markRejected(1, H("a"), { code: "RESTART_REQUIRED", message: "port" });
  assert.equal(s.rejection(H("a"))?.code, "RESTART_REQUIRED");
  s.markAckTimeout(1, H("a"));
  s.markApplied(1, H("a"));
  assert.equal(s.rejection(H("a")), null);
  assert.deepEqual(s.applied(), { version: 1, hash: H("a"), at: "2026-11-26T21:00:00.000Z" });
  assert.deepEqual(
    events.map((e) => e.type),
    ["valid", "desired", "rejected", "ack-timeout", "applied"],
  );
});

test("revisions: given with the content, or set on the desired hash later", () => {
  const { s, events } = store();
  offerConfig(s, cfg(2), H("b"), "rev-b");
  assert.equal(s.desired()?.revision, "rev-b");
  assert.deepEqual(events[1], { type: "desired", version: 1, hash: H("b"), revision: "rev-b" });
  s.setDesiredRevision(H("b"), "rev-b2");
  assert.equal(s.desired()?.revision, "rev-b2");
  s.setDesiredRevision(H("c"), "rev-c");
  assert.equal(s.desired()?.revision, "rev-b2", "another hash leaves the desired snapshot alone");
});

test("unsubscribe stops events", () => {
  const s = new SnapshotStore({ clock });
  let n = 0;
  const off = s.subscribe(() => n++);
  offerConfig(s, cfg(1), H("a"));
  off();
  offerConfig(s, cfg(2), H("b"));
  assert.equal(n, 2, "valid + desired of the first offer only");
});
