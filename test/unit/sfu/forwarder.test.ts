import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidOptionsError } from "../../../sfu/errors.ts";
import { type ForwardablePacket, TrackForwarder } from "../../../sfu/forwarder.ts";

const pkt = (seq: number, ssrc = 1): ForwardablePacket => ({ header: { ssrc, sequenceNumber: seq } });

describe("TrackForwarder", () => {
  it("fans each packet out to every sink and drops duplicates", () => {
    const f = new TrackForwarder({ requestKeyframe: () => {} });
    const got: Record<string, number[]> = { a: [], b: [] };
    f.addSink("a", (p) => got.a!.push(p.header.sequenceNumber));
    f.addSink("b", (p) => got.b!.push(p.header.sequenceNumber));
    for (const s of [1, 2, 2, 3, 1, 4]) f.push(pkt(s));
    assert.deepEqual(got, { a: [1, 2, 3, 4], b: [1, 2, 3, 4] });
    assert.equal(f.stats.received, 6);
    assert.equal(f.stats.duplicates, 2);
    assert.equal(f.stats.forwarded, 8);
  });

  it("stops sending to a removed sink and to nobody after close", () => {
    const f = new TrackForwarder({ requestKeyframe: () => {} });
    const got: number[] = [];
    f.addSink("a", (p) => got.push(p.header.sequenceNumber));
    f.push(pkt(1));
    assert.equal(f.removeSink("a"), true);
    assert.equal(f.removeSink("a"), false);
    f.push(pkt(2));
    f.addSink("a", (p) => got.push(p.header.sequenceNumber));
    f.close();
    assert.equal(f.push(pkt(3)), false);
    assert.deepEqual(got, [1]);
    assert.equal(f.sinkCount, 0);
  });

  it("rate-limits keyframe requests and coalesces a burst into one trailing request", async () => {
    let now = 0;
    let sent = 0;
    const f = new TrackForwarder({ requestKeyframe: () => sent++, keyframeIntervalMs: 30, clock: { now: () => now } });
    f.requestKeyframe();
    assert.equal(sent, 1);
    for (let i = 0; i < 10; i++) f.requestKeyframe();
    assert.equal(sent, 1);
    now = 30;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(sent, 2, "one trailing request for the burst");
    assert.equal(f.stats.keyframeRequests, 11);
    assert.equal(f.stats.keyframeRequestsSent, 2);
    now = 1000;
    f.requestKeyframe();
    assert.equal(sent, 3);
    f.close();
  });

  it("checks its options", () => {
    assert.throws(() => new TrackForwarder({} as never), InvalidOptionsError);
    assert.throws(
      () => new TrackForwarder({ requestKeyframe: () => {}, keyframeIntervalMs: -1 }),
      /keyframeIntervalMs/,
    );
  });
});
