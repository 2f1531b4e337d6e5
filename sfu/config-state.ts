/**
 * The SFU's applied configuration as an immutable snapshot. Applying a new
 * version builds a new deep-frozen snapshot and swaps one reference: code that
 * captured the old snapshot (a peer connection being created) keeps a
 * consistent view, and nothing that already exists is touched. Listeners run
 * synchronously after the swap (log level, `config` events to browsers).
 */
import type { ConfigHash, NormalisedConfig } from "../protocol/index.ts";
import type { TurnEntry } from "./ice-servers.ts";

/** One applied config version. Deep-frozen. */
export interface ConfigSnapshot {
  /** Version number from the agent (standalone mode: 1). */
  readonly version: number;
  /** `sha256:` hash of the config as pushed. */
  readonly hash: ConfigHash;
  /** Git revision when the agent knew it. */
  readonly revision: string | null;
  readonly config: Readonly<NormalisedConfig>;
  /**
   * `turnServers` with their secret files read (static credentials, or the
   * shared secret to mint per-participant credentials from); see
   * sfu/ice-servers.ts. Never logged or exposed.
   */
  readonly turn: readonly TurnEntry[];
  /** Secret reloads applied to this version (0 after a config apply). */
  readonly secretsReloads: number;
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

  /**
   * Replaces the current snapshot with `next`, which must carry the same
   * version and hash (only the secrets read from files differ: a secrets
   * reload), without notifying listeners: nothing a listener reports (the
   * applied version, the port) changed. Sessions that exist keep the
   * snapshot they captured; joins after this get credentials from `next`.
   * Throws a TypeError when version or hash differ.
   */
  replaceSecrets(next: ConfigSnapshot): void {
    const c = this.#current;
    if (c === null || c.version !== next.version || c.hash !== next.hash) {
      throw new TypeError("replaceSecrets: the snapshot must keep the applied version and hash");
    }
    this.#current = deepFreeze(next);
  }

  /** Registers a listener; returns its remover. */
  onChange(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
