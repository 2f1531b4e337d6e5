/**
 * The delivery core driven through its real inputs: the store's desired config, a transport's
 * session, replies and reports (a scripted transport stands in for the wire), observed through
 * what the transport is asked to send, the store, /status (the tracker) and the metrics.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { Delivery } from "../../../agent/sidecar/delivery.ts";
import { AgentMetrics } from "../../../agent/sidecar/metrics.ts";
import { SettlementEngine } from "../../../agent/sidecar/settlements.ts";
import { SnapshotStore, type StoreEvent } from "../../../agent/sidecar/snapshot-store.ts";
import { StatusTracker } from "../../../agent/sidecar/status-tracker.ts";
import {
  configMessage,
  type DeliveryLink,
  type Outbound,
  type Reply,
  type Transport,
} from "../../../agent/sidecar/transport.ts";
import { normalise } from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";
import { capturedLogger } from "../../helpers/captured-logger.ts";
import { offerConfig } from "../../helpers/config-text.ts";

const normalisedConfig = () =>
  normalise({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
  } as unknown as SfuConfigV1);

const hash = (c: string) => `sha256:${c.repeat(64)}`;

/** A transport whose replies the test gives: every message sent waits for {@link reply}. */
class ScriptedTransport implements Transport {
  readonly kind: "websocket" | "http";
  readonly label = "the scripted transport";
  readonly secretsReload: boolean;
  readonly lateReplies: boolean;
  readonly ready = true;
  /** Whether the core may send (false: a backoff of the transport's own). */
  canSend = true;
  readonly url = "scripted://sfu";
  link!: DeliveryLink;
  readonly sent: Outbound[] = [];
  #pending: ((r: Reply) => void) | null = null;

  constructor(kind: "websocket" | "http") {
    this.kind = kind;
    this.secretsReload = kind === "websocket";
    this.lateReplies = kind === "websocket";
  }

  async start(link: DeliveryLink): Promise<void> {
    this.link = link;
  }

  async stop(): Promise<void> {
    this.#pending?.({ type: "closed" });
  }

  send(message: Outbound): Promise<Reply> {
    this.sent.push(message);
    return new Promise((resolve) => {
      this.#pending = resolve;
    });
  }

  /** Answers the last message sent; resolves once the core took the answer in. */
  async reply(r: Reply): Promise<void> {
    const p = this.#pending;
    this.#pending = null;
    assert.ok(p, "a message is waiting for its answer");
    p(r);
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** The `{version, hash}` of the configs sent, in order. */
  configs(): { version: number; hash: string }[] {
    return this.sent.flatMap((m) =>
      m.type === "config" ? [{ version: m.snapshot.version, hash: m.snapshot.hash }] : [],
    );
  }
}

/** Secret rotations as the SecretWatch reports them: {@link rotate} bumps the generation. */
class Secrets {
  generation = 1;
  readonly hasSecrets = true;
  readonly #listeners = new Set<(g: number) => void>();
  subscribe(l: (g: number) => void): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }
  rotate(): void {
    this.generation++;
    for (const l of this.#listeners) l(this.generation);
  }
}

async function setup(
  o: { kind?: "websocket" | "http"; nackRetry?: { baseMs: number; maxMs: number }; secrets?: Secrets } = {},
) {
  const clock = () => new Date("2026-01-01T00:00:00Z");
  const store = new SnapshotStore({ clock });
  const tracker = new StatusTracker({ store, clock });
  const metrics = new AgentMetrics(new Registry());
  metrics.follow(tracker);
  new SettlementEngine({ tracker, clock }, { watchDesired: true }).start();
  const events: StoreEvent[] = [];
  store.subscribe((e) => events.push(e));
  const transport = new ScriptedTransport(o.kind ?? "http");
  const { logger, logs } = capturedLogger("debug");
  const delivery = new Delivery(
    {
      logger,
      store,
      transport,
      ...(o.secrets ? { secrets: o.secrets } : {}),
      callbacks: {
        onEvent: (e) => {
          tracker.onDelivery(e);
          metrics.onDelivery(e);
        },
      },
    },
    { ackTimeoutMs: 200, nackRetry: o.nackRetry ?? { baseMs: 20, maxMs: 50 } },
  );
  await delivery.start();
  const log = (msg: string) =>
    logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l["msg"] === msg);
  return { store, tracker, metrics, events, transport, delivery, log };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("options are checked at construction", () => {
  const { logger } = capturedLogger("error");
  const deps = {
    logger,
    store: new SnapshotStore({ clock: () => new Date() }),
    transport: new ScriptedTransport("http"),
    callbacks: { onEvent: () => {} },
  };
  assert.throws(() => new Delivery(deps, { ackTimeoutMs: 0 }), /ackTimeoutMs/);
  assert.throws(() => new Delivery(deps, { nackRetry: { baseMs: 10, maxMs: 5 } }), /nackRetry/);
});

test("the newest desired config is sent, unless the SFU runs it or rejected it in this session", async () => {
  const { store, transport, delivery } = await setup({ nackRetry: { baseMs: 20, maxMs: 20 } });
  transport.link.open({ sfu: null });
  transport.link.wake();
  assert.deepEqual(transport.sent, [], "nothing desired, nothing sent");
  offerConfig(store, normalisedConfig(), hash("a"));
  assert.deepEqual(transport.configs(), [{ version: 1, hash: hash("a") }]);
  await transport.reply({ type: "nack", error: { code: "INVALID_CONFIG", message: "no" } });
  transport.link.wake();
  await sleep(60);
  assert.equal(
    transport.sent.length,
    1,
    "a rejected hash is not sent again; only APPLY_FAILED is retried in the session",
  );
  offerConfig(store, normalisedConfig(), hash("b"));
  assert.deepEqual(transport.configs().at(-1), { version: 2, hash: hash("b") }, "latest wins");
  await transport.reply({ type: "ack" });
  transport.link.wake();
  assert.equal(transport.sent.length, 2, "the applied hash is not re-pushed");
  // The SFU restarted running nothing, with a desired again: a new session forgets rejections.
  offerConfig(store, normalisedConfig(), hash("a"));
  await transport.reply({ type: "nack", error: { code: "INVALID_CONFIG", message: "no" } });
  transport.link.report(null);
  transport.link.wake();
  assert.deepEqual(transport.configs().at(-1), { version: 3, hash: hash("a") }, "re-sent in the new session");
  await delivery.stop(0);
});

test("outcomes go to the store and the metrics once; a lost answer found applied is applied", async () => {
  const { store, metrics, events, transport, delivery } = await setup();
  transport.link.open({ sfu: null, applied: null });
  events.length = 0;
  offerConfig(store, normalisedConfig(), hash("a"));
  await transport.reply({ type: "timeout" });
  transport.link.wake();
  await transport.reply({ type: "timeout" });
  transport.link.wake();
  transport.canSend = false; // the transport's backoff after a failure
  await transport.reply({ type: "failed", outcome: "unreachable" });
  transport.link.report({ version: 1, hash: hash("a") });
  assert.deepEqual(
    events.map((e) => e.type),
    ["valid", "desired", "ack-timeout", "applied"],
    "the timeout of one push is reported once, its retries are not",
  );
  assert.equal(store.applied()?.hash, hash("a"));
  const counts = await metrics.pushOutcomes.get();
  const of = (o: string) => counts.values.find((v) => v.labels["outcome"] === o)?.value;
  assert.equal(of("timeout"), 2);
  assert.equal(of("unreachable"), 1);
  assert.equal((await metrics.pushes.get()).values[0]?.value, 3);
  await delivery.stop(0);
});

test("versions continue above what the SFU reports; the config message", async () => {
  const { store, transport, delivery } = await setup();
  offerConfig(store, normalisedConfig(), hash("a"));
  assert.equal(transport.link.open({ sfu: null, applied: { version: 9, hash: hash("b") } }), null);
  transport.link.wake();
  const sent = transport.sent[0];
  assert.equal(sent?.type === "config" && sent.snapshot.version, 10);
  assert.equal(sent?.nonce, 1, "nonces start at 1 per session");
  const msg = configMessage(store.desired()!, 4);
  assert.deepEqual(Object.keys(msg), ["type", "nonce", "version", "hash", "revision", "schemaVersion", "config"]);
  assert.equal(msg.nonce, 4);
  assert.equal(msg.schemaVersion, 1);
  await delivery.stop(0);
});

test("APPLY_FAILED is re-sent after a capped, doubling backoff; other codes are not", async () => {
  const { store, transport, delivery, log } = await setup();
  transport.link.open({ sfu: null });
  offerConfig(store, normalisedConfig(), hash("a"));
  const retries = () => log("SFU could not apply config; re-sending it after a backoff").map((l) => l["retryInMs"]);
  for (let i = 0; i < 4; i++) {
    assert.equal(transport.sent.length, i + 1, `attempt ${i} is sent`);
    await transport.reply({ type: "nack", error: { code: "APPLY_FAILED", message: "credential file unreadable" } });
    assert.equal(transport.sent.length, i + 1, "not re-sent at once");
    await sleep((retries().at(-1) as number) + 15);
    assert.equal(transport.sent.length, i + 2, "the retry came due");
  }
  assert.deepEqual(retries(), [20, 40, 50, 50], "1x, 2x, then capped");
  await transport.reply({ type: "ack" });
  offerConfig(store, normalisedConfig(), hash("b"));
  await transport.reply({ type: "nack", error: { code: "APPLY_FAILED", message: "x" } });
  assert.equal(retries().at(-1), 20, "the backoff restarts per hash");
  const sent = transport.sent.length;
  await delivery.stop(0);
  await sleep(40);
  assert.equal(transport.sent.length, sent, "stop cancels pending retries");
});

test("a rejected hash that becomes desired again is sent again (v1 -> H4 nack -> H2 ack -> H4)", async () => {
  const { store, tracker, transport, delivery } = await setup();
  transport.link.open({ sfu: null });
  const cfg = normalisedConfig();
  offerConfig(store, cfg, hash("1"));
  await transport.reply({ type: "ack" });
  offerConfig(store, cfg, hash("4"));
  await transport.reply({ type: "nack", error: { code: "RESTART_REQUIRED", message: "port" } });
  offerConfig(store, cfg, hash("2"));
  assert.equal(transport.configs().at(-1)?.hash, hash("2"));
  await transport.reply({ type: "ack" });
  offerConfig(store, cfg, hash("4"));
  assert.deepEqual(transport.configs().at(-1), { version: 4, hash: hash("4") }, "H4 is pushed again");
  await transport.reply({ type: "ack" });
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
  await delivery.stop(0);
});

test("a session reporting an out-of-range version is refused and reported", async () => {
  const { store, tracker, metrics, transport, delivery } = await setup({ kind: "websocket" });
  offerConfig(store, normalisedConfig(), hash("a"));
  const refused = transport.link.open({
    sfu: { name: "s", version: "1" },
    applied: { version: 2 ** 53 - 1, hash: hash("z") },
  });
  assert.equal(refused?.reason, "version-refused");
  assert.match(refused?.message ?? "", /above the limit/);
  transport.link.wake();
  assert.deepEqual(transport.sent, [], "nothing is sent on a refused session");
  assert.equal(store.desired()?.version, 1);
  assert.equal(tracker.lastError()?.code, "VERSION_REFUSED");
  assert.equal(tracker.connected(), false);
  assert.equal((await metrics.versionsRefused.get()).values[0]?.value, 1);
  assert.equal(
    transport.link.open({ sfu: { name: "s", version: "1" }, applied: { version: 3, hash: hash("a") } }),
    null,
  );
  assert.equal(tracker.connected(), true);
  await delivery.stop(0);
});

test("a push not answered in time: over a connection it is given up (a late answer still counts); over HTTP retried", async () => {
  const ws = await setup({ kind: "websocket" });
  ws.transport.link.open({ sfu: { name: "s", version: "1" }, applied: null });
  offerConfig(ws.store, normalisedConfig(), hash("a"));
  await sleep(260);
  assert.equal(ws.tracker.lastError()?.code, "ACK_TIMEOUT");
  assert.match(ws.tracker.lastError()?.message ?? "", /the SFU did not answer version 1 in time/);
  ws.transport.link.wake();
  assert.equal(ws.transport.sent.length, 1, "not re-sent on this connection");
  await ws.transport.reply({ type: "ack" });
  assert.equal(ws.store.applied()?.hash, hash("a"), "the late ack applies it");
  await ws.delivery.stop(0);

  const http = await setup({ kind: "http" });
  http.transport.link.open({ sfu: null, applied: null });
  offerConfig(http.store, normalisedConfig(), hash("a"));
  await sleep(260);
  assert.equal(http.tracker.settlements().at(-1)?.outcome, "timeout");
  http.transport.link.wake();
  assert.deepEqual(http.transport.configs(), [
    { version: 1, hash: hash("a") },
    { version: 1, hash: hash("a") },
  ]);
  await http.delivery.stop(0);
});

test("secret rotations: a reload for an SFU with the feature, unsupported for one without or over HTTP", async () => {
  const secrets = new Secrets();
  const ws = await setup({ kind: "websocket", secrets });
  offerConfig(ws.store, normalisedConfig(), hash("a"));
  ws.transport.link.open({ sfu: { name: "s", version: "1" }, applied: null, features: ["secrets-reload"] });
  ws.transport.link.wake();
  await ws.transport.reply({ type: "ack" });
  assert.deepEqual(ws.tracker.secrets(), {
    generation: 1,
    applied: 1,
    at: "2026-01-01T00:00:00.000Z",
    lastError: null,
  });
  assert.equal(ws.transport.sent.length, 1, "applying the config confirmed generation 1: no reload");
  secrets.rotate();
  assert.deepEqual(ws.transport.sent.at(-1), {
    type: "secrets-reload",
    nonce: 2,
    applied: { version: 1, hash: hash("a") },
    generation: 2,
  });
  assert.equal(ws.tracker.secrets().generation, 2, "/status shows the new generation");
  await ws.transport.reply({ type: "nack", error: { code: "SECRET_UNREADABLE", message: "no" } });
  assert.equal(ws.tracker.secrets().lastError?.code, "SECRET_UNREADABLE");
  ws.transport.link.wake();
  assert.equal(ws.transport.sent.length, 2, "a nacked generation is not re-sent on the connection");
  secrets.rotate();
  assert.equal(ws.transport.sent.length, 3, "the next change is");
  await ws.transport.reply({ type: "ack" });
  assert.equal(ws.tracker.secrets().applied, 3);
  assert.equal(ws.tracker.secrets().lastError, null);
  // A new connection without the feature: what it reads is unknown; a change is unsupported.
  ws.transport.link.close();
  ws.transport.link.open({ sfu: { name: "s", version: "1" }, applied: { version: 1, hash: hash("a") } });
  assert.equal(ws.tracker.secrets().applied, null);
  secrets.rotate();
  assert.equal(ws.transport.sent.length, 3);
  assert.equal(ws.tracker.secrets().lastError?.code, "SECRETS_RELOAD_UNSUPPORTED");
  assert.match(
    ws.tracker.secrets().lastError?.message ?? "",
    /does not support secrets-reload; it keeps what it read for version 1/,
  );
  await ws.delivery.stop(0);

  const httpSecrets = new Secrets();
  const http = await setup({ kind: "http", secrets: httpSecrets });
  httpSecrets.rotate();
  assert.match(http.tracker.secrets().lastError?.message ?? "", /the scripted transport has no secrets-reload/);
  const rotations = await http.metrics.secretRotations.get();
  assert.equal(rotations.values.find((v) => v.labels["outcome"] === "unsupported")?.value, 1);
  await http.delivery.stop(0);
});
