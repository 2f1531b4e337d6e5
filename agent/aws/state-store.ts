/**
 * The durable rollout state: one JSON object in S3, written only by the
 * rollout driver and read, bounded and validated, by every agent. PROTOCOL.md
 * [section 19](../../protocol/PROTOCOL.md#19-progressive-rollout-optional).
 */
import { open, rename, unlink, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { S3Client } from "@aws-sdk/client-s3";
import { createAjv } from "../../protocol/ajv.ts";
import { type BackoffOptions, backoffDelay } from "../../protocol/backoff.ts";
import { parseBoundedJson, readBoundedStream } from "../../protocol/bounded-json.ts";
import { validateConfigValue } from "../../protocol/config-loader.ts";
import type { RolloutCandidate, RolloutState } from "../../protocol/rollout-schema.ts";
import { rolloutStateSchema } from "../../protocol/rollout-schema.ts";
import { type AwsClientOptions, awsSdk, createS3Client } from "./aws-clients.ts";
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
  | "STATE_INVALID"
  | "STATE_MISSING";

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
  /** Back-off between attempts (default {@link STATE_RETRY_BACKOFF}). */
  backoff?: BackoffOptions;
  /** Deadline of one attempt, request and body (default 10 s). */
  readTimeoutMs?: number;
  /** How the stable config's secret files are checked: the reading process's own `--secrets-dir` and mode. */
  secrets?: StateSecretsCheck;
  /**
   * A local file keeping the last state read (the agent's memory across its
   * own and its SFU's restarts, in the pod's emptyDir): written after every
   * successful non-null read, read by {@link RolloutStateStore.readCache}.
   * Null or absent: no memory beyond the process.
   */
  cacheFile?: string | null;
}

/** How a state's stable config names secret files: checked like the process's own config. */
export interface StateSecretsCheck {
  /** The process's `--secrets-dir` (default the loader's, /etc/sfu/secrets). */
  secretsDir?: string;
  /** Whether the files must exist and be readable (default true; the driver: false, it has no Secret mounted). */
  checkFiles?: boolean;
}

/** Back-off between the attempts of one read or write: 200 ms doubling to 2 s, `full` jitter. */
export const STATE_RETRY_BACKOFF: Readonly<Required<BackoffOptions>> = { baseMs: 200, maxMs: 2_000, jitter: "full" };

const validateState = createAjv().compile(rolloutStateSchema);

/**
 * Reads and writes the rollout state object (`s3://bucket/key`). One writer
 * needs no conditional writes: a newer rollout simply overwrites the object,
 * and the older driver sees the changed candidate `id` on its next read and
 * stops.
 *
 * Reads are bounded in bytes (at most {@link MAX_STATE_BYTES}, else
 * STATE_TOO_LARGE), in shape (protocol/bounded-json.ts: depth, values, keys,
 * before anything is built) and in time (each attempt has a deadline,
 * `readTimeoutMs`, covering the request and the body), validated against the
 * rollout state schema with unknown fields dropped, and the stable config is
 * validated as a config (with the reader's own `secretsDir` and file-check
 * mode) and checked against its hash, so a corrupted or forged object is
 * refused with an error saying what is wrong and never makes an agent push
 * anything. Error bodies are bounded by the client (aws-clients.ts).
 *
 * A missing object reads as null; what null means is the caller's rule
 * (docs/rollout-faults.md: never "no rollout" once one has been seen). A 404
 * that is a delete marker (a versioned bucket: the object existed and was
 * deleted) is STATE_MISSING, never null. Calls are retried with back-off a
 * bounded number of times.
 *
 * IAM: `s3:GetObject` (agents and driver) and `s3:PutObject` (driver only)
 * on the one object; nothing else.
 */
export class RolloutStateStore {
  readonly location: S3Location;
  readonly #s3: S3Client;
  readonly #owned: boolean;
  readonly #attempts: number;
  readonly #backoff: BackoffOptions;
  readonly #readTimeoutMs: number;
  readonly #secrets: StateSecretsCheck;
  readonly #cacheFile: string | null;

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
    this.#backoff = { ...STATE_RETRY_BACKOFF, ...options.backoff };
    this.#readTimeoutMs = options.readTimeoutMs ?? 10_000;
    this.#secrets = options.secrets ?? {};
    this.#cacheFile = options.cacheFile ?? null;
  }

  /** `s3://bucket/key`. */
  get url(): string {
    return `s3://${this.location.bucket}/${this.location.key}`;
  }

  /**
   * Reads the state: null when the object does not exist. Throws
   * {@link RolloutStateError}: STATE_READ_FAILED (S3 unreachable, refusing,
   * or not answering within the deadline, after the retries),
   * STATE_MISSING (a delete marker), STATE_TOO_LARGE, STATE_INVALID (not
   * JSON, beyond the shape limits, not the schema, a stable config that is
   * invalid or does not match its hash).
   */
  async read(signal?: AbortSignal): Promise<RolloutState | null> {
    const body = await this.#retry("read", signal, async () => {
      const deadline = AbortSignal.timeout(this.#readTimeoutMs);
      const abortSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
      const started = performance.now();
      try {
        const res = await this.#s3.send(
          new (awsSdk.s3().GetObjectCommand)({ Bucket: this.location.bucket, Key: this.location.key }),
          { abortSignal },
        );
        if (res.ContentLength !== undefined && res.ContentLength > MAX_STATE_BYTES) {
          await (res.Body as { destroy?: () => void } | undefined)?.destroy?.();
          throw new RolloutStateError(
            "STATE_TOO_LARGE",
            `${this.url} is ${res.ContentLength} bytes; the limit is ${MAX_STATE_BYTES}`,
          );
        }
        const left = Math.max(1, this.#readTimeoutMs - (performance.now() - started));
        const read = await readBoundedStream(
          res.Body,
          { maxBytes: MAX_STATE_BYTES, timeoutMs: left, ...(signal ? { signal } : {}) },
          this.url,
        );
        if (read.ok) return read.bytes;
        if (read.code === "TOO_LARGE") throw new RolloutStateError("STATE_TOO_LARGE", read.message);
        if (read.code === "ABORTED") throw Object.assign(new Error(read.message), { name: "AbortError" });
        throw Object.assign(new Error(read.message), { name: read.code === "TIMEOUT" ? "TimeoutError" : "ReadError" });
      } catch (err) {
        if (deadline.aborted && !signal?.aborted && !(err instanceof RolloutStateError)) {
          throw Object.assign(new Error(`no answer within ${this.#readTimeoutMs} ms`), { name: "TimeoutError" });
        }
        if (isDeleteMarker(err)) {
          throw new RolloutStateError(
            "STATE_MISSING",
            `${this.url} was deleted (a delete marker): the rollout record is gone; restore the previous version`,
          );
        }
        if (isNoSuchKey(err)) return null;
        throw err;
      }
    });
    if (body === null) return null;
    const state = await parseState(body, this.url, this.#secrets);
    if (this.#cacheFile !== null) await this.#writeCache(body);
    return state;
  }

  /**
   * The last state this store read, from its cache file (see `cacheFile`),
   * checked exactly as a read from S3; null when there is none or it cannot
   * be used (the reason is returned, never thrown).
   */
  async readCache(): Promise<{ state: RolloutState | null; error: string | null }> {
    if (this.#cacheFile === null) return { state: null, error: null };
    let bytes: Buffer;
    try {
      const fd = await open(this.#cacheFile, "r");
      try {
        const { size } = await fd.stat();
        if (size > MAX_STATE_BYTES) return { state: null, error: `${this.#cacheFile}: ${size} bytes, over the limit` };
        bytes = await fd.readFile();
      } finally {
        await fd.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { state: null, error: code === "ENOENT" ? null : `${this.#cacheFile}: ${code ?? String(err)}` };
    }
    try {
      return { state: await parseState(bytes, this.#cacheFile, this.#secrets), error: null };
    } catch (err) {
      return { state: null, error: (err as Error).message };
    }
  }

  async #writeCache(bytes: Buffer): Promise<void> {
    const file = this.#cacheFile as string;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, bytes, { mode: 0o600 });
      await rename(tmp, file);
    } catch {
      // A memory that cannot be written only costs what it would have saved; S3 stays the record.
      await unlink(tmp).catch(() => {});
    }
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
        new (awsSdk.s3().PutObjectCommand)({
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
        if ((err as Error)?.name === "AbortError" && signal?.aborted) throw err;
        last = err;
        if (!retryable(err)) break;
      }
    }
    const code = what === "read" ? "STATE_READ_FAILED" : "STATE_WRITE_FAILED";
    throw new RolloutStateError(code, `cannot ${what} ${this.url}: ${describe(last)}`, { cause: last });
  }
}

/** Parses and checks a state object's text or bytes; throws {@link RolloutStateError} STATE_INVALID / STATE_TOO_LARGE. */
export async function parseState(
  input: string | Uint8Array,
  where = "the rollout state",
  secrets: StateSecretsCheck = {},
): Promise<RolloutState> {
  const parsed = parseBoundedJson(input, { maxBytes: MAX_STATE_BYTES }, where);
  if (!parsed.ok) {
    throw new RolloutStateError(parsed.code === "TOO_LARGE" ? "STATE_TOO_LARGE" : "STATE_INVALID", parsed.message);
  }
  const value = parsed.value;
  if (!validateState(value)) throw new RolloutStateError("STATE_INVALID", `${where}: ${ajvSummary()}`);
  const state = knownFields(value as RolloutState);
  if (state.stable !== null) {
    const checked = await validateConfigValue(state.stable.config, {
      source: `${where} stable.config`,
      ...(secrets.secretsDir === undefined ? {} : { secretsDir: secrets.secretsDir }),
      ...(secrets.checkFiles === undefined ? {} : { checkFiles: secrets.checkFiles }),
    });
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

/** The schema's fields only: whatever else a writer added is dropped, never kept or passed on. */
function knownFields(v: RolloutState): RolloutState {
  const c = v.candidate;
  const candidate: RolloutCandidate | null =
    c === null
      ? null
      : {
          id: c.id,
          hash: c.hash,
          revision: c.revision,
          state: c.state,
          step: c.step,
          threshold: c.threshold,
          reason:
            c.reason === null
              ? null
              : {
                  step: c.reason.step,
                  criterion: c.reason.criterion,
                  pods: [...c.reason.pods],
                  detail: c.reason.detail,
                },
        };
  return {
    type: v.type,
    updatedAt: v.updatedAt,
    stable: v.stable === null ? null : { hash: v.stable.hash, revision: v.stable.revision, config: v.stable.config },
    candidate,
  };
}

function ajvSummary(): string {
  const e = validateState.errors?.[0];
  if (!e) return "does not match the rollout state schema";
  return `${e.instancePath || "/"}: ${e.message ?? "is invalid"} (rollout state schema)`;
}

function isDeleteMarker(err: unknown): boolean {
  const headers = (err as { $response?: { headers?: Record<string, string> } })?.$response?.headers;
  return headers?.["x-amz-delete-marker"] === "true";
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
