/**
 * `npm run soak:faults`: long outages of S3, SNS and SQS during a
 * progressive rollout, with real agents (in-process, per-pod queues, fake
 * SFUs) on fauxqs behind the fault proxy of the fault suite
 * (test/integration/faults/). For each service and each outage length (5 s,
 * 20 s, 120 s by default) one rollout of a new config: the service goes down
 * once the rollout's first step is written and comes back after the outage.
 * The driver's timeout is 60 s, so the short outages are retried through and
 * the long one outlasts it (the driver halts, or, when S3 itself is down, the
 * halt cannot be written and the hook Job's retry, a rerun of the driver,
 * resumes or halts from the state it finds: the soak reruns it once).
 *
 * Prints, per run: the outcome (complete, halted), the time to converge
 * (from the end of the outage until every pod runs the final config;
 * "during the outage" when they all ran it before the outage ended), the
 * total time, and the halted-hash applies (configs an SFU received after its
 * rollout halted: must be 0). Asserts nothing beyond what the fault suite's
 * run checks; a run that fails is printed as failed, with its error.
 *
 * Run: `npm run soak:faults` (or `node bench/soak-faults.ts --outages 5,20
 * --services s3,sns,sqs --timeout 60`). Not part of `npm test`.
 */
import { parseArgs } from "node:util";
import type { FaultService } from "../test/helpers/fault-proxy.ts";
import { type FaultFleet, runWithAction, startFaultFleet } from "../test/integration/faults/rollout-faults.ts";

const { values } = parseArgs({
  options: {
    outages: { type: "string", default: "5,20,120" },
    services: { type: "string", default: "s3,sns,sqs" },
    timeout: { type: "string", default: "60" },
    pods: { type: "string", default: "3" },
  },
});
const outages = values.outages.split(",").map((s) => Number(s) * 1000);
const services = values.services.split(",") as FaultService[];
const pods = Number(values.pods);

interface Row {
  service: FaultService;
  outageS: number;
  outcome: string;
  convergeS: number | null;
  totalS: number | null;
  haltedApplies: number;
  reruns: number;
  note: string;
}

const rows: Row[] = [];
let n = 2;
const ff: FaultFleet = await startFaultFleet({ names: Array.from({ length: pods }, (_, i) => `sfu-soak-${i}`) });
try {
  for (const service of services) {
    for (const outageMs of outages) {
      const k = n++;
      let outageEnd = 0;
      let reruns = 0;
      const before = ff.watch.violations.length;
      const t0 = performance.now();
      try {
        const r = await runWithAction(ff, {
          n: k,
          step: 0,
          timeout: values.timeout,
          run: async () => {
            let res = await ff.fleet.rollout(k, { timeout: values.timeout });
            // The hook Job retries a failed driver: a rerun resumes or halts from the state it finds.
            while ((await ff.fleet.state.read())?.candidate?.state === "running" && reruns < 3) {
              reruns++;
              res = await ff.fleet.rollout(k, { timeout: values.timeout });
            }
            return res;
          },
          arm: () => ff.proxy.fail(service, { kind: "down" }),
          act: async () => {
            setTimeout(() => {
              ff.proxy.fail(service, null);
              outageEnd = performance.now();
            }, outageMs).unref();
          },
        });
        const end = performance.now();
        rows.push({
          service,
          outageS: outageMs / 1000,
          outcome: `${r.outcome}${r.outcome === "halted" ? ` (${r.state.candidate?.reason?.criterion})` : ""}`,
          convergeS: outageEnd > 0 ? Math.max(0, end - outageEnd) / 1000 : null,
          totalS: (end - t0) / 1000,
          haltedApplies: ff.watch.violations.length - before,
          reruns,
          note: "",
        });
      } catch (err) {
        ff.proxy.fail(service, null);
        rows.push({
          service,
          outageS: outageMs / 1000,
          outcome: "failed",
          convergeS: null,
          totalS: (performance.now() - t0) / 1000,
          haltedApplies: ff.watch.violations.length - before,
          reruns,
          note: (err as Error).message.split("\n")[0] ?? "",
        });
      }
      // Wait for the outage to be over before the next run.
      while (outageEnd === 0) await new Promise((r) => setTimeout(r, 200));
      const row = rows[rows.length - 1] as Row;
      process.stdout.write(
        `${row.service} down ${row.outageS} s: ${row.outcome}; converged ${row.convergeS === null ? "during the outage" : `${row.convergeS.toFixed(1)} s after the outage`} (total ${row.totalS?.toFixed(1)} s); driver reruns ${row.reruns}; halted-hash applies ${row.haltedApplies}${row.note ? `; ${row.note}` : ""}\n`,
      );
    }
  }
} finally {
  await ff.dispose();
}

process.stdout.write(
  `\n| service | outage | outcome | converged after the outage | total | driver reruns | halted-hash applies |\n|---|---|---|---|---|---|---|\n`,
);
for (const r of rows) {
  process.stdout.write(
    `| ${r.service.toUpperCase()} | ${r.outageS} s | ${r.outcome} | ${r.convergeS === null ? "during the outage" : `${r.convergeS.toFixed(1)} s`} | ${r.totalS?.toFixed(1)} s | ${r.reruns} | ${r.haltedApplies} |\n`,
  );
}
const applies = rows.reduce((a, r) => a + r.haltedApplies, 0);
process.stdout.write(`\nhalted-hash applies in total: ${applies} (must be 0)\n`);
process.exitCode = applies === 0 && rows.every((r) => r.outcome !== "failed") ? 0 : 1;
