/**
 * The one WebSocket upgrade gate (protocol/websocket-guard.ts) that the push
 * server and the conformance kit call: its refusal order (PROTOCOL.md
 * section 2), the constant-time token check, and the response abortHandshake
 * writes.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import {
  abortHandshake,
  tokenMatches,
  type UpgradeGate,
  type UpgradeRequest,
  upgradeRefusal,
} from "../../../protocol/websocket-guard.ts";

const GOOD: UpgradeRequest = {
  method: "GET",
  headers: {
    "sec-websocket-version": "13",
    "sec-websocket-protocol": "other, sfu-config.v1",
    authorization: "Bearer s3cret",
  },
};
const GATE: UpgradeGate = { subprotocol: "sfu-config.v1", token: "s3cret", available: true };

test("tokenMatches: exact bearer token only", () => {
  assert.equal(tokenMatches("Bearer abc", "abc"), true);
  assert.equal(tokenMatches("Bearer abd", "abc"), false);
  assert.equal(tokenMatches("Bearer ab", "abc"), false);
  assert.equal(tokenMatches("Bearer abcd", "abc"), false);
  assert.equal(tokenMatches("abc", "abc"), false);
  assert.equal(tokenMatches("Basic abc", "abc"), false);
  assert.equal(tokenMatches(undefined, "abc"), false);
});

test("a request that passes every rule is not refused; no token set accepts any", () => {
  assert.equal(upgradeRefusal(GOOD, GATE), null);
  assert.equal(
    upgradeRefusal({ ...GOOD, headers: { ...GOOD.headers, authorization: undefined } }, { ...GATE, token: null }),
    null,
  );
});

test("refusal order: method 405, version 426, subprotocol 426, Origin 403, token 401, unavailable 503", () => {
  // A request failing every rule; fixing one rule at a time shows the next refusal in order.
  const fixes: [number, string, (r: UpgradeRequest) => void][] = [
    [
      405,
      "method",
      (r) => {
        r.method = "GET";
      },
    ],
    [
      426,
      "version",
      (r) => {
        r.headers["sec-websocket-version"] = "13";
      },
    ],
    [
      426,
      "subprotocol",
      (r) => {
        r.headers["sec-websocket-protocol"] = "sfu-config.v1";
      },
    ],
    [
      403,
      "origin",
      (r) => {
        r.headers.origin = undefined;
      },
    ],
    [
      401,
      "token",
      (r) => {
        r.headers.authorization = "Bearer s3cret";
      },
    ],
  ];
  const req: UpgradeRequest = {
    method: "POST",
    headers: {
      "sec-websocket-version": "8",
      "sec-websocket-protocol": "other",
      origin: "http://evil.example",
      authorization: "Bearer nope",
    },
  };
  const gate = { ...GATE, available: false };
  for (const [status, reason, fix] of fixes) {
    const r = upgradeRefusal(req, gate);
    assert.deepEqual([r?.status, r?.reason], [status, reason]);
    fix(req);
  }
  assert.deepEqual(upgradeRefusal(req, gate)?.status, 503);
  assert.equal(upgradeRefusal(req, GATE), null);
});

test("refusal bodies: the one-word reason; the version refusal names 13 in a header; never the token", () => {
  const body = (req: UpgradeRequest, gate = GATE) => upgradeRefusal(req, gate)?.body;
  assert.equal(body({ ...GOOD, headers: { ...GOOD.headers, origin: "http://x" } }), "origin");
  assert.equal(body({ ...GOOD, headers: { ...GOOD.headers, "sec-websocket-protocol": undefined } }), "subprotocol");
  assert.equal(body({ ...GOOD, headers: { ...GOOD.headers, authorization: "Bearer x" } }), "token");
  assert.equal(body(GOOD, { ...GATE, available: false }), "shutting down");
  const version = upgradeRefusal({ ...GOOD, headers: { ...GOOD.headers, "sec-websocket-version": "8" } }, GATE);
  assert.deepEqual(version?.headers, { "Sec-WebSocket-Version": "13" });
  for (const r of [
    version,
    upgradeRefusal({ ...GOOD, headers: { ...GOOD.headers, authorization: "Bearer x" } }, GATE),
  ]) {
    assert.ok(!JSON.stringify(r).includes("s3cret"));
  }
});

test("abortHandshake writes one HTTP response with Connection: close and the body, and ends the socket", async () => {
  const socket = new PassThrough();
  const refusal = upgradeRefusal({ ...GOOD, headers: { ...GOOD.headers, authorization: undefined } }, GATE);
  assert.ok(refusal);
  abortHandshake(socket, refusal);
  const chunks: Buffer[] = [];
  for await (const c of socket) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  assert.match(text, /^HTTP\/1\.1 401 Unauthorized\r\n/);
  assert.match(text, /\r\nConnection: close\r\n/);
  assert.match(text, /\r\nContent-Length: 5\r\n\r\ntoken$/);
});
