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
 *
 * The SDK packages are loaded on first use ({@link awsSdk}), not when this
 * module is: `sfu-agent run` in watch-only mode loads none, per-pod queue mode
 * loads SQS and SNS, and S3 only with `--rollout-state`. The clients of
 * {@link createAwsClients} are built when first read.
 *
 * Every client also bounds what it reads ({@link boundResponses}): an error
 * body (any status >= 300, which the SDK otherwise reads whole to parse the
 * error) is read to at most {@link MAX_ERROR_BODY_BYTES} within
 * {@link BODY_TIMEOUT_MS} and dropped past either (the error keeps its HTTP
 * status); a success body is cut off past {@link MAX_BODY_BYTES} or when it is
 * not read within {@link BODY_TIMEOUT_MS} of its headers (a trickle). Callers
 * that read a body themselves (S3 GetObject) bound it tighter.
 */
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Readable, Transform } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { readBoundedStream } from "../../protocol/bounded-json.ts";

const load = createRequire(import.meta.url);

/**
 * The AWS SDK packages, each loaded (and cached by Node) on its first call.
 * They are CommonJS packages, so a synchronous `require` loads exactly what
 * an `import` would, and the client factories below stay synchronous.
 */
export const awsSdk = {
  s3: (): typeof import("@aws-sdk/client-s3") => load("@aws-sdk/client-s3"),
  sns: (): typeof import("@aws-sdk/client-sns") => load("@aws-sdk/client-sns"),
  sqs: (): typeof import("@aws-sdk/client-sqs") => load("@aws-sdk/client-sqs"),
};

/** Environment variable naming a file every AWS action is appended to (one `service:Action` per line). */
export const CALL_LOG_ENV = "SFU_AGENT_AWS_CALL_LOG";

/** Most bytes of an error body kept (the rest is not read; the SDK then reports the bare HTTP status). */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Most bytes of any success body (SQS: 10 messages of at most 1 MiB each, plus the envelope). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** Longest time from a response's headers to the end of its body. */
export const BODY_TIMEOUT_MS = 15_000;

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

/** The pair of clients the queue module uses; each is built (and its SDK package loaded) when first read. */
export interface AwsClients {
  readonly sqs: SQSClient;
  readonly sns: SNSClient;
  /** Releases the sockets of the clients built. */
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
  let sqs: SQSClient | null = null;
  let sns: SNSClient | null = null;
  const prepare = <C extends SQSClient | SNSClient>(client: C, service: string): C => {
    recordCalls(client.middlewareStack, service, options);
    boundResponses(client.middlewareStack);
    return client;
  };
  return {
    get sqs() {
      sqs ??= prepare(new (awsSdk.sqs().SQSClient)(config), "sqs");
      return sqs;
    },
    get sns() {
      sns ??= prepare(new (awsSdk.sns().SNSClient)(config), "sns");
      return sns;
    },
    destroy() {
      sqs?.destroy();
      sns?.destroy();
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
  const s3 = new (awsSdk.s3().S3Client)({
    ...clientConfig(options),
    ...(options.endpointUrl ? { forcePathStyle: true } : {}),
  });
  recordCalls(s3.middlewareStack, "s3", options);
  boundResponses(s3.middlewareStack);
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

/** Calls recorded as the IAM action that authorises them (a batch call needs its single action's permission). */
const IAM_ACTION: Record<string, string> = { DeleteMessageBatch: "DeleteMessage" };

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
        const name = String(context.commandName ?? "Unknown").replace(/Command$/, "");
        record(`${service}:${IAM_ACTION[name] ?? name}`);
        return next(args);
      },
    { step: "initialize", name: "sfuConfigCallRecorder" },
  );
}

interface RawResponse {
  statusCode: number;
  headers: Record<string, string>;
  body?: unknown;
}

/**
 * Bounds every raw HTTP response before the SDK deserialises it (see the
 * module doc). Sits innermost in the `deserialize` step, so it sees the
 * response as the HTTP handler returned it, on every SDK attempt.
 */
// biome-ignore lint/suspicious/noExplicitAny: see recordCalls.
export function boundResponses(stack: { add: (m: any, o: any) => void }): void {
  stack.add(
    <T>(next: (args: T) => Promise<{ response: unknown }>) =>
      async (args: T) => {
        const out = await next(args);
        const res = out.response as RawResponse | undefined;
        if (!res || typeof res.statusCode !== "number" || res.body === undefined || res.body === null) return out;
        if (res.statusCode >= 300) {
          const read = await readBoundedStream(
            res.body,
            { maxBytes: MAX_ERROR_BODY_BYTES, timeoutMs: BODY_TIMEOUT_MS },
            `HTTP ${res.statusCode} body`,
          );
          // Past a bound the body is dropped: the SDK reports the bare status (UnknownError, HTTP nnn).
          res.body = Readable.from(read.ok ? [read.bytes] : []);
          if (!read.ok) delete res.headers["content-length"];
        } else if (typeof (res.body as Readable).pipe === "function") {
          res.body = limitBody(res.body as Readable);
        }
        return out;
      },
    { step: "deserialize", priority: "low", name: "sfuConfigBoundedResponse" },
  );
}

/** A pass-through of `body` that fails past MAX_BODY_BYTES or BODY_TIMEOUT_MS. */
function limitBody(body: Readable): Readable {
  let size = 0;
  const fail = (message: string) => {
    clearTimeout(timer);
    body.destroy();
    limited.destroy(Object.assign(new Error(message), { name: "ResponseBodyBoundError" }));
  };
  const limited = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return fail(`response body exceeds ${MAX_BODY_BYTES} bytes`);
      done(null, chunk);
    },
    flush(done) {
      clearTimeout(timer);
      done();
    },
  });
  const timer = setTimeout(() => fail(`response body not read within ${BODY_TIMEOUT_MS} ms`), BODY_TIMEOUT_MS);
  timer.unref();
  body.on("error", (err) => {
    clearTimeout(timer);
    limited.destroy(err);
  });
  limited.on("close", () => clearTimeout(timer));
  return body.pipe(limited);
}
