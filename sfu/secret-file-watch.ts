/**
 * Secret rotation for the standalone `sfu-server --config FILE` mode, where
 * no agent sends `secrets-reload` (PROTOCOL.md section 18): the SFU watches
 * its secrets directory itself and, on a change, takes the same path a
 * `secrets-reload` takes ({@link ConfigApplier.reloadSecrets}): every secret
 * file of the applied config is re-read, new joiners get credentials from
 * the new secret, live sessions are untouched, and an unreadable file keeps
 * the previous secret in use.
 *
 * Watching is like the agent's: chokidar on the directory (depth 0, the
 * kubelet swaps the `..data` symlink of a projected Secret volume), a burst
 * of events debounced into one re-read, and a slow re-read timer against
 * missed events. The applier compares what it read with what it held, so a
 * re-read that changed nothing changes nothing. Only transitions are
 * reported (a rotation applied, a re-read failing, failing no more): a file
 * that stays unreadable is not logged at every resync. No secret is ever
 * logged; pointers only.
 */
import { type FSWatcher, watch } from "chokidar";
import type { Logger } from "pino";
import { DEFAULT_SECRETS_DIR } from "../protocol/index.ts";
import type { ConfigApplier } from "./config-applier.ts";
import type { ConfigState } from "./config-state.ts";

/** Options of {@link SecretFileWatch}; see {@link SECRET_FILE_WATCH_DEFAULTS}. */
export interface SecretFileWatchOptions {
  /** The secrets directory (watched). */
  secretsDir?: string;
  /** Coalesces a burst of events (a kubelet swap fires several) into one re-read (ms). */
  debounceMs?: number;
  /** Re-read interval against missed events (ms); 0 = none. */
  resyncIntervalMs?: number;
}

/** Documented defaults of {@link SecretFileWatchOptions} (those of the agent's secret watch). */
export const SECRET_FILE_WATCH_DEFAULTS = {
  secretsDir: DEFAULT_SECRETS_DIR,
  debounceMs: 100,
  resyncIntervalMs: 60_000,
} as const;

/** Dependencies of {@link SecretFileWatch}. */
export interface SecretFileWatchDeps {
  logger: Logger;
  applier: ConfigApplier;
  state: ConfigState;
  /** Called with `ack` for a rotation applied and `nack` for a re-read that started failing. */
  onReload?: (outcome: "ack" | "nack") => void;
}

/** Watches the secrets directory and re-reads the applied config's secret files on change. start() / stop(). */
export class SecretFileWatch {
  readonly #deps: SecretFileWatchDeps;
  readonly #opts: Required<SecretFileWatchOptions>;
  #watcher: FSWatcher | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #resync: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  /** The pointer of the file whose re-read is failing, or null. */
  #failing: string | null = null;
  #state: "new" | "started" | "stopped" = "new";

  constructor(deps: SecretFileWatchDeps, options: SecretFileWatchOptions = {}) {
    const opts = { ...SECRET_FILE_WATCH_DEFAULTS, ...options };
    if (!opts.secretsDir) throw new TypeError("SecretFileWatch: options.secretsDir must not be empty");
    for (const k of ["debounceMs", "resyncIntervalMs"] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 0) throw new TypeError(`SecretFileWatch: options.${k} must be >= 0`);
    }
    this.#deps = deps;
    this.#opts = opts;
  }

  /** Starts watching (resolves once the watcher is ready). */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`SecretFileWatch already ${this.#state}`);
    this.#state = "started";
    const watcher = watch(this.#opts.secretsDir, {
      depth: 0,
      followSymlinks: false,
      atomic: false,
      ignoreInitial: true,
      ignorePermissionErrors: true,
    });
    this.#watcher = watcher;
    watcher.on("raw", () => this.#debounced());
    watcher.on("all", () => this.#debounced());
    watcher.on("error", (err: unknown) => this.#deps.logger.warn({ err }, "secrets directory watch error"));
    await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
    this.#scheduleResync();
  }

  /** Stops watching; waits for a re-read in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    if (this.#debounce) clearTimeout(this.#debounce);
    if (this.#resync) clearTimeout(this.#resync);
    await this.#watcher?.close();
    this.#watcher = null;
    await this.#running;
  }

  /** Re-reads now (coalesced with a re-read in progress); resolves when done. */
  reload(): Promise<void> {
    if (this.#state !== "started") return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = (async () => {
      do {
        this.#again = false;
        await this.#reloadOnce();
      } while (this.#again && this.#state === "started");
    })().finally(() => {
      this.#running = null;
    });
    this.#running = run;
    return run;
  }

  async #reloadOnce(): Promise<void> {
    const applied = this.#deps.state.applied;
    if (applied === null) return;
    const outcome = await this.#deps.applier.reloadSecrets(applied);
    if (!outcome.ok) {
      const pointer = outcome.error.path ?? null;
      if (this.#failing !== (pointer ?? "")) {
        this.#failing = pointer ?? "";
        this.#deps.onReload?.("nack");
      }
      return;
    }
    if (this.#failing !== null) {
      this.#failing = null;
      this.#deps.logger.info({ version: applied.version, hash: applied.hash }, "secret files readable again");
    }
    if (outcome.changed) {
      this.#deps.logger.info({ version: applied.version, hash: applied.hash }, "secret rotation applied");
      this.#deps.onReload?.("ack");
    }
  }

  #debounced(): void {
    if (this.#state !== "started") return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.reload();
    }, this.#opts.debounceMs);
  }

  #scheduleResync(): void {
    if (this.#state !== "started" || this.#opts.resyncIntervalMs === 0) return;
    this.#resync = setTimeout(() => {
      void this.reload().then(() => this.#scheduleResync());
    }, this.#opts.resyncIntervalMs);
    this.#resync.unref();
  }
}
