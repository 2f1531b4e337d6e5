/**
 * Watches one directory the kubelet writes (a ConfigMap or Secret volume) and
 * reports its changes, a burst of events coalesced into one call by a
 * debounce that is bounded, so a steady stream of events cannot postpone the
 * call for ever. Used by the config source and the secret watch; PROTOCOL.md
 * [section 18.1](../protocol/PROTOCOL.md#181-the-secrets-directory).
 */
import { basename } from "node:path";
import { type FSWatcher, watch } from "chokidar";

/** What changed: the kubelet's atomic `..data` symlink swap, or anything else in the directory. */
export type MountChange = "swap" | "file";

/** Options of {@link MountWatch}; each caller documents its own defaults. */
export interface MountWatchOptions {
  /** The directory (watched itself, depth 0, symlinks not followed: the kubelet swaps `..data`). */
  dir: string;
  /** Quiet time that ends a burst of events, ms. */
  debounceMs: number;
  /** Longest a burst may postpone the call, ms: an event past it calls at once. */
  maxDebounceMs: number;
  /** Whether a `..data` swap is reported at once (as `swap`) instead of joining the debounce. */
  swapAtOnce: boolean;
}

/** Dependencies of {@link MountWatch}. */
export interface MountWatchDeps {
  /** Called once per coalesced burst (`file`) and, with `swapAtOnce`, at each swap. Must not throw. */
  onChange: (change: MountChange) => void;
  /** The watcher failed; it goes on where it can. */
  onError: (err: unknown) => void;
}

/** A bounded, debounced watch of one mounted directory. {@link start}, then always {@link stop}. */
export class MountWatch {
  readonly #opts: MountWatchOptions;
  readonly #deps: MountWatchDeps;
  #watcher: FSWatcher | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #debounceStarted = 0;

  constructor(options: MountWatchOptions, deps: MountWatchDeps) {
    if (!options.dir) throw new TypeError("MountWatch: options.dir is required");
    for (const k of ["debounceMs", "maxDebounceMs"] as const) {
      if (!Number.isInteger(options[k]) || options[k] < 0) {
        throw new TypeError(`MountWatch: options.${k} must be an integer >= 0`);
      }
    }
    this.#opts = options;
    this.#deps = deps;
  }

  /** Starts watching; resolves once the watcher is ready. */
  async start(): Promise<void> {
    const watcher = watch(this.#opts.dir, {
      depth: 0,
      followSymlinks: false,
      atomic: false,
      ignoreInitial: true,
      ignorePermissionErrors: true,
    });
    this.#watcher = watcher;
    // Both raw and normalised events: inotify can report a rename through only one of them.
    watcher.on("raw", (_event: string, name: string | null) => this.#event(name === null ? null : basename(name)));
    watcher.on("all", (_event: string, path: string) => this.#event(basename(path)));
    watcher.on("error", (err: unknown) => this.#deps.onError(err));
    await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  }

  /** Drops a pending debounced call (the caller is reading now anyway). */
  cancelPending(): void {
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = null;
  }

  /** Stops watching; no call is made after it resolves. Idempotent. */
  async stop(): Promise<void> {
    this.cancelPending();
    const watcher = this.#watcher;
    this.#watcher = null;
    await watcher?.close();
  }

  #event(name: string | null): void {
    if (this.#watcher === null) return;
    if (this.#opts.swapAtOnce && name === "..data") {
      this.#deps.onChange("swap");
      return;
    }
    const now = performance.now();
    if (this.#debounce) {
      clearTimeout(this.#debounce);
      if (now - this.#debounceStarted >= this.#opts.maxDebounceMs) {
        this.#debounce = null;
        this.#deps.onChange("file");
        return;
      }
    } else {
      this.#debounceStarted = now;
    }
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      this.#deps.onChange("file");
    }, this.#opts.debounceMs);
  }
}
