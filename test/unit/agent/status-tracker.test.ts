import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { AgentMetrics } from "../../../agent/sidecar/metrics.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import { SnapshotStore } from "../../../agent/sidecar/snapshot-store.ts";
import { buildStatus } from "../../../agent/sidecar/status.ts";
import { MAX_SETTLEMENTS, StatusTracker, type TrackerEvent } from "../../../agent/sidecar/status-tracker.ts";
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

function setup(watchDesired = true) {
  let now = Date.parse("2026-11-26T21:00:00Z");
  const clock = () => new Date(now);
  const store = new SnapshotStore({ clock });
  const tracker = new StatusTracker({ store, clock });
  const registry = new Registry();
  const metrics = new AgentMetrics(registry);
  metrics.follow(tracker);
  const events: TrackerEvent[] = [];
  tracker.subscribe((e) => events.push(e));
  // Settlements come from the engine, as in the agent (which wires it once).
  new SettlementEngine({ tracker, clock }, { watchDesired }).start();
  const gauge = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
  return { store, tracker, metrics, events, gauge, tick: (ms: number) => (now += ms) };
}

const outcomes = (t: StatusTracker) => t.settlements().map((s) => `${s.hash.slice(7, 8)}@${s.version}:${s.outcome}`);

test("after an agent restart, hello.applied equal to the desired hash settles applied with the SFU's version", () => {
  const { store, tracker } = setup();
  offerConfig(store, cfg(1), H("a"));
  store.adoptSfuApplied({ version: 7, hash: H("a") });
  assert.deepEqual(outcomes(tracker), ["a@7:applied"]);
  assert.equal(store.desired()?.version, 7);
  offerConfig(store, cfg(2), H("b"));
  assert.deepEqual(outcomes(tracker), ["a@7:applied"], "the adopted config is not settled again as superseded");
  assert.equal(store.desired()?.version, 8);
});

test("a RESTART_REQUIRED config taken at the SFU's next boot settles applied and clears lastError", () => {
  const { store, tracker } = setup();
  offerConfig(store, cfg(1), H("a"));
  store.markApplied(1, H("a"));
  offerConfig(store, cfg(2), H("b"));
  store.markRejected(2, H("b"), { code: "RESTART_REQUIRED", message: "server.port changed; the old version stays" });
  assert.equal(tracker.lastError()?.code, "RESTART_REQUIRED");
  assert.deepEqual(outcomes(tracker), ["a@1:applied", "b@2:rejected"]);
  // The SFU restarts with the new port and reports it in its hello.
  store.adoptSfuApplied({ version: 2, hash: H("b") });
  assert.deepEqual(outcomes(tracker), ["a@1:applied", "b@2:rejected", "b@2:applied"]);
  assert.equal(tracker.lastError(), null);
  assert.equal(tracker.previousError()?.code, "RESTART_REQUIRED");
  assert.ok(tracker.previousError()?.clearedAt);
  store.adoptSfuApplied({ version: 2, hash: H("b") });
  assert.equal(tracker.settlements().length, 3, "a reconnect reporting the same config settles nothing new");
});

test("lastError moves to previousError once a valid config is applied after an invalid edit", () => {
  const { store, tracker, tick } = setup();
  offerConfig(store, cfg(1), H("a"));
  store.markApplied(1, H("a"));
  tick(1000);
  store.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "config.yaml:3:1: bad" });
  const invalidAt = tracker.lastError()?.at;
  assert.equal(tracker.lastError()?.code, "INVALID_CONFIG");
  store.adoptSfuApplied({ version: 1, hash: H("a") });
  assert.equal(tracker.lastError()?.code, "INVALID_CONFIG", "not cleared while the file is still invalid");
  tick(1000);
  offerConfig(store, cfg(2), H("b"));
  assert.equal(tracker.lastError()?.code, "INVALID_CONFIG", "not cleared before the fix is applied");
  store.markApplied(2, H("b"));
  assert.equal(tracker.lastError(), null);
  assert.deepEqual(tracker.previousError(), {
    code: "INVALID_CONFIG",
    message: "config.yaml:3:1: bad",
    at: invalidAt,
    clearedAt: "2026-11-26T21:00:02.000Z",
  });
});

test("an invalid edit reverted to the applied content clears lastError (nothing to push)", () => {
  const { store, tracker } = setup();
  offerConfig(store, cfg(1), H("a"));
  store.markApplied(1, H("a"));
  store.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "bad" });
  offerConfig(store, cfg(1), H("a"));
  assert.equal(tracker.lastError(), null);
  assert.equal(tracker.previousError()?.code, "INVALID_CONFIG");
});

test("watch settlements: superseded, timeout then late ack, invalid; the last 20 are kept", () => {
  const { store, tracker } = setup();
  offerConfig(store, cfg(1), H("a"));
  offerConfig(store, cfg(2), H("b"));
  store.markAckTimeout(2, H("b"));
  store.markApplied(2, H("b"));
  store.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "bad" });
  assert.deepEqual(outcomes(tracker), ["a@1:superseded", "b@2:timeout", "b@2:applied", "x@null:invalid"]);
  for (let i = 0; i < 30; i++) offerConfig(store, cfg(100 + i), `sha256:${i.toString(16).padStart(64, "0")}`);
  assert.equal(tracker.settlements().length, MAX_SETTLEMENTS);
});

test("queue mode: no watch settlements, but a rejected event's hash applied later settles applied", () => {
  const { store, tracker } = setup(false);
  offerConfig(store, cfg(1), H("a"));
  store.markApplied(1, H("a"));
  assert.deepEqual(tracker.settlements(), []);
  offerConfig(store, cfg(2), H("b"));
  tracker.setRevision(H("b"), "rev-b");
  assert.equal(store.desired()?.revision, "rev-b");
  tracker.recordSettlement({
    revision: "rev-b",
    hash: H("b"),
    version: 2,
    outcome: "rejected",
    error: { code: "RESTART_REQUIRED", message: "port" },
    at: "t",
  });
  assert.equal(tracker.lastError()?.code, "RESTART_REQUIRED");
  store.adoptSfuApplied({ version: 2, hash: H("b") });
  assert.deepEqual(
    tracker.settlements().map((s) => [s.revision, s.outcome]),
    [
      ["rev-b", "rejected"],
      ["rev-b", "applied"],
    ],
  );
  assert.equal(tracker.lastError(), null);
});

test("metrics and /status follow the tracker: load success, converged, link", async () => {
  const { store, tracker, gauge } = setup();
  assert.equal(await gauge("sfu_agent_config_last_load_success"), 0);
  offerConfig(store, cfg(1), H("a"));
  assert.equal(await gauge("sfu_agent_config_last_load_success"), 1);
  assert.equal(
    await gauge("sfu_agent_config_last_load_success_timestamp_seconds"),
    Date.parse("2026-11-26T21:00:00Z") / 1000,
  );
  assert.equal(await gauge("sfu_agent_config_converged"), 0);
  tracker.onDelivery({ type: "link-up", sfu: { name: "sfu-1", version: "1.0" } });
  assert.equal(await gauge("sfu_agent_sfu_connected"), 1);
  store.adoptSfuApplied({ version: 1, hash: H("a") });
  assert.equal(await gauge("sfu_agent_config_converged"), 1);
  assert.equal(await gauge("sfu_agent_applied_version"), 1);
  store.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "bad" });
  store.recordInvalid(H("x"), { code: "INVALID_CONFIG", message: "bad" });
  assert.equal(await gauge("sfu_agent_config_last_load_success"), 0, "0 while the file is invalid");
  assert.equal(await gauge("sfu_agent_config_converged"), 1, "the SFU still runs the last valid config");
  tracker.onDelivery({ type: "link-down" });
  assert.equal(await gauge("sfu_agent_sfu_connected"), 0);
  const status = buildStatus({ tracker, pod: "p", path: "/etc/sfu/config.yaml", queue: null });
  assert.deepEqual(status.sfu, { connected: false, name: "sfu-1", version: "1.0" });
  assert.equal(status.lastError?.code, "INVALID_CONFIG");
  assert.equal(status.previousError, null);
  assert.equal(status.converged, true);
  assert.deepEqual(status.source, {
    path: "/etc/sfu/config.yaml",
    valid: false,
    lastLoadSuccessAt: "2026-11-26T21:00:00.000Z",
  });
  for (const k of ["pod", "desired", "applied", "lastError", "sfu", "queue", "settlements"]) {
    assert.ok(k in status, `contract field ${k}`);
  }
});

test("one source of status: status.ts and metrics.ts read the tracker; no transport sets status metrics", async () => {
  const { readFile, readdir } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const dir = join(import.meta.dirname, "..", "..", "..", "agent", "sidecar");
  const status = await readFile(join(dir, "status.ts"), "utf8");
  assert.doesNotMatch(status, /from "\.\/(http-pusher|push-server|delivery)\.ts"/, "status.ts reads the tracker only");
  for (const f of (await readdir(dir)).filter((n) => n.endsWith(".ts"))) {
    const text = await readFile(join(dir, f), "utf8");
    assert.doesNotMatch(text, /metrics\??\.refresh\(/, `${f}: no scattered metrics.refresh()`);
    assert.doesNotMatch(
      text,
      /metrics\??\.(sfuConnected|desiredVersion|appliedVersion|lastLoadSuccess|converged)\.set\(/,
      `${f}: status gauges are set by AgentMetrics.follow only`,
    );
  }
});
