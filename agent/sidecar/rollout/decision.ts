/**
 * The agent's rollout decision, a pure function: from whether a rollout
 * policy is mounted, the durable rollout state, this pod's cohort rank and
 * the mounted hash, which config becomes desired and the pod's stage
 * (PROTOCOL.md section 19.3, its table; without a policy: the mounted config).
 * A halted hash is never pushed, whatever restarts: the state is durable and
 * this function has no other input.
 */
import { inCohort } from "../../../protocol/cohort.ts";
import type { RolloutStage, RolloutState } from "../../../protocol/rollout-schema.ts";

/** The inputs of {@link decideRollout}. */
export interface DecisionInput {
  /** Whether a rollout policy file is in the mount (valid or not: an invalid policy still gates). */
  policy: boolean;
  /** The rollout state; null = no state object exists; `"unknown"` = not read yet or unreadable. */
  state: RolloutState | null | "unknown";
  /** This pod's cohort rank, in [0, 1). */
  rank: number;
  /** Hash of the mounted (valid) config. */
  mounted: string;
  /** Whether this pod's SFU has run the mounted hash (ack or report): a halt then reports `reverted`. */
  appliedMounted: boolean;
}

/** What {@link decideRollout} says to make desired. */
export interface Decision {
  /** `mounted`: the mounted config; `stable`: the state's stable config; `none`: leave the desired config as it is. */
  push: "mounted" | "stable" | "none";
  /** The pod's stage; null without a policy. */
  stage: RolloutStage | null;
  /** Why, in words (for /status and logs). */
  reason: string;
}

/** The decision table of the module comment. Pure. */
export function decideRollout(input: DecisionInput): Decision {
  const { state, mounted } = input;
  if (!input.policy) return { push: "mounted", stage: null, reason: "no rollout policy: every config applies at once" };
  if (state === null) {
    return {
      push: "mounted",
      stage: "applied",
      reason: "no rollout state yet: the mounted config applies (bootstrap)",
    };
  }
  if (state === "unknown") {
    return {
      push: "none",
      stage: "held",
      reason: "the rollout state could not be read yet: holding the running config",
    };
  }
  const stable = (why: string, stage: RolloutStage): Decision =>
    state.stable === null
      ? { push: "none", stage, reason: `${why}; no stable config is recorded: holding the running config` }
      : { push: "stable", stage, reason: `${why}; running the stable config ${state.stable.hash}` };
  const c = state.candidate;
  if (c !== null && c.hash === mounted) {
    switch (c.state) {
      case "running":
        return inCohort(input.rank, c.threshold)
          ? {
              push: "mounted",
              stage: "canary",
              reason: `in the cohort of step ${c.step} (rank ${fmt(input.rank)} < ${fmt(c.threshold)})`,
            }
          : stable(
              `rollout of ${mounted} at step ${c.step}, not in the cohort (rank ${fmt(input.rank)} >= ${fmt(c.threshold)})`,
              "held",
            );
      case "complete":
        return { push: "mounted", stage: "applied", reason: `rollout of ${mounted} complete` };
      case "halted":
        return stable(`rollout of ${mounted} halted`, input.appliedMounted ? "reverted" : "held");
    }
  }
  if (state.stable !== null && state.stable.hash === mounted) {
    return { push: "mounted", stage: "applied", reason: `${mounted} is the stable config` };
  }
  return stable(`waiting for rollout of ${mounted}`, "held");
}

function fmt(n: number): string {
  return n.toFixed(4);
}
