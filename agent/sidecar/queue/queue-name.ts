/**
 * Per-pod queue names: `<prefix><pod-name>` made to fit SQS naming rules
 * (1-80 characters from `A-Za-z0-9-_`). Characters outside the set become
 * `-`; a name that had to be truncated (or changed) gets a short hash of the
 * original so two long pod names sharing a prefix still map to different
 * queues.
 */
import { createHash } from "node:crypto";

/** Longest SQS queue name. */
export const MAX_QUEUE_NAME = 80;
const VALID = /^[A-Za-z0-9_-]{1,80}$/;

/** True when `name` is a valid (standard) SQS queue name. */
export function isValidQueueName(name: string): boolean {
  return VALID.test(name);
}

/**
 * The queue name of a pod. Deterministic (a restarted container finds its
 * queue again), unique for distinct `prefix + podName` inputs with
 * overwhelming probability, and always valid. The prefix itself must be valid
 * and at most 60 characters (checked by the trigger's options).
 */
export function perPodQueueName(prefix: string, podName: string): string {
  const raw = `${prefix}${podName}`;
  if (isValidQueueName(raw)) return raw;
  const cleaned = raw.replace(/[^A-Za-z0-9_-]/g, "-");
  const suffix = `-${createHash("sha256").update(raw, "utf8").digest("hex").slice(0, 8)}`;
  return `${cleaned.slice(0, MAX_QUEUE_NAME - suffix.length)}${suffix}`;
}

/** The last path segment of a queue URL: its name. */
export function queueNameFromUrl(url: string): string {
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, "");
  const parts = path.split("/").filter((p) => p !== "");
  return parts[parts.length - 1] ?? "";
}
