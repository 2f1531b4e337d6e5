import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_SETTLEMENTS, SnapshotStore, type StoreEvent } from "../../../agent/snapshot-store.ts";
import { normalise } from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";

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
  assert.deepEqual(s.offerValid(cfg(1), H("a")), { changed: true, version: 1 });
  assert.deepEqual(s.offerValid(cfg(1), H("a")), { changed: false, version: 1 });
  assert.deepEqual(s.offerValid(cfg(2), H("b")), { changed: true, version: 2 });
  assert.deepEqual(s.offerValid(cfg(1), H("a")), { changed: true, version: 3 }, "going back is a new version");
  assert.deepEqual(
    events.map((e) => e.type),
    ["desired", "desired", "desired"],
  );
  assert.equal(s.fileHash(), H("a"));
});

test("invalid content keeps the last valid config, is reported once per content", () => {
  const { s, events } = store();
  s.offerValid(cfg(1), H("a"));
  assert.equal(s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }), true);
  assert.equal(s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }), false);
  assert.equal(s.desired()?.hash, H("a"));
  assert.equal(s.fileHash(), null);
  assert.deepEqual(s.lastError(), {
    code: "INVALID_CONFIG",
    message: "config.yaml:1:1: /: bad",
    at: "2026-11-26T21:00:00.000Z",
  });
  assert.equal(events.filter((e) => e.type === "invalid").length, 1);
  s.offerValid(cfg(1), H("a"));
  assert.equal(
    s.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:1:1: /: bad" }),
    true,
    "bad again after a valid read is news",
  );
});

test("hello.applied: versions continue above it, equal hash adopts its version", () => {
  const { s } = store();
  s.offerValid(cfg(1), H("a"));
  s.adoptSfuApplied({ version: 5, hash: H("a") });
  assert.equal(s.desired()?.version, 5);
  assert.equal(s.applied()?.version, 5);
  s.offerValid(cfg(2), H("b"));
  assert.equal(s.desired()?.version, 6);
  s.adoptSfuApplied({ version: 10, hash: H("z") });
  assert.equal(s.desired()?.version, 11, "renumbered above what the SFU runs");
  s.adoptSfuApplied({ version: 3, hash: H("z") });
  assert.equal(s.desired()?.version, 11, "never backwards");
  s.adoptSfuApplied(null);
  assert.equal(s.desired()?.version, 11);
});

test("apply, reject, timeout events and rejection()", () => {
  const { s, events } = store();
  s.offerValid(cfg(1), H("a"));
  s.markRejected(1, H("a"), { code: "RESTART_REQUIRED", message: "port" });
  assert.equal(s.rejection(H("a"))?.code, "RESTART_REQUIRED");
  assert.equal(s.lastError()?.code, "RESTART_REQUIRED");
  s.markAckTimeout(1, H("a"));
  assert.equal(s.lastError()?.code, "ACK_TIMEOUT");
  s.markApplied(1, H("a"));
  assert.equal(s.rejection(H("a")), null);
  assert.deepEqual(s.applied(), { version: 1, hash: H("a"), at: "2026-11-26T21:00:00.000Z" });
  assert.equal(s.lastSuccessAt(), "2026-11-26T21:00:00.000Z");
  assert.deepEqual(
    events.map((e) => e.type),
    ["desired", "rejected", "ack-timeout", "applied"],
  );
});

test("revisions attach to hashes, before or after the content arrives", () => {
  const { s, events } = store();
  s.setRevision(H("b"), "rev-b");
  s.offerValid(cfg(2), H("b"));
  assert.equal(s.desired()?.revision, "rev-b");
  assert.deepEqual(events[0], { type: "desired", version: 1, hash: H("b"), revision: "rev-b" });
  s.setRevision(H("b"), "rev-b2");
  assert.equal(s.desired()?.revision, "rev-b2");
  assert.equal(s.revisionOf(H("b")), "rev-b2");
});

test("settlements keep the last 20 and set lastError when not applied", () => {
  const { s } = store();
  for (let i = 0; i < 25; i++) {
    s.recordSettlement({ revision: `r${i}`, hash: H("a"), version: i, outcome: "applied", error: null, at: "t" });
  }
  assert.equal(s.settlements().length, MAX_SETTLEMENTS);
  assert.equal(s.settlements()[0]?.revision, "r5");
  s.recordSettlement({
    revision: "x",
    hash: H("a"),
    version: null,
    outcome: "timeout",
    error: { code: "PROPAGATION_TIMEOUT", message: "m" },
    at: "t2",
  });
  assert.deepEqual(s.lastError(), { code: "PROPAGATION_TIMEOUT", message: "m", at: "t2" });
});

test("unsubscribe stops events; sfu info is a copy", () => {
  const s = new SnapshotStore({ clock });
  let n = 0;
  const off = s.subscribe(() => n++);
  s.offerValid(cfg(1), H("a"));
  off();
  s.offerValid(cfg(2), H("b"));
  assert.equal(n, 1);
  s.setSfu({ connected: true, name: "x", version: "1" });
  const info = s.sfu();
  info.connected = false;
  assert.equal(s.sfu().connected, true);
});
