/**
 * The agent's rollout decision (agent/sidecar/rollout/decision.ts): every row of the
 * table, and properties over every combination of inputs: a halted hash is
 * never pushed, no policy means today's behaviour, nothing is pushed that the
 * state does not vouch for.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type DecisionInput, decideRollout } from "../../../agent/sidecar/rollout/decision.ts";
import type { NormalisedConfigV1 } from "../../../protocol/config-schema.ts";
import type { RolloutCandidateState, RolloutState } from "../../../protocol/rollout-schema.ts";

const H = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const M = H(1);
const S = H(2);
const OTHER = H(3);
const config = {} as NormalisedConfigV1;

function state(
  candidate: { hash: string; state: RolloutCandidateState; threshold: number } | null,
  stable: string | null = S,
): RolloutState {
  return {
    type: "sfu-config.rollout-state",
    updatedAt: "2026-12-02T05:00:00.000Z",
    stable: stable === null ? null : { hash: stable, revision: "r1", config },
    candidate: candidate === null ? null : { id: "id-1", revision: "r2", step: 1, reason: null, ...candidate },
  };
}

function decide(partial: Partial<DecisionInput>) {
  const d = decideRollout({ policy: true, state: null, rank: 0.5, mounted: M, appliedMounted: false, ...partial });
  return [d.push, d.stage];
}

describe("rollout decision table", () => {
  it("no policy: pushes the mounted config whatever the state says (today's behaviour)", () => {
    assert.deepEqual(decide({ policy: false }), ["mounted", null]);
    assert.deepEqual(decide({ policy: false, state: state({ hash: M, state: "halted", threshold: 0 }) }), [
      "mounted",
      null,
    ]);
    assert.deepEqual(decide({ policy: false, state: "unknown" }), ["mounted", null]);
  });

  it("no state object: bootstrap, the mounted config applies", () => {
    assert.deepEqual(decide({ state: null }), ["mounted", "applied"]);
  });

  it("state not readable yet: pushes nothing and holds", () => {
    assert.deepEqual(decide({ state: "unknown" }), ["none", "held"]);
  });

  it("running candidate: the cohort (rank < threshold) runs it as canary, the others hold the stable config", () => {
    const s = state({ hash: M, state: "running", threshold: 0.3 });
    assert.deepEqual(decide({ state: s, rank: 0.1 }), ["mounted", "canary"]);
    assert.deepEqual(decide({ state: s, rank: 0.2999 }), ["mounted", "canary"]);
    assert.deepEqual(decide({ state: s, rank: 0.3 }), ["stable", "held"]);
    assert.deepEqual(decide({ state: s, rank: 0.9 }), ["stable", "held"]);
    assert.deepEqual(decide({ state: state({ hash: M, state: "running", threshold: 0 }), rank: 0 }), [
      "stable",
      "held",
    ]);
    assert.deepEqual(decide({ state: state({ hash: M, state: "running", threshold: 1 }), rank: 0.9999 }), [
      "mounted",
      "canary",
    ]);
  });

  it("complete candidate: applied everywhere", () => {
    assert.deepEqual(decide({ state: state({ hash: M, state: "complete", threshold: 1 }), rank: 0.9 }), [
      "mounted",
      "applied",
    ]);
  });

  it("halted candidate: stable, reported reverted where M had been applied, held elsewhere", () => {
    const s = state({ hash: M, state: "halted", threshold: 0.3 });
    assert.deepEqual(decide({ state: s, rank: 0.1, appliedMounted: true }), ["stable", "reverted"]);
    assert.deepEqual(decide({ state: s, rank: 0.1, appliedMounted: false }), ["stable", "held"]);
    assert.deepEqual(decide({ state: s, rank: 0.9 }), ["stable", "held"]);
  });

  it("the mounted hash is the stable one: applied", () => {
    assert.deepEqual(decide({ state: state(null, M) }), ["mounted", "applied"]);
    assert.deepEqual(decide({ state: state({ hash: OTHER, state: "running", threshold: 1 }, M), rank: 0 }), [
      "mounted",
      "applied",
    ]);
  });

  it("a mounted hash the state does not know yet: held on the stable config, 'waiting for rollout'", () => {
    const d = decideRollout({
      policy: true,
      state: state({ hash: OTHER, state: "running", threshold: 1 }),
      rank: 0,
      mounted: M,
      appliedMounted: false,
    });
    assert.deepEqual([d.push, d.stage], ["stable", "held"]);
    assert.match(d.reason, /waiting for rollout of sha256:1111/);
    assert.deepEqual(decide({ state: state(null) }), ["stable", "held"]);
  });

  it("no stable config recorded: nothing to push in the held cases", () => {
    assert.deepEqual(decide({ state: state({ hash: M, state: "halted", threshold: 0 }, null), appliedMounted: true }), [
      "none",
      "reverted",
    ]);
    assert.deepEqual(decide({ state: state({ hash: M, state: "running", threshold: 0 }, null) }), ["none", "held"]);
    assert.deepEqual(decide({ state: state(null, null) }), ["none", "held"]);
  });
});

describe("rollout decision properties", () => {
  const hashArb = fc.constantFrom(M, S, OTHER);
  const candidateArb = fc.option(
    fc.record({
      hash: hashArb,
      state: fc.constantFrom<RolloutCandidateState>("running", "halted", "complete"),
      threshold: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  );
  const stateArb = fc.oneof(
    fc.constant(null),
    fc.constant("unknown" as const),
    fc.tuple(candidateArb, fc.option(hashArb)).map(([c, st]) => state(c, st)),
  );
  const inputArb = fc.record({
    policy: fc.boolean(),
    state: stateArb,
    rank: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    mounted: hashArb,
    appliedMounted: fc.boolean(),
  });

  it("with a policy, a halted hash is never what gets pushed", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        if (!input.policy || input.state === null || input.state === "unknown") return true;
        const c = input.state.candidate;
        if (c?.state !== "halted") return true;
        const d = decideRollout(input);
        const pushed = d.push === "mounted" ? input.mounted : d.push === "stable" ? input.state.stable?.hash : null;
        return pushed !== c.hash || input.state.stable?.hash === c.hash;
      }),
    );
  });

  it("with a policy and a state, the mounted config is pushed only when the state vouches for it", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const d = decideRollout(input);
        if (!input.policy || input.state === null || input.state === "unknown" || d.push !== "mounted") return true;
        const s = input.state;
        const c = s.candidate;
        const vouched =
          s.stable?.hash === input.mounted ||
          (c?.hash === input.mounted &&
            (c.state === "complete" || (c.state === "running" && input.rank < c.threshold)));
        return vouched;
      }),
    );
  });

  it("stable is only pushed when the state has one, and stages are set exactly when a policy is present", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const d = decideRollout(input);
        if (d.push === "stable" && (input.state === null || input.state === "unknown" || input.state.stable === null))
          return false;
        return (d.stage === null) === !input.policy;
      }),
    );
  });

  it("cohorts nest: a canary at one threshold is a canary at every higher one", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (rank, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const at = (t: number) =>
            decideRollout({
              policy: true,
              state: state({ hash: M, state: "running", threshold: t }),
              rank,
              mounted: M,
              appliedMounted: false,
            }).stage;
          return at(lo) !== "canary" || at(hi) === "canary";
        },
      ),
    );
  });
});
