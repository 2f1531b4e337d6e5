/**
 * Rollout cohorts. Every pod has a rank in [0, 1) computed from its name
 * alone, so it is stable across restarts and every party (the driver, the
 * agent of the pod, a tool) computes the same number. A step is published as
 * a rank cutoff (`threshold`): a pod is in the cohort iff rank < threshold.
 * Widening a step only raises the threshold, so a pod in the 10% cohort is in
 * the 50% one too, and a pod created later compares its own rank.
 */
import { createHash } from "node:crypto";

/** Prefix hashed with the pod name (keeps the rank independent of other uses of the name's hash). */
export const COHORT_SALT = "sfu-config-cohort:";

/** The pod's rank: the first 8 hex digits of sha256(salt + name) / 2^32, in [0, 1). */
export function cohortRank(podName: string): number {
  const hex = createHash("sha256").update(`${COHORT_SALT}${podName}`, "utf8").digest("hex").slice(0, 8);
  return Number.parseInt(hex, 16) / 2 ** 32;
}

/** Whether a pod of `rank` is in the cohort of `threshold`. */
export function inCohort(rank: number, threshold: number): boolean {
  return rank < threshold;
}

/**
 * How many of `n` pods a step of `percent` takes: ceil(percent x n / 100),
 * at least 1 for any percent above 0 (and 0 for 0), at most n.
 */
export function cohortSize(n: number, percent: number): number {
  if (n <= 0 || percent <= 0) return 0;
  if (percent >= 100) return n;
  return Math.min(n, Math.max(1, Math.ceil((percent * n) / 100 - 1e-9)));
}

/**
 * The threshold of a step of `percent` over the pods of `ranks`: the pods
 * with the {@link cohortSize} lowest ranks are below it, the others not.
 * 0 for percent 0 (nobody), 1 for 100 (everyone, pods created later too);
 * otherwise the rank of the first pod left out.
 */
export function cohortThreshold(ranks: readonly number[], percent: number): number {
  if (percent <= 0) return 0;
  if (percent >= 100) return 1;
  const sorted = [...ranks].sort((a, b) => a - b);
  const k = cohortSize(sorted.length, percent);
  if (k >= sorted.length) return 1;
  return sorted[k] as number;
}
