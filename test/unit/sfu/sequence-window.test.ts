import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { SequenceWindow, WINDOW } from "../../../sfu/sequence-window.ts";

describe("SequenceWindow", () => {
  it("passes new sequence numbers and flags repeats", () => {
    const w = new SequenceWindow();
    assert.equal(w.check(1, 10), "new");
    assert.equal(w.check(1, 11), "new");
    assert.equal(w.check(1, 10), "duplicate");
    assert.equal(w.check(1, 11), "duplicate");
    assert.equal(w.check(2, 10), "new", "per SSRC");
  });

  it("accepts a late packet that fills a gap once", () => {
    const w = new SequenceWindow();
    w.check(1, 100);
    w.check(1, 102);
    assert.equal(w.check(1, 101), "new");
    assert.equal(w.check(1, 101), "duplicate");
  });

  it("handles 16-bit wrap-around", () => {
    const w = new SequenceWindow();
    assert.equal(w.check(7, 65_534), "new");
    assert.equal(w.check(7, 65_535), "new");
    assert.equal(w.check(7, 0), "new");
    assert.equal(w.check(7, 1), "new");
    assert.equal(w.check(7, 65_535), "duplicate");
    assert.equal(w.check(7, 0), "duplicate");
  });

  it("calls packets older than the window too old, and a large backwards jump a restart", () => {
    const w = new SequenceWindow();
    w.check(1, 5000);
    assert.equal(w.check(1, 5000 - WINDOW - 10), "too-old");
    assert.equal(w.check(1, 5000 - 20_000), "new");
    assert.equal(w.check(1, 5000 - 20_000 + 1), "new");
  });

  it("property: in any in-window permutation with repeats, each seq passes exactly once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65_535 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 300 }),
        (start, offsets) => {
          const w = new SequenceWindow();
          w.check(9, start);
          const passed = new Map<number, number>();
          for (const o of offsets) {
            const seq = (start + 1 + o) & 0xffff;
            if (w.check(9, seq) === "new") passed.set(seq, (passed.get(seq) ?? 0) + 1);
          }
          for (const count of passed.values()) assert.equal(count, 1);
          assert.equal(passed.size, new Set(offsets).size);
        },
      ),
    );
  });
});
