/**
 * Cohorts (protocol/cohort.ts): ranks are stable and uniform enough, steps
 * take the right number of pods, and cohorts nest as steps widen.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { cohortRank, cohortSize, cohortThreshold, inCohort } from "../../../protocol/cohort.ts";

describe("cohort rank", () => {
  it("is the first 8 hex digits of sha256('sfu-config-cohort:' + pod) / 2^32", () => {
    const hex = createHash("sha256").update("sfu-config-cohort:sfu-0").digest("hex").slice(0, 8);
    assert.equal(cohortRank("sfu-0"), Number.parseInt(hex, 16) / 2 ** 32);
    assert.equal(cohortRank("sfu-0"), cohortRank("sfu-0"));
    assert.notEqual(cohortRank("sfu-0"), cohortRank("sfu-1"));
  });

  it("is in [0, 1) for any name", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (name) => {
        const r = cohortRank(name);
        return r >= 0 && r < 1;
      }),
    );
  });

  it("spreads 1000 pod names over the quartiles", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) counts[Math.floor(cohortRank(`sfu-${i}`) * 4)]! += 1;
    for (const c of counts) assert.ok(c > 180 && c < 320, `quartile counts ${counts}`);
  });
});

describe("cohort threshold", () => {
  it("takes ceil(percent x N / 100) pods, at least 1; 0 takes nobody and 100 everyone", () => {
    assert.equal(cohortSize(10, 10), 1);
    assert.equal(cohortSize(10, 15), 2);
    assert.equal(cohortSize(3, 10), 1);
    assert.equal(cohortSize(3, 50), 2);
    assert.equal(cohortSize(3, 100), 3);
    assert.equal(cohortSize(0, 50), 0);
    assert.equal(cohortSize(5, 0), 0);
    assert.equal(cohortThreshold([0.1, 0.2], 0), 0);
    assert.equal(cohortThreshold([0.1, 0.2], 100), 1);
    assert.equal(cohortThreshold([], 50), 1);
  });

  it("puts exactly the lowest-ranked pods below the threshold", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 60 }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        (pods, percent) => {
          const ranks = pods.map(cohortRank);
          if (new Set(ranks).size !== ranks.length) return true;
          const t = cohortThreshold(ranks, percent);
          const cohort = ranks.filter((r) => inCohort(r, t));
          const sorted = [...ranks].sort((a, b) => a - b);
          assert.equal(cohort.length, cohortSize(ranks.length, percent));
          assert.deepEqual(
            [...cohort].sort((a, b) => a - b),
            sorted.slice(0, cohort.length),
          );
          return true;
        },
      ),
    );
  });

  it("nests: a pod in a smaller step is in every larger one", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 60 }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        (pods, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const ranks = pods.map(cohortRank);
          const tLo = cohortThreshold(ranks, lo);
          const tHi = cohortThreshold(ranks, hi);
          assert.ok(tLo <= tHi);
          for (const r of ranks) if (inCohort(r, tLo)) assert.ok(inCohort(r, tHi));
          return true;
        },
      ),
    );
  });

  it("a step of 10% over 10 named pods takes one, 50% five, 100% all and pods created later", () => {
    const pods = Array.from({ length: 10 }, (_, i) => `sfu-config-7d9f-${i}`);
    const ranks = pods.map(cohortRank);
    const in10 = pods.filter((_, i) => inCohort(ranks[i]!, cohortThreshold(ranks, 10)));
    const in50 = pods.filter((_, i) => inCohort(ranks[i]!, cohortThreshold(ranks, 50)));
    assert.equal(in10.length, 1);
    assert.equal(in50.length, 5);
    assert.ok(in50.includes(in10[0]!));
    assert.ok(inCohort(cohortRank("sfu-config-7d9f-new"), cohortThreshold(ranks, 100)));
  });
});
