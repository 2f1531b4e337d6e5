/**
 * The article-style reload message (agent/sidecar/queue/legacy-event.ts) is read by
 * the same bounded reader as every SQS body: a flood of keys or nesting is
 * refused even when the message would otherwise be a valid configReload.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseLegacyReload } from "../../../agent/sidecar/queue/legacy-event.ts";

const envelope = (message: string) => JSON.stringify({ Type: "Notification", MessageId: "m-1", Message: message });

describe("parseLegacyReload", () => {
  it("reads a raw and an enveloped configReload", () => {
    const raw = JSON.stringify({ event: "configReload", commit: "1a2b3c4" });
    assert.deepEqual(parseLegacyReload(raw), { commit: "1a2b3c4", envelope: false });
    assert.deepEqual(parseLegacyReload(envelope(raw)), { commit: "1a2b3c4", envelope: true });
  });

  it("refuses a configReload carrying a key flood or deep nesting, raw or enveloped", () => {
    const flood = `{"event":"configReload","commit":"1a2b3c4",${Array.from({ length: 3_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const deep = `{"event":"configReload","commit":"1a2b3c4","x":${"[".repeat(20)}${"]".repeat(20)}}`;
    assert.ok(flood.length < 64 * 1024);
    for (const body of [flood, deep, envelope(flood), envelope(deep)]) assert.equal(parseLegacyReload(body), null);
  });

  it("refuses an oversize body and a non-JSON one without throwing", () => {
    assert.equal(parseLegacyReload(`{"event":"configReload","commit":"a","p":"${"x".repeat(300 * 1024)}"}`), null);
    assert.equal(parseLegacyReload('{"event":"configReload"'), null);
  });
});
