/**
 * SQS/SNS trigger (issue 5). PLACEHOLDER until the queue module lands: the
 * signature is the contract `agent/commands/run.ts` calls.
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { SnapshotStore } from "../snapshot-store.ts";

export interface QueueTriggerOptions {
  topicArn?: string;
  queueUrl?: string;
  podName: string;
  queuePrefix: string;
  region?: string;
  endpointUrl?: string;
  statusTopicArn?: string;
  propagationTimeoutMs: number;
}

export interface QueueTrigger {
  /** For /status `queue`: mode per-pod|given and the queue URL. */
  status(): { mode: "per-pod" | "given"; url: string | null };
  stop(): Promise<void>;
}

export async function startQueueTrigger(_deps: {
  store: SnapshotStore;
  logger: Logger;
  registry: Registry;
  options: QueueTriggerOptions;
}): Promise<QueueTrigger> {
  throw new Error("queue trigger not implemented yet");
}
