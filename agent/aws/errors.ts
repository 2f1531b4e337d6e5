/**
 * How the SNS/SQS trigger reads an AWS SDK error: its name, whether it says
 * the queue or subscription is gone, whether it is an abort, and a one-line
 * description for logs. Start-up failures are agent/shared/errors.ts's AgentError
 * (`QUEUE_OPTIONS`, `QUEUE_AWS`); expected outcomes are returned values.
 */

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

/** The error of an operation cut short because the trigger stopped: an `AbortError`, like an aborted SDK call. */
export function stopped(message: string): Error {
  return new DOMException(message, "AbortError");
}

/** True for the error an aborted SDK call or sleep throws, or {@link stopped}'s. */
export function isAbort(err: unknown): boolean {
  return awsErrorName(err) === "AbortError" || (err instanceof Error && err.name === "AbortError");
}

/** One-line description of an error for logs: name and message, never request parameters. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${awsErrorName(err)}: ${err.message.split("\n")[0] ?? ""}`;
  return String(err);
}
