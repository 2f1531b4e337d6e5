/**
 * The config source: watches the mounted ConfigMap directory and reads the
 * config file through the protocol's one pipeline (read, parse, validate,
 * normalise, hash) on every change. PROTOCOL.md
 * [section 8](../protocol/PROTOCOL.md#8-canonical-json-and-the-config-hash).
 */
import { createHash } from "node:crypto";
import { constants as fsConstants, lstatSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  type ConfigProblem,
  formatProblem,
  type LoadFailureCode,
  loadConfigFile,
  MAX_CONFIG_BYTES,
} from "../../protocol/config-loader.ts";
import type { NormalisedConfig } from "../../protocol/config-schema-v2.ts";
import { DEFAULT_SECRETS_DIR } from "../../protocol/secret-paths.ts";
import type { AgentMetrics, WatchEventKind } from "./metrics.ts";
import { MountWatch } from "./mount-watch.ts";

/** A plain file modified this recently (ms) is always re-read (see ConfigSource #identity). */
const RACY_MS = 1_000;

/** One read of the config file. */
export type ConfigReading =
  | { ok: true; config: NormalisedConfig; hash: string; warnings: ConfigProblem[]; trigger: WatchEventKind | "start" }
  | {
      ok: false;
      code: LoadFailureCode;
      /** `sha256:<hex>` of the raw file bytes when they could be read, else null. */
      rawHash: string | null;
      /** Every problem formatted as `FILE:LINE:COL: <pointer>: <message>`, joined by "; ". */
      message: string;
      problems: ConfigProblem[];
      trigger: WatchEventKind | "start";
    };

/** Options of {@link ConfigSource}; see {@link CONFIG_SOURCE_DEFAULTS}. */
export interface ConfigSourceOptions {
  dir: string;
  key: string;
  debounceMs?: number;
  maxDebounceMs?: number;
  resyncIntervalMs?: number;
  notFoundRetries?: number;
  notFoundRetryMs?: number;
  /** The directory secret files named by the config must live under. */
  secretsDir?: string;
}

/**
 * Defaults of the optional {@link ConfigSourceOptions}: a 50 ms debounce
 * bounded at 500 ms, a full re-read every minute, a missing file retried 5
 * times 50 ms apart (a swap can leave the name dangling that long), and the
 * loader's secrets directory.
 */
export const CONFIG_SOURCE_DEFAULTS = {
  debounceMs: 50,
  maxDebounceMs: 500,
  resyncIntervalMs: 60_000,
  notFoundRetries: 5,
  notFoundRetryMs: 50,
  secretsDir: DEFAULT_SECRETS_DIR,
} as const;

/** Dependencies of {@link ConfigSource}. */
export interface ConfigSourceDeps {
  logger: Logger;
  /** Called after every read, in order. Must not throw. */
  onReading: (reading: ConfigReading) => void;
  metrics?: AgentMetrics;
}

/**
 * Watches a ConfigMap directory (a {@link MountWatch}) and reports every read
 * of its config file.
 *
 * - The kubelet's atomic update renames a `..data_tmp` symlink over `..data`;
 *   the raw rename event of `..data` triggers a read at once (no added delay:
 *   the swap is already a single atomic step).
 * - Any other event (a plain write, an editor's rename-over, `kubectl cp`) is
 *   coalesced by a short trailing debounce (`debounceMs`, bounded by
 *   `maxDebounceMs`) so a burst of writes yields one read of the final bytes.
 * - A slow timer (`resyncIntervalMs`) re-reads anyway, against missed events.
 * - A missing file (ENOENT) is retried `notFoundRetries` times
 *   `notFoundRetryMs` apart before it is reported: during a swap the name
 *   can briefly dangle.
 * - Reads never overlap: an event during a read queues exactly one re-read.
 *
 * Every read is reported through `onReading`; deduplication (same hash) is
 * the store's job.
 */
export class ConfigSource {
  readonly #deps: ConfigSourceDeps;
  readonly #opts: Required<ConfigSourceOptions>;
  readonly #path: string;
  #watch: MountWatch | null = null;
  #resync: NodeJS.Timeout | null = null;
  #reading: Promise<void> | null = null;
  #again: WatchEventKind | null = null;
  #state: "new" | "started" | "stopped" = "new";
  /** Identity of the file at the last read (see #identity); null = read next time. */
  #lastIdentity: { key: string; racy: boolean } | null = null;

  constructor(deps: ConfigSourceDeps, options: ConfigSourceOptions) {
    const opts = { ...CONFIG_SOURCE_DEFAULTS, ...options };
    if (!opts.dir) throw new TypeError("ConfigSource: options.dir is required");
    if (!opts.key || opts.key.includes("/")) throw new TypeError("ConfigSource: options.key must be a file name");
    for (const k of [
      "debounceMs",
      "maxDebounceMs",
      "resyncIntervalMs",
      "notFoundRetries",
      "notFoundRetryMs",
    ] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 0)
        throw new TypeError(`ConfigSource: options.${k} must be an integer >= 0`);
    }
    this.#deps = deps;
    this.#opts = opts;
    this.#path = join(opts.dir, opts.key);
  }

  /** Path of the watched config file. */
  get path(): string {
    return this.#path;
  }

  /** Reads the file once (reported with trigger "start"), then watches. Resolves when the watcher is ready. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`ConfigSource already ${this.#state}`);
    this.#state = "started";
    await this.#read("start");
    this.#watch = new MountWatch(
      {
        dir: this.#opts.dir,
        debounceMs: this.#opts.debounceMs,
        maxDebounceMs: this.#opts.maxDebounceMs,
        swapAtOnce: true,
      },
      {
        onChange: (change) => this.trigger(change),
        onError: (err) => this.#deps.logger.warn({ err }, "config watch error"),
      },
    );
    await this.#watch.start();
    this.#scheduleResync();
    this.#deps.logger.info({ dir: this.#opts.dir, key: this.#opts.key }, "watching config directory");
  }

  /** Stops watching; waits for a read in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    if (this.#resync) clearTimeout(this.#resync);
    this.#again = null;
    await this.#watch?.stop();
    this.#watch = null;
    await this.#reading;
  }

  /** Requests a read now (coalesced with a read in progress). */
  trigger(kind: WatchEventKind): void {
    if (this.#state !== "started") return;
    if (kind !== "file") this.#watch?.cancelPending();
    if (this.#reading) {
      this.#again ??= kind;
      return;
    }
    void this.#read(kind);
  }

  #scheduleResync(): void {
    if (this.#state !== "started" || this.#opts.resyncIntervalMs === 0) return;
    this.#resync = setTimeout(() => {
      this.trigger("resync");
      this.#scheduleResync();
    }, this.#opts.resyncIntervalMs);
    this.#resync.unref();
  }

  async #read(kind: WatchEventKind | "start"): Promise<void> {
    const run = this.#readOnce(kind);
    this.#reading = run;
    try {
      await run;
    } finally {
      this.#reading = null;
    }
    const again = this.#again;
    this.#again = null;
    if (again !== null && this.#state === "started") await this.#read(again);
  }

  /**
   * `dev:ino:size:mtime:ctime` of the file behind the key (symlinks followed),
   * or null when it cannot be stat'ed. Files under a kubelet timestamped
   * directory are never modified in place, so their identity is exact. A plain
   * file modified within the last {@link RACY_MS} is "racy" (as in Git): file
   * times are coarse, so a same-size write in the same tick would keep the
   * identity; a racy identity is never used to skip a read. Synchronous, like
   * the loader's read: two stats of a local file, with no await for the
   * watcher's callbacks to slip in between.
   */
  #identity(): { key: string; racy: boolean } | null {
    try {
      const l = lstatSync(this.#path);
      const s = statSync(this.#path, { bigint: true });
      const racy = !l.isSymbolicLink() && Date.now() - Number(s.mtimeMs) < RACY_MS;
      return { key: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, racy };
    } catch {
      return null;
    }
  }

  async #readOnce(kind: WatchEventKind | "start"): Promise<void> {
    if (kind !== "start") this.#deps.metrics?.watchEvents.inc({ kind });
    // One kubelet swap fires several events (the ..data rename, the new and the
    // old timestamped directory, the key's symlink): skip the parse when the
    // file (followed through its symlinks) is the very file read last time and
    // that identity was not "racy" (see #identity). The resync timer always
    // reads in full.
    const identity = this.#identity();
    const last = this.#lastIdentity;
    if (
      kind !== "resync" &&
      kind !== "start" &&
      identity !== null &&
      last !== null &&
      !last.racy &&
      identity.key === last.key
    ) {
      return;
    }
    this.#lastIdentity = identity;
    let result = await loadConfigFile(this.#path, { source: this.#opts.key, secretsDir: this.#opts.secretsDir });
    for (let i = 0; !result.ok && result.code === "NOT_FOUND" && i < this.#opts.notFoundRetries; i++) {
      await new Promise((r) => setTimeout(r, this.#opts.notFoundRetryMs));
      if (this.#state === "stopped") return;
      this.#lastIdentity = await this.#identity();
      result = await loadConfigFile(this.#path, { source: this.#opts.key, secretsDir: this.#opts.secretsDir });
    }
    if (result.ok) {
      this.#deps.onReading({
        ok: true,
        config: result.config,
        hash: result.hash,
        warnings: result.warnings,
        trigger: kind,
      });
      return;
    }
    const rawHash =
      result.code === "INVALID_CONFIG" || result.code === "UNSUPPORTED_SCHEMA" ? await rawHashOf(this.#path) : null;
    this.#deps.onReading({
      ok: false,
      code: result.code,
      rawHash,
      message: result.problems.map((p) => formatProblem(this.#opts.key, p)).join("; "),
      problems: result.problems,
      trigger: kind,
    });
  }
}

/**
 * `sha256:<hex>` of the raw bytes of the file at `path`, or null when it
 * cannot be read or is larger than the loader reads (a refused file can be
 * any size: hashing it must not read gigabytes).
 */
async function rawHashOf(path: string): Promise<string | null> {
  try {
    const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.size > MAX_CONFIG_BYTES) return null;
      const hash = createHash("sha256");
      const buf = Buffer.allocUnsafe(64 * 1024);
      let total = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, total);
        if (bytesRead === 0) break;
        total += bytesRead;
        if (total > MAX_CONFIG_BYTES) return null;
        hash.update(buf.subarray(0, bytesRead));
      }
      return `sha256:${hash.digest("hex")}`;
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}
