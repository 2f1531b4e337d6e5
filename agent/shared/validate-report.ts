/**
 * One file's validation report and its text lines: what `sfu-agent validate`
 * prints and what `sfu-agent admission` puts in a denial, built once.
 */
import {
  type ConfigProblem,
  formatProblem,
  type LoadResult,
  MAX_REPORTED_PROBLEMS,
} from "../../protocol/config-loader.ts";
import type { PolicyLoadResult } from "../../protocol/rollout-policy.ts";
import type { RolloutPolicy } from "../../protocol/rollout-schema.ts";

/** One file's outcome in `--format json`. */
export interface ValidateReport {
  file: string;
  /** `rollout-policy` for a rollout policy; absent for a config (the contract's keys stay as they were). */
  kind?: "rollout-policy";
  valid: boolean;
  /** Failure code (INVALID_CONFIG, UNSUPPORTED_SCHEMA, NOT_FOUND, READ_FAILED); null when valid. */
  code: string | null;
  /** `sha256:<hex>` of the normalised config; null when invalid. */
  hash: string | null;
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
  /** A valid rollout policy's steps, e.g. `10% for 5m, 100% for 5m`; absent otherwise. */
  steps?: string;
}

export function byPosition(a: ConfigProblem, b: ConfigProblem): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0);
}

/**
 * Splits a list as the loader reports it (sorted, at most
 * MAX_REPORTED_PROBLEMS entries, then one "and N more ... not shown") into
 * its entries and that last line, if any.
 */
function withoutSummary(list: ConfigProblem[]): { items: ConfigProblem[]; summary: ConfigProblem[] } {
  if (list.length <= MAX_REPORTED_PROBLEMS) return { items: list, summary: [] };
  return { items: list.slice(0, MAX_REPORTED_PROBLEMS), summary: list.slice(MAX_REPORTED_PROBLEMS) };
}

/** The report of one loaded config (`sfu-agent admission` builds its reviews from it too). */
export function toReport(file: string, result: LoadResult): ValidateReport {
  const warnings = result.warnings;
  if (result.ok) return { file, valid: true, code: null, hash: result.hash, problems: [], warnings };
  return { file, valid: false, code: result.code, hash: null, problems: result.problems, warnings };
}

/**
 * The text-format lines of a report's problems and warnings, by position
 * (each list's "and N more" line after it), without the verdict line: the
 * lines `sfu-agent validate` prints, and the ones `sfu-agent admission`
 * puts in a denial.
 */
export function problemLines(report: ValidateReport): { problems: string[]; warnings: string[]; all: string[] } {
  const problems = withoutSummary(report.problems);
  const warnings = withoutSummary(report.warnings);
  const all = [...problems.items, ...warnings.items]
    .sort(byPosition)
    .concat(problems.summary, warnings.summary)
    .map((p) => formatProblem(report.file, p));
  const format = (list: ConfigProblem[]) => list.map((p) => formatProblem(report.file, p));
  return {
    problems: format([...problems.items].sort(byPosition).concat(problems.summary)),
    warnings: format([...warnings.items].sort(byPosition).concat(warnings.summary)),
    all,
  };
}

/** The report of one loaded rollout policy (`sfu-agent admission` builds its reviews from it too). */
export function toPolicyReport(file: string, r: PolicyLoadResult): ValidateReport {
  if (r.ok) {
    return {
      file,
      kind: "rollout-policy",
      valid: true,
      code: null,
      hash: null,
      problems: [],
      warnings: [],
      steps: describeSteps(r.policy),
    };
  }
  return {
    file,
    kind: "rollout-policy",
    valid: false,
    code: r.code,
    hash: null,
    problems: [...r.problems].sort(byPosition),
    warnings: [],
  };
}

/** `10% for 5m, 50% for 10m, 100% for 5m`. */
export function describeSteps(policy: RolloutPolicy): string {
  const duration = (ms: number) =>
    ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
  return policy.steps.map((s) => `${s.percent}% for ${duration(s.bakeMs)}`).join(", ");
}
