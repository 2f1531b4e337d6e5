/** guardPings' token bucket (fake clock) and the 426 refusal text. */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { guardPings, POLICY_VIOLATION_CLOSE, webSocketVersionRefusal } from "../../../protocol/websocket-guard.ts";

class FakeSocket extends EventEmitter {
  pongs = 0;
  closes: [number, string][] = [];
  pong(): void {
    this.pongs++;
  }
  close(code: number, reason: string): void {
    this.closes.push([code, reason]);
  }
  terminate(): void {}
}

test("pongs the burst at once, refills at the rate, closes 1008 once when over", () => {
  let now = 0;
  const ws = new FakeSocket();
  const floods: string[] = [];
  guardPings(
    ws,
    (r) => floods.push(r),
    { burst: 3, perSecond: 2 },
    () => now,
  );
  for (let i = 0; i < 3; i++) ws.emit("ping", Buffer.alloc(0));
  assert.equal(ws.pongs, 3);
  now += 1000; // two more tokens
  ws.emit("ping", Buffer.alloc(0));
  ws.emit("ping", Buffer.alloc(0));
  assert.equal(ws.pongs, 5);
  assert.deepEqual(ws.closes, []);
  ws.emit("ping", Buffer.alloc(0));
  ws.emit("ping", Buffer.alloc(0));
  assert.equal(ws.pongs, 5);
  assert.equal(ws.closes.length, 1);
  assert.equal(ws.closes[0]?.[0], POLICY_VIOLATION_CLOSE);
  assert.match(ws.closes[0]?.[1] ?? "", /^ping flood/);
  assert.ok(Buffer.byteLength(ws.closes[0]?.[1] ?? "") <= 123, "a close reason fits a control frame");
  assert.equal(floods.length, 1);
  assert.throws(() => guardPings(new FakeSocket(), () => {}, { burst: 0, perSecond: 1 }), RangeError);
});

test("webSocketVersionRefusal: null for 13, a 426 naming version 13 otherwise", () => {
  assert.equal(webSocketVersionRefusal("13"), null);
  for (const v of ["8", undefined, "13, 8", ["13", "13"]]) {
    const r = webSocketVersionRefusal(v) ?? "";
    assert.match(r, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.match(r, /\r\nSec-WebSocket-Version: 13\r\n/);
  }
});
