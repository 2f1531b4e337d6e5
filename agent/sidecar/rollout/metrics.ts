/**
 * Rollout gauges of the agent, read at scrape time from the
 * {@link AgentRollout}: `sfu_agent_rollout_stage{stage}` (1 for the pod's
 * current stage, 0 for the others; all 0 without a rollout policy) and
 * `sfu_agent_rollout_rank` (the pod's cohort rank, for dashboards that sort
 * pods the way cohorts take them), `sfu_agent_rollout_holding` (1 while a
 * policy is mounted but the state was never read nor remembered, so nothing
 * is pushed: a new pod during an S3 outage) and
 * `sfu_agent_rollout_state_unreadable` (1 while the last state read failed).
 */
import { Gauge, type Registry } from "prom-client";
import { ROLLOUT_STAGES } from "../../../protocol/rollout-schema.ts";
import type { AgentRollout } from "./agent-rollout.ts";

/** Registers the rollout gauges on `registry`. */
export function registerRolloutMetrics(
  registry: Registry,
  rollout: Pick<AgentRollout, "stage" | "rank" | "holdingWithoutState" | "stateUnreadable">,
): void {
  new Gauge({
    name: "sfu_agent_rollout_stage",
    help: "1 for this pod's progressive rollout stage (canary, held, applied, reverted), 0 for the others; all 0 without a rollout policy",
    labelNames: ["stage"],
    registers: [registry],
    collect() {
      const current = rollout.stage();
      for (const stage of ROLLOUT_STAGES) this.set({ stage }, stage === current ? 1 : 0);
    },
  });
  new Gauge({
    name: "sfu_agent_rollout_rank",
    help: "This pod's cohort rank in [0, 1): a step of a progressive rollout takes the pods of lowest rank",
    registers: [registry],
    collect() {
      this.set(rollout.rank);
    },
  });
  new Gauge({
    name: "sfu_agent_rollout_holding",
    help: "1 while a rollout policy is mounted but the rollout state was never read nor remembered: nothing is pushed (a new pod during an S3 outage; /status rollout.reason says why)",
    registers: [registry],
    collect() {
      this.set(rollout.holdingWithoutState() ? 1 : 0);
    },
  });
  new Gauge({
    name: "sfu_agent_rollout_state_unreadable",
    help: "1 while the last read of the rollout state failed (/status rollout.stateError has the code): the agent keeps the last state it knows",
    registers: [registry],
    collect() {
      this.set(rollout.stateUnreadable() ? 1 : 0);
    },
  });
}
