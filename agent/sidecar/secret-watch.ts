/**
 * Notices Secret rotations: the files the desired config names changing
 * content while the config (and so its hash) stays the same, for
 * `secrets-reload`. PROTOCOL.md
 * [section 18](../protocol/PROTOCOL.md#18-secret-files-and-secrets-reload).
 */
import { createHmac, randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { DEFAULT_SECRETS_DIR, readSecretFile, secretFileRefs } from "../../protocol/secret-paths.ts";
import { MountWatch } from "./mount-watch.ts";
import type { SnapshotStore } from "./snapshot-store.ts";

/** Options of {@link SecretWatch}; see {@link SECRET_WATCH_DEFAULTS}. */
export interface SecretWatchOptions {
  /** The secrets directory (watched). */
  secretsDir?: string;
  /** Coalesces a burst of events (a kubelet swap fires several) into one check. */
  debounceMs?: number;
  /** Longest a burst of events may postpone the check. */
  maxDebounceMs?: number;
  /** Re-check interval against missed events; 0 = none. */
  resyncIntervalMs?: number;
}

/** Documented defaults of {@link SecretWatchOptions}. */
export const SECRET_WATCH_DEFAULTS = {
  secretsDir: DEFAULT_SECRETS_DIR,
  debounceMs: 100,
  maxDebounceMs: 1_000,
  resyncIntervalMs: 60_000,
} as const;

/** Dependencies of {@link SecretWatch}. */
export interface SecretWatchDeps {
  logger: Logger;
  /** The desired config names the files to watch. */
  store: SnapshotStore;
}

/**
 * Watches the secret files of the desired config.
 *
 * It watches the secrets directory (a {@link MountWatch}, like the config
 * source: the kubelet swaps the `..data` symlink of a projected Secret
 * volume), re-checks
 * on a slow timer against missed events, and whenever the desired config
 * changes. For each referenced file it keeps a *fingerprint*: an HMAC-SHA256
 * of the content under a random key made at start-up and never stored or
 * shown (or, for a file that cannot be read, the error code). The
 * fingerprint is only ever compared with the previous one: it is never
 * logged, put in `/status` or metrics, or hashed into anything, and the key
 * makes it useless outside this process. The content itself is zeroed once
 * fingerprinted.
 *
 * When a fingerprint changes the {@link SecretWatch.generation} increases by
 * one and listeners are told; the push session then sends `secrets-reload`
 * to an SFU that supports it. The generation starts at 1 (the files as
 * first seen) and is a plain counter, not derived from any secret.
 * A file that becomes unreadable is a change too: the SFU's re-read then
 * fails and it answers `nack APPLY_FAILED`, which is what an operator needs
 * to see.
 */
export class SecretWatch {
  readonly #deps: SecretWatchDeps;
  readonly #opts: Required<SecretWatchOptions>;
  readonly #key = randomBytes(32);
  readonly #listeners = new Set<(generation: number) => void>();
  /** path -> fingerprint of the files the desired config names. */
  #prints = new Map<string, string>();
  #generation = 1;
  #watch: MountWatch | null = null;
  #resync: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;
  #again = false;
  #unsubscribe: (() => void) | null = null;
  #state: "new" | "started" | "stopped" = "new";

  constructor(deps: SecretWatchDeps, options: SecretWatchOptions = {}) {
    const opts = { ...SECRET_WATCH_DEFAULTS, ...options };
    if (!opts.secretsDir) throw new TypeError("SecretWatch: options.secretsDir must not be empty");
    for (const k of ["debounceMs", "maxDebounceMs", "resyncIntervalMs"] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 0) throw new TypeError(`SecretWatch: options.${k} must be >= 0`);
    }
    this.#deps = deps;
    this.#opts = opts;
  }

  /** The rotation counter: 1 for the files as first seen, +1 per change. */
  get generation(): number {
    return this.#generation;
  }

  /** Whether the desired config names any secret file (only then is a reload meaningful). */
  get hasSecrets(): boolean {
    return this.#prints.size > 0;
  }

  /** Registers a listener called with the new generation after each change; returns its unsubscribe function. */
  subscribe(listener: (generation: number) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Fingerprints the files of the current desired config, then watches. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`SecretWatch already ${this.#state}`);
    this.#state = "started";
    this.#unsubscribe = this.#deps.store.subscribe((e) => {
      if (e.type === "desired") this.check();
    });
    await this.#run();
    const { secretsDir: dir, debounceMs, maxDebounceMs } = this.#opts;
    this.#watch = new MountWatch(
      { dir, debounceMs, maxDebounceMs, swapAtOnce: false },
      {
        onChange: () => void this.check(),
        onError: (err) => this.#deps.logger.warn({ err }, "secrets directory watch error"),
      },
    );
    await this.#watch.start();
    this.#scheduleResync();
  }

  /** Stops watching; waits for a check in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    this.#unsubscribe?.();
    if (this.#resync) clearTimeout(this.#resync);
    await this.#watch?.stop();
    this.#watch = null;
    await this.#checking;
    this.#key.fill(0);
  }

  /** Checks the files now (coalesced with a check in progress); resolves when done. */
  check(): Promise<void> {
    if (this.#state !== "started") return Promise.resolve();
    if (this.#checking) {
      this.#again = true;
      return this.#checking;
    }
    return this.#run();
  }

  #scheduleResync(): void {
    if (this.#state !== "started" || this.#opts.resyncIntervalMs === 0) return;
    this.#resync = setTimeout(() => {
      void this.check().then(() => this.#scheduleResync());
    }, this.#opts.resyncIntervalMs);
    this.#resync.unref();
  }

  async #run(): Promise<void> {
    const run = (async () => {
      do {
        this.#again = false;
        await this.#checkOnce();
      } while (this.#again && this.#state === "started");
    })();
    this.#checking = run;
    try {
      await run;
    } finally {
      this.#checking = null;
    }
  }

  async #checkOnce(): Promise<void> {
    const desired = this.#deps.store.desired();
    const refs = secretFileRefs(desired?.config ?? null);
    const next = new Map<string, string>();
    const changed: string[] = [];
    for (const ref of refs) {
      if (next.has(ref.path)) continue;
      const print = await this.#fingerprint(ref.path);
      next.set(ref.path, print);
      const before = this.#prints.get(ref.path);
      if (before !== undefined && before !== print) changed.push(ref.pointer);
    }
    this.#prints = next;
    if (changed.length === 0 || this.#state !== "started") return;
    this.#generation++;
    // Pointers only: which files changed, never what they hold.
    this.#deps.logger.info({ generation: this.#generation, changed }, "secret files changed");
    for (const l of [...this.#listeners]) l(this.#generation);
  }

  async #fingerprint(path: string): Promise<string> {
    const r = await readSecretFile(path, this.#opts.secretsDir);
    if (!r.ok) return `error:${r.code}`;
    const print = createHmac("sha256", this.#key).update(r.value).digest("base64");
    r.value.fill(0);
    return `ok:${print}`;
  }
}
