/**
 * Typed errors of the SNS/SQS trigger. Expected outcomes (a malformed body,
 * a rejected config, a timed-out propagation) are returned values, never
 * these: an error here means bad options or a failed AWS call.
 */

/** Literal codes of {@link QueueError}. */
export type QueueErrorCode =
  /** Options given to the trigger or `notify` are invalid (checked at construction). */
  | "QUEUE_OPTIONS"
  /** An AWS call failed in a way the caller must see (e.g. provisioning gave up). */
  | "QUEUE_AWS"
  /** The trigger was stopped while an operation was waiting. */
  | "QUEUE_STOPPED";

/** Error of the queue module; `code` tells what kind. */
export class QueueError extends Error {
  readonly code: QueueErrorCode;
  constructor(code: QueueErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "QueueError";
    this.code = code;
  }
}

/** Name of an AWS SDK error (`QueueDoesNotExist`, `ThrottlingException`, ...) or of any Error, else "Error". */
export function awsErrorName(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const e = err as { name?: unknown; Code?: unknown; code?: unknown };
    if (typeof e.name === "string" && e.name !== "Error") return e.name;
    if (typeof e.Code === "string") return e.Code;
    if (typeof e.code === "string") return e.code;
  }
  return "Error";
}

/** True when an SDK error says the queue does not exist (JSON and query protocol spellings). */
export function isQueueMissing(err: unknown): boolean {
  const name = awsErrorName(err);
  return (
    name === "QueueDoesNotExist" ||
    name === "AWS.SimpleQueueService.NonExistentQueue" ||
    name === "NonExistentQueue" ||
    /does not exist|NonExistentQueue/i.test(err instanceof Error ? err.message : "")
  );
}

/** True when an SNS error says the subscription or topic is gone (safe to ignore on clean-up). */
export function isNotFound(err: unknown): boolean {
  const name = awsErrorName(err);
  return name === "NotFound" || name === "NotFoundException" || name === "ResourceNotFoundException";
}

/** True for the error an aborted SDK call or sleep throws. */
export function isAbort(err: unknown): boolean {
  return awsErrorName(err) === "AbortError" || (err instanceof Error && err.name === "AbortError");
}

/** One-line description of an error for logs: name and message, never request parameters. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${awsErrorName(err)}: ${err.message.split("\n")[0] ?? ""}`;
  return String(err);
}
