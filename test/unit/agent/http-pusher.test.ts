import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { checkPushUrl, parseAppliedDocument, parseErrorDocument } from "../../../agent/sidecar/http-push-wire.ts";
import { HttpPusher } from "../../../agent/sidecar/http-pusher.ts";
import { reconnectDelay as retryDelay } from "../../../protocol/backoff.ts";

const H = `sha256:${"a".repeat(64)}`;
const buf = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));

test("retryDelay: min(max, base * 2^n) times [0.5, 1]; capped; never zero", () => {
  const o = { baseMs: 500, maxMs: 30_000 };
  assert.equal(
    retryDelay(0, o, () => 0),
    250,
  );
  assert.equal(
    retryDelay(0, o, () => 0.999999),
    500,
  );
  assert.equal(
    retryDelay(1, o, () => 0),
    500,
  );
  assert.equal(
    retryDelay(3, o, () => 0.999999),
    4_000,
  );
  assert.equal(
    retryDelay(6, o, () => 0.999999),
    30_000,
  );
  assert.equal(
    retryDelay(1_000, o, () => 0),
    15_000,
  );
  for (let n = 0; n < 60; n++) {
    const d = retryDelay(n, o);
    const ceiling = Math.min(30_000, 500 * 2 ** n);
    assert.ok(d >= ceiling / 2 && d <= ceiling, `${n}: ${d}`);
  }
});

test("checkPushUrl: http(s) with a host, no userinfo, no fragment", () => {
  assert.ok(checkPushUrl("http://127.0.0.1:8080/sfu-config") instanceof URL);
  assert.ok(checkPushUrl("https://sfu.local/x?y=1") instanceof URL);
  assert.match(checkPushUrl("ws://127.0.0.1/x") as string, /http/);
  assert.match(checkPushUrl("nope") as string, /not a URL/);
  assert.match(checkPushUrl("http://a:b@127.0.0.1/") as string, /user:password/);
  assert.match(checkPushUrl("http://127.0.0.1/#x") as string, /fragment/);
});

test("parseAppliedDocument: {applied: {version, hash} | null}, anything else undefined", () => {
  assert.deepEqual(parseAppliedDocument(buf({ applied: { version: 3, hash: H } })), { version: 3, hash: H });
  assert.equal(parseAppliedDocument(buf({ applied: null })), null);
  for (const bad of [
    {},
    { applied: { version: -1, hash: H } },
    { applied: { version: 1.5, hash: H } },
    { applied: { version: 1, hash: "sha256:xyz" } },
    { applied: [1] },
    [],
  ]) {
    assert.equal(parseAppliedDocument(buf(bad)), undefined, JSON.stringify(bad));
  }
  assert.equal(parseAppliedDocument(buf("<html>")), undefined);
});

test("parseErrorDocument: {code, message, path?} or a nack-shaped {error}", () => {
  assert.deepEqual(parseErrorDocument(buf({ code: "RESTART_REQUIRED", message: "m", path: "/server/port" })), {
    code: "RESTART_REQUIRED",
    message: "m",
    path: "/server/port",
  });
  assert.deepEqual(parseErrorDocument(buf({ type: "nack", error: { code: "APPLY_FAILED", message: "x" } })), {
    code: "APPLY_FAILED",
    message: "x",
  });
  assert.equal(parseErrorDocument(buf({ message: "no code" })), null);
  assert.equal(parseErrorDocument(buf({ code: "", message: "m" })), null);
  assert.equal(parseErrorDocument(buf({ code: "X".repeat(65), message: "m" })), null);
  assert.equal(parseErrorDocument(buf("not json")), null);
  assert.equal(parseErrorDocument(buf({ code: "C", message: "m".repeat(9000) }))?.message.length, 8192);
  // Read with the bounded reader: a key flood, deep nesting or bad UTF-8 around a valid document is refused.
  const flood = `{"code":"C","message":"m",${Array.from({ length: 500 }, (_, i) => `"k${i}":0`).join(",")}}`;
  assert.equal(parseErrorDocument(Buffer.from(flood)), null);
  assert.equal(
    parseErrorDocument(Buffer.from(`{"code":"C","message":"m","x":${"[".repeat(30)}${"]".repeat(30)}}`)),
    null,
  );
  assert.equal(parseErrorDocument(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x30, 0x7d])), null);
  assert.equal(parseAppliedDocument(Buffer.from(`{"applied":null,${flood.slice(1)}`)), undefined);
});

test("HttpPusher options are checked at construction", () => {
  const deps = {
    logger: pino({ level: "silent" }),
    clock: () => new Date(),
  };
  assert.throws(() => new HttpPusher(deps, { url: "ftp://x/" }), /options\.url must be an http/);
  assert.throws(() => new HttpPusher(deps, { url: "http://127.0.0.1/", ackTimeoutMs: 0 }), /ackTimeoutMs/);
  assert.throws(
    () => new HttpPusher(deps, { url: "http://127.0.0.1/", retryBaseMs: 1000, retryMaxMs: 10 }),
    /retryMaxMs/,
  );
  assert.throws(() => new HttpPusher(deps, { url: "http://127.0.0.1/", token: "" }), /token/);
  assert.throws(() => new HttpPusher(deps, { url: "http://127.0.0.1/", token: "a\nb" }), /token/);
  const p = new HttpPusher(deps, { url: "http://127.0.0.1:1/path?secret=1", token: "t" });
  assert.equal(p.url, "http://127.0.0.1:1/path");
  assert.deepEqual(p.status(), {
    connected: false,
    name: null,
    version: null,
    mode: "http",
    url: "http://127.0.0.1:1/path",
    appliedState: "pending",
    lastPush: null,
    retry: null,
  });
});
