/**
 * The hook's propagation summary: per pod, its nudges and the two times its
 * agent reported (event publication to file swap, and to the SFU's ack),
 * then p50/p99/max over the pods. An operator reads from it alone whether the
 * kubelet nudge works (seconds) or the pods waited for the periodic sync
 * (a minute or more).
 */

import type { PodNudge } from "./pod-nudger.ts";
import type { PodReport } from "./status-collector.ts";

/** Nearest-rank percentile of `values` (sorted or not); null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? null;
}

const secs = (v: number | null) => (v === null ? "-" : `${v.toFixed(v < 10 ? 2 : 1)}s`);

/** One line: `LABEL p50 X p99 Y max Z (N pods)`, or null without figures. */
export function percentileLine(label: string, values: readonly number[]): string | null {
  if (values.length === 0) return null;
  return `${label}: p50 ${secs(percentile(values, 50))} p99 ${secs(percentile(values, 99))} max ${secs(
    percentile(values, 100),
  )} (${values.length} pods)`;
}

/** Formats the summary (a table and the percentile lines); empty when there is nothing to say. */
export function formatPropagationSummary(reports: readonly PodReport[], nudges: readonly PodNudge[]): string {
  const byPod = new Map<string, { report?: PodReport; nudge?: PodNudge }>();
  for (const r of reports) byPod.set(r.pod, { report: r });
  for (const n of nudges) byPod.set(n.pod, { ...byPod.get(n.pod), nudge: n });
  if (byPod.size === 0) return "";
  const names = [...byPod.keys()].sort();
  const rows = [
    ["POD", "NUDGES", "FILE", "APPLIED", "NOTE"],
    ...names.map((pod) => {
      const { report, nudge } = byPod.get(pod) ?? {};
      const note = nudge?.error
        ? `not nudged: ${nudge.error.code}`
        : report === undefined
          ? "no report"
          : report.outcome === "applied"
            ? "-"
            : report.outcome;
      return [
        pod,
        nudge ? String(nudge.nudges) : "-",
        secs(report?.propagationSeconds ?? null),
        secs(report?.eventToAppliedSeconds ?? null),
        note,
      ];
    }),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const table = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
  const file = reports.flatMap((r) => (r.propagationSeconds === null ? [] : [r.propagationSeconds]));
  const applied = reports.flatMap((r) => (r.eventToAppliedSeconds === null ? [] : [r.eventToAppliedSeconds]));
  const lines = [percentileLine("event to file swap", file), percentileLine("event to applied", applied)].filter(
    (l): l is string => l !== null,
  );
  return `${[...table, ...lines].join("\n")}\n`;
}
