/**
 * The one place SQS and SNS clients are built (agent and `notify`). Credentials
 * come from the SDK's default chain (IRSA web identity on EKS, env vars or
 * profiles locally); the endpoint from `endpointUrl`, else the SDK's own
 * `AWS_ENDPOINT_URL` handling (fauxqs, LocalStack).
 *
 * The S3 client of the rollout state ({@link createS3Client}) is built the
 * same way, path-style when an endpoint is given.
 *
 * Every client gets a tiny middleware that reports each logical call (before
 * SDK retries) as `sqs:Action` / `sns:Action` to `onCall`, and appends it to
 * the file named by env `SFU_AGENT_AWS_CALL_LOG` when set: the least-privilege
 * test compares that set with the IAM policies, the benchmark counts requests.
 */
import { appendFileSync } from "node:fs";
import { S3Client } from "@aws-sdk/client-s3";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";

/** Environment variable naming a file every AWS action is appended to (one `service:Action` per line). */
export const CALL_LOG_ENV = "SFU_AGENT_AWS_CALL_LOG";

/** Static credentials (tests); production leaves them to the default chain. */
export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Options of {@link createAwsClients}. */
export interface AwsClientOptions {
  /** AWS region; when absent the SDK default chain (AWS_REGION, profile) decides. */
  region?: string | null;
  /** Endpoint override for both services (e.g. `http://127.0.0.1:4566`). */
  endpointUrl?: string | null;
  /** Credentials override; default: the SDK default provider chain. */
  credentials?: StaticCredentials;
  /** Called once per logical AWS call with `service:Action` (e.g. `sqs:ReceiveMessage`). */
  onCall?: (action: string) => void;
  /** File each action is appended to; default: env {@link CALL_LOG_ENV}. Pass null to disable. */
  callLogFile?: string | null;
  /** Retry attempts of the SDK per call (default 3). */
  maxAttempts?: number;
}

/** The pair of clients the queue module uses. */
export interface AwsClients {
  sqs: SQSClient;
  sns: SNSClient;
  /** Releases sockets of both clients. */
  destroy(): void;
}

/** Derives the region from an SNS/SQS ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`) or an SQS URL; null if none. */
export function regionFromResource(resource: string | null | undefined): string | null {
  if (!resource) return null;
  const arn = /^arn:aws[a-z-]*:(?:sns|sqs):([a-z0-9-]+):/.exec(resource);
  if (arn?.[1]) return arn[1];
  const url = /^https?:\/\/sqs\.([a-z0-9-]+)\./.exec(resource);
  return url?.[1] ?? null;
}

/** Builds the SQS and SNS clients; see the module doc for credentials, endpoint and call recording. */
export function createAwsClients(options: AwsClientOptions = {}): AwsClients {
  const config = clientConfig(options);
  const sqs = new SQSClient(config);
  const sns = new SNSClient(config);
  recordCalls(sqs.middlewareStack, "sqs", options);
  recordCalls(sns.middlewareStack, "sns", options);
  return {
    sqs,
    sns,
    destroy() {
      sqs.destroy();
      sns.destroy();
    },
  };
}

/**
 * Builds an S3 client (the rollout state object) with the same region,
 * endpoint, credentials, bounds and call recording (`s3:Action`) as
 * {@link createAwsClients}. With `endpointUrl` it addresses buckets
 * path-style (`http://host/bucket/key`), as local S3 servers expect. The
 * caller destroys it.
 */
export function createS3Client(options: AwsClientOptions = {}): S3Client {
  const s3 = new S3Client({ ...clientConfig(options), ...(options.endpointUrl ? { forcePathStyle: true } : {}) });
  recordCalls(s3.middlewareStack, "s3", options);
  return s3;
}

function clientConfig(options: AwsClientOptions) {
  return {
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpointUrl ? { endpoint: options.endpointUrl } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: options.maxAttempts ?? 3,
    // Bounded calls: a black-holed endpoint must not hang the poll loop. The
    // request timeout exceeds the 20 s long poll.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000, throwOnRequestTimeout: true },
  };
}

/** Adds the call recorder (see the module doc) to a client's middleware stack, when anything records. */
// biome-ignore lint/suspicious/noExplicitAny: the SDK's middleware generics differ per client; this one is type-agnostic.
function recordCalls(stack: { add: (m: any, o: any) => void }, service: string, options: AwsClientOptions): void {
  const logFile = options.callLogFile === undefined ? (process.env[CALL_LOG_ENV] ?? null) : options.callLogFile;
  if (!options.onCall && !logFile) return;
  const record = (action: string) => {
    options.onCall?.(action);
    if (logFile) appendFileSync(logFile, `${action}\n`);
  };
  stack.add(
    <T>(next: (args: T) => Promise<unknown>, context: { commandName?: string }) =>
      async (args: T) => {
        record(`${service}:${String(context.commandName ?? "Unknown").replace(/Command$/, "")}`);
        return next(args);
      },
    { step: "initialize", name: "sfuConfigCallRecorder" },
  );
}
