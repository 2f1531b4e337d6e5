/**
 * The SFU's applied configuration as an immutable snapshot. Applying a new
 * version builds a new deep-frozen snapshot and swaps one reference: code that
 * captured the old snapshot (a peer connection being created) keeps a
 * consistent view, and nothing that already exists is touched. Listeners run
 * synchronously after the swap (log level, `config` events to browsers).
 */
import type { ConfigHash, NormalisedConfigV1 } from "../protocol/index.ts";

/** An ICE server handed to clients (credentials resolved from `credentialFile`). Never log it. */
export interface ClientIceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** One applied config version. Deep-frozen. */
export interface ConfigSnapshot {
  /** Version number from the agent (standalone mode: 1). */
  readonly version: number;
  /** `sha256:` hash of the config as pushed. */
  readonly hash: ConfigHash;
  /** Git revision when the agent knew it. */
  readonly revision: string | null;
  readonly config: Readonly<NormalisedConfigV1>;
  /** `turnServers` with credentials read; for clients only, never logged or exposed. */
  readonly iceServers: readonly ClientIceServer[];
  /** When the snapshot was swapped in (ms since epoch). */
  readonly appliedAt: number;
}

/** Public reference to an applied version: what status, metrics and browsers see. */
export interface AppliedRef {
  version: number;
  hash: string;
}

/** Listener called after a swap with the new and the previous snapshot. */
export type SnapshotListener = (next: ConfigSnapshot, previous: ConfigSnapshot | null) => void;

/** Recursively freezes a JSON-like value and returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** Holds the current snapshot; swaps are atomic reference assignments. */
export class ConfigState {
  #current: ConfigSnapshot | null = null;
  readonly #listeners = new Set<SnapshotListener>();

  /** The applied snapshot, or null before the first config. */
  get current(): ConfigSnapshot | null {
    return this.#current;
  }

  /** `{version, hash}` of the applied snapshot, or null. Never carries secrets. */
  get applied(): AppliedRef | null {
    const c = this.#current;
    return c ? { version: c.version, hash: c.hash } : null;
  }

  /**
   * Swaps in `next` (frozen here if it is not already) and notifies listeners.
   * A throwing listener is isolated: the swap stands, the error goes to `onListenerError`.
   */
  swap(next: ConfigSnapshot, onListenerError: (err: unknown) => void = () => {}): void {
    const previous = this.#current;
    this.#current = deepFreeze(next);
    for (const listener of [...this.#listeners]) {
      try {
        listener(this.#current, previous);
      } catch (err) {
        onListenerError(err);
      }
    }
  }

  /** Registers a listener; returns its remover. */
  onChange(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
