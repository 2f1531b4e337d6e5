/**
 * Benchmark of a progressive rollout (`sfu-agent rollout`) over fauxqs (SNS,
 * SQS, S3): N in-process agents (the real Agent in per-pod queue mode,
 * reading the rollout state from S3, the agent's default 60 s resync) with
 * fake SFUs; a policy of three steps (10 %, 50 %, 100 %) with 2 s bakes
 * that proceeds without traffic (fake SFUs report no calls). Each rollout
 * is started, then every pod's mount is swapped to the new config (the
 * kubelet), as in production. Prints figures; asserts nothing.
 *
 * - Time added per step beyond its bake: from publishing the step to
 *   widening, minus the bake (publish -> the agents re-read the state ->
 *   push -> ack -> status event -> the driver reads it), p50 and max over
 *   every step of every rollout; and the time to apply (publish -> every
 *   cohort pod reported the hash applied).
 * - Control-plane cost: AWS requests per pod per rollout made by the agents
 *   during the rollout (all, and S3 GETs and SNS publishes separately), and
 *   the driver's own requests per rollout. Long polls are counted as made:
 *   an idle agent makes one per 20 s anyway (docs/operating.md, "Reload events through SNS/SQS").
 *   Health events (one per pod per 10 s while a rollout runs) are not in
 *   these counts: fake SFUs send no call health.
 *
 * Run: `npm run bench:rollout` (or `node bench/rollout.ts [--pods 8] [--rollouts 3]`).
 */
import { parseArgs } from "node:util";
import type { DriverResult } from "../agent/hook/driver.ts";
import { until } from "../test/helpers/until.ts";
import { startFleet } from "../test/integration/rollout/fleet.ts";
import { emitFigures } from "./figures.ts";

const { values } = parseArgs({
  options: { pods: { type: "string", default: "8" }, rollouts: { type: "string", default: "3" } },
});
const PODS = Number(values.pods);
const ROLLOUTS = Number(values.rollouts);
const BAKE_MS = 2_000;
const POLICY = `schemaVersion: 1
steps:
  - { percent: 10, bake: 2s }
  - { percent: 50, bake: 2s }
  - { percent: 100, bake: 2s }
halt:
  noTraffic: proceed
`;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};
const sum = (m: Map<string, number>, filter: (a: string) => boolean = () => true) =>
  [...m.entries()].filter(([a]) => filter(a)).reduce((n, [, c]) => n + c, 0);

const fleet = await startFleet({
  names: Array.from({ length: PODS }, (_, i) => `sfu-bench-${i}`),
  initial: 1,
  policy: POLICY,
  resyncIntervalMs: 60_000,
});
try {
  for (const p of fleet.pods) await until(() => p.applied() !== null, 20_000, `${p.name} on config 1`);
  const boot = await fleet.rollout(1, { deps: { waitTimeSeconds: 20 } });
  if (boot.code !== 0) throw new Error(`bootstrap failed: ${boot.stderr}`);

  const added: number[] = [];
  const apply: number[] = [];
  const totals: number[] = [];
  let agentAll = 0;
  let agentS3 = 0;
  let agentSns = 0;
  let hookAll = 0;
  for (let r = 0; r < ROLLOUTS; r++) {
    const n = r + 2;
    const agentBefore = new Map(fleet.agentCalls);
    const hookBefore = new Map(fleet.hookCalls);
    let result: DriverResult | null = null;
    const t0 = performance.now();
    const run = fleet.rollout(n, {
      timeout: "120",
      deps: { waitTimeSeconds: 20, stateCheckIntervalMs: 15_000, onResult: (x) => (result = x) },
    });
    await fleet.mount(n);
    const out = await run;
    totals.push(performance.now() - t0);
    const res = result as DriverResult | null;
    if (out.code !== 0 || res?.outcome !== "complete")
      throw new Error(`rollout ${n} failed: ${out.stdout}${out.stderr}`);
    for (const s of res.steps) {
      added.push(s.durationMs - s.bakeMs);
      apply.push(s.applyMs);
    }
    // Let the completion event reach every agent before counting.
    for (const p of fleet.pods)
      await until(() => p.agent.status().rollout?.stage === "applied", 20_000, `${p.name} applied`);
    const delta = (now: Map<string, number>, before: Map<string, number>, f: (a: string) => boolean = () => true) =>
      sum(now, f) - sum(before, f);
    agentAll += delta(fleet.agentCalls, agentBefore);
    agentS3 += delta(fleet.agentCalls, agentBefore, (a) => a.startsWith("s3:"));
    agentSns += delta(fleet.agentCalls, agentBefore, (a) => a.startsWith("sns:"));
    hookAll += delta(fleet.hookCalls, hookBefore);
  }
  const perPod = (x: number) => x / ROLLOUTS / PODS;
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
  console.log(
    `Progressive rollout, ${PODS} pods, 3 steps (10/50/100 %) of ${BAKE_MS / 1000} s bake, ${ROLLOUTS} rollouts`,
  );
  console.log(`  time added per step beyond bake: p50 ${fmt(quantile(added, 0.5))}, max ${fmt(Math.max(...added))}`);
  console.log(
    `  time to apply per step (publish -> cohort applied): p50 ${fmt(quantile(apply, 0.5))}, max ${fmt(Math.max(...apply))}`,
  );
  console.log(`  whole rollout: p50 ${fmt(quantile(totals, 0.5))} (bakes: ${fmt(3 * BAKE_MS)})`);
  console.log(
    `  agent requests per pod per rollout: ${perPod(agentAll).toFixed(1)} (S3 GET ${perPod(agentS3).toFixed(1)}, SNS publish ${perPod(agentSns).toFixed(1)})`,
  );
  console.log(
    `  driver requests per rollout: ${(hookAll / ROLLOUTS).toFixed(1)} (${(hookAll / ROLLOUTS / PODS).toFixed(1)} per pod)`,
  );
  emitFigures("rollout", {
    step_added_beyond_bake_p50_ms: { value: quantile(added, 0.5), unit: "ms", better: "lower" },
    step_added_beyond_bake_max_ms: { value: Math.max(...added), unit: "ms", better: "lower" },
    step_apply_p50_ms: { value: quantile(apply, 0.5), unit: "ms", better: "lower" },
    agent_requests_per_pod_per_rollout: { value: perPod(agentAll), unit: "requests", better: "lower" },
    agent_s3_gets_per_pod_per_rollout: { value: perPod(agentS3), unit: "requests", better: "lower" },
    agent_sns_publishes_per_pod_per_rollout: { value: perPod(agentSns), unit: "requests", better: "lower" },
    driver_requests_per_rollout: { value: hookAll / ROLLOUTS, unit: "requests", better: "lower" },
  });
} finally {
  await fleet.dispose();
}
