/**
 * The durable rollout state: one JSON object in S3 (`s3://bucket/key`),
 * written only by the rollout driver and read by every agent (at start, on
 * every rollout event, on every resync). One writer needs no conditional
 * writes: a newer rollout simply overwrites the object, and the older
 * driver sees the changed candidate `id` on its next read and stops.
 *
 * Reads are bounded (at most {@link MAX_STATE_BYTES}, else STATE_TOO_LARGE),
 * validated against the rollout state schema, and the stable config is
 * validated as a config and checked against its hash, so a corrupted or
 * forged object is refused with an error saying what is wrong and never
 * makes an agent push anything. A missing object reads as null (no rollout
 * has run yet). Calls are retried with back-off a bounded number of times.
 *
 * IAM: `s3:GetObject` (agents and driver) and `s3:PutObject` (driver only)
 * on the one object; nothing else.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createAjv } from "../../protocol/ajv.ts";
import { validateConfigValue } from "../../protocol/config-loader.ts";
import { type RolloutState, rolloutStateSchema } from "../../protocol/rollout-schema.ts";
import { type AwsClientOptions, createS3Client } from "../queue/aws-clients.ts";
import { backoffDelay } from "../queue/backoff.ts";
import { parseS3Url, type S3Location } from "./s3-url.ts";

export { parseS3Url, type S3Location } from "./s3-url.ts";

/** Largest state object read, in bytes (a config is at most 1 MiB; the state holds one). */
export const MAX_STATE_BYTES = 2 * 1024 * 1024;

/** Why a state operation failed. */
export type RolloutStateErrorCode =
  | "STATE_URL"
  | "STATE_READ_FAILED"
  | "STATE_WRITE_FAILED"
  | "STATE_TOO_LARGE"
  | "STATE_INVALID";

/** A failed state operation; `code` says which kind. */
export class RolloutStateError extends Error {
  readonly code: RolloutStateErrorCode;
  override name = "RolloutStateError";
  constructor(code: RolloutStateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Options of {@link RolloutStateStore}. */
export interface RolloutStateStoreOptions
  extends Pick<AwsClientOptions, "region" | "endpointUrl" | "credentials" | "onCall" | "callLogFile"> {
  /** `s3://bucket/key` of the state object. */
  url: string;
  /** An S3 client to use (the caller owns it); built from the other options when absent. */
  s3?: S3Client;
  /** Attempts per read or write, with back-off between them (default 3). */
  attempts?: number;
  /** Back-off between attempts (default 200 ms doubling to 2 s). */
  backoff?: { baseMs: number; maxMs: number };
}

const validateState = createAjv().compile(rolloutStateSchema);

/** Reads and writes the rollout state object; see the module comment. */
export class RolloutStateStore {
  readonly location: S3Location;
  readonly #s3: S3Client;
  readonly #owned: boolean;
  readonly #attempts: number;
  readonly #backoff: { baseMs: number; maxMs: number };

  /** Throws {@link RolloutStateError} `STATE_URL` on a malformed URL. */
  constructor(options: RolloutStateStoreOptions) {
    const loc = parseS3Url(options.url);
    if (typeof loc === "string") throw new RolloutStateError("STATE_URL", `--rollout-state: ${loc}`);
    this.location = loc;
    this.#owned = options.s3 === undefined;
    this.#s3 =
      options.s3 ??
      createS3Client({
        ...(options.region === undefined ? {} : { region: options.region }),
        ...(options.endpointUrl === undefined ? {} : { endpointUrl: options.endpointUrl }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.onCall === undefined ? {} : { onCall: options.onCall }),
        ...(options.callLogFile === undefined ? {} : { callLogFile: options.callLogFile }),
        maxAttempts: 1,
      });
    this.#attempts = Math.max(1, options.attempts ?? 3);
    this.#backoff = options.backoff ?? { baseMs: 200, maxMs: 2_000 };
  }

  /** `s3://bucket/key`. */
  get url(): string {
    return `s3://${this.location.bucket}/${this.location.key}`;
  }

  /**
   * Reads the state: null when the object does not exist. Throws
   * {@link RolloutStateError}: STATE_READ_FAILED (S3 unreachable or refusing,
   * after the retries), STATE_TOO_LARGE, STATE_INVALID (not JSON, not the
   * schema, a stable config that is invalid or does not match its hash).
   */
  async read(signal?: AbortSignal): Promise<RolloutState | null> {
    const body = await this.#retry("read", signal, async () => {
      try {
        const res = await this.#s3.send(
          new GetObjectCommand({ Bucket: this.location.bucket, Key: this.location.key }),
          signal ? { abortSignal: signal } : {},
        );
        if (res.ContentLength !== undefined && res.ContentLength > MAX_STATE_BYTES) {
          await (res.Body as { destroy?: () => void } | undefined)?.destroy?.();
          throw new RolloutStateError(
            "STATE_TOO_LARGE",
            `${this.url} is ${res.ContentLength} bytes; the limit is ${MAX_STATE_BYTES}`,
          );
        }
        return await readBounded(res.Body, this.url);
      } catch (err) {
        if (isNoSuchKey(err)) return null;
        throw err;
      }
    });
    if (body === null) return null;
    return parseState(body, this.url);
  }

  /** Writes the state (driver only). Throws {@link RolloutStateError} STATE_WRITE_FAILED after the retries, STATE_INVALID for a state that breaks the schema. */
  async write(state: RolloutState, signal?: AbortSignal): Promise<void> {
    if (!validateState(state)) {
      throw new RolloutStateError("STATE_INVALID", `refusing to write an invalid state: ${ajvSummary()}`);
    }
    const text = JSON.stringify(state);
    if (Buffer.byteLength(text, "utf8") > MAX_STATE_BYTES) {
      throw new RolloutStateError("STATE_TOO_LARGE", `the state is larger than ${MAX_STATE_BYTES} bytes`);
    }
    await this.#retry("write", signal, () =>
      this.#s3.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.location.key,
          Body: text,
          ContentType: "application/json",
        }),
        signal ? { abortSignal: signal } : {},
      ),
    );
  }

  /** Releases the S3 client's sockets when this store built it. */
  destroy(): void {
    if (this.#owned) this.#s3.destroy();
  }

  async #retry<T>(what: "read" | "write", signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(backoffDelay(attempt - 1, this.#backoff), undefined, signal ? { signal } : {});
        } catch {
          break; // aborted (the agent is stopping): report the last failure
        }
      }
      try {
        return await fn();
      } catch (err) {
        if (err instanceof RolloutStateError) throw err;
        if ((err as Error)?.name === "AbortError") throw err;
        last = err;
        if (!retryable(err)) break;
      }
    }
    const code = what === "read" ? "STATE_READ_FAILED" : "STATE_WRITE_FAILED";
    throw new RolloutStateError(code, `cannot ${what} ${this.url}: ${describe(last)}`, { cause: last });
  }
}

/** Parses and checks a state object's text; throws {@link RolloutStateError} STATE_INVALID. */
export async function parseState(text: string, where = "the rollout state"): Promise<RolloutState> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RolloutStateError("STATE_INVALID", `${where}: not JSON (${(err as Error).message})`);
  }
  if (!validateState(value)) throw new RolloutStateError("STATE_INVALID", `${where}: ${ajvSummary()}`);
  const state = value as RolloutState;
  if (state.stable !== null) {
    const checked = await validateConfigValue(state.stable.config, { source: `${where} stable.config` });
    if (!checked.ok) {
      const first = checked.problems[0];
      throw new RolloutStateError(
        "STATE_INVALID",
        `${where}: stable.config is not a valid config: ${first ? `${first.pointer || "/"}: ${first.message}` : checked.code}`,
      );
    }
    if (checked.hash !== state.stable.hash) {
      throw new RolloutStateError(
        "STATE_INVALID",
        `${where}: stable.config hashes to ${checked.hash}, not the recorded ${state.stable.hash}`,
      );
    }
    state.stable = { ...state.stable, config: checked.config };
  }
  return state;
}

function ajvSummary(): string {
  const e = validateState.errors?.[0];
  if (!e) return "does not match the rollout state schema";
  return `${e.instancePath || "/"}: ${e.message ?? "is invalid"} (rollout state schema)`;
}

async function readBounded(body: unknown, url: string): Promise<string> {
  if (body === undefined || body === null) return "";
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk);
    size += b.length;
    if (size > MAX_STATE_BYTES) {
      (body as { destroy?: () => void }).destroy?.();
      throw new RolloutStateError("STATE_TOO_LARGE", `${url} exceeds ${MAX_STATE_BYTES} bytes`);
    }
    chunks.push(b);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new RolloutStateError("STATE_INVALID", `${url}: not UTF-8 text`);
  }
}

function isNoSuchKey(err: unknown): boolean {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === "NoSuchBucket" || e?.Code === "NoSuchBucket") return false;
  return e?.name === "NoSuchKey" || e?.Code === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
}

function retryable(err: unknown): boolean {
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  // Access denied, a missing bucket, a bad request: retrying will not help.
  return status === undefined || status >= 500 || status === 429;
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; code?: string };
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.name && e.name !== "Error" ? e.name : (e?.code ?? "error");
  return `${name}${status ? ` (HTTP ${status})` : ""}${e?.message && e.message !== name ? `: ${e.message}` : ""}`;
}
