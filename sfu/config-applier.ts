/**
 * Applies one config version to the running SFU without disturbing live
 * calls: checks it, reads its TURN secret files (only under the secrets
 * directory), swaps the immutable snapshot and sets the log level. Never
 * touches an existing session: peer connections keep the snapshot they were
 * created under. Shared by the agent client and the standalone `--config
 * FILE` mode.
 *
 * A secrets reload (the agent saw a mounted Secret change while config.yaml
 * stayed the same) re-reads every secret file of the applied version and
 * replaces the snapshot's secrets only; if any read fails the previous
 * secrets stay in use and the failure is returned (`APPLY_FAILED` with the
 * field's pointer).
 *
 * Outcomes are returned values (ack or a NACK error), never throws.
 */
import type { Logger } from "pino";
import {
  configHash,
  DEFAULT_SECRETS_DIR,
  type NackCode,
  SUPPORTED_SCHEMA_VERSIONS,
  validateConfigValue,
} from "../protocol/index.ts";
import type { ConfigSnapshot, ConfigState } from "./config-state.ts";
import { resolveTurnEntries, type SecretReader, sameTurnEntries } from "./ice-servers.ts";

/** A config version to apply (the fields of a `config` message that matter). */
export interface ConfigInput {
  version: number;
  hash: string;
  revision: string | null;
  schemaVersion: number;
  config: unknown;
}

/** Why a version was refused; becomes the NACK's `error`. */
export interface ApplyError {
  code: NackCode;
  message: string;
  path?: string;
}

/** Result of {@link ConfigApplier.apply}. */
export type ApplyOutcome =
  | { ok: true; snapshot: ConfigSnapshot; portIgnored: boolean }
  | { ok: false; error: ApplyError };

/** Result of {@link ConfigApplier.reloadSecrets}: `changed` says whether any secret differs from before. */
export type ReloadOutcome = { ok: true; changed: boolean } | { ok: false; error: ApplyError };

/** Dependencies of {@link ConfigApplier}. */
export interface ConfigApplierOptions {
  state: ConfigState;
  /** The process's root logger; its level follows `logging.level`. */
  logger: Logger;
  /** `--port`: when set, `server.port` has no effect and changing it is acked. */
  portOverride?: number | null;
  /** Clock for `appliedAt` (ms since epoch). */
  now?: () => number;
  /** The one directory secret files are read from (`--secrets-dir`; default `/etc/sfu/secrets`). */
  secretsDir?: string;
  /** Reads a secret file under a directory (injectable for tests; default protocol's readSecretFile). */
  readSecret?: SecretReader;
}

/** Validates and applies config versions onto a {@link ConfigState}. */
export class ConfigApplier {
  readonly #o: ConfigApplierOptions;
  readonly #log: Logger;
  /** Serialises applies so two versions never interleave. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ConfigApplierOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "config" });
  }

  /** Applies `input` after any apply in progress. */
  apply(input: ConfigInput): Promise<ApplyOutcome> {
    const run = this.#queue.then(() => this.#apply(input));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #apply(input: ConfigInput): Promise<ApplyOutcome> {
    const supported = SUPPORTED_SCHEMA_VERSIONS as readonly number[];
    if (!supported.includes(input.schemaVersion)) {
      return fail(
        "UNSUPPORTED_SCHEMA",
        `schemaVersion ${input.schemaVersion} is not supported (supported: ${supported.join(", ")})`,
        "/schemaVersion",
      );
    }
    const inner = (input.config as { schemaVersion?: unknown } | null)?.schemaVersion;
    if (typeof inner === "number" && inner !== input.schemaVersion) {
      return fail(
        "INVALID_CONFIG",
        `message schemaVersion ${input.schemaVersion} differs from config.schemaVersion ${inner}`,
        "/schemaVersion",
      );
    }
    let actualHash: string;
    try {
      actualHash = configHash(input.config);
    } catch (err) {
      return fail("INVALID_CONFIG", `config is not plain JSON: ${(err as Error).message}`);
    }
    if (actualHash !== input.hash) {
      return fail("INVALID_CONFIG", `hash mismatch: message says ${input.hash}, config hashes to ${actualHash}`);
    }
    // The secret files are read at apply time below: unreadable is APPLY_FAILED (it can pass), not invalid.
    // Their path shape (under the secrets directory, no "..") is checked here already.
    const result = await validateConfigValue(input.config, {
      source: `config v${input.version}`,
      checkFiles: false,
      secretsDir: this.#secretsDir,
    });
    if (!result.ok) {
      const first = result.problems[0];
      const code: NackCode = result.code === "UNSUPPORTED_SCHEMA" ? "UNSUPPORTED_SCHEMA" : "INVALID_CONFIG";
      const message = result.problems.map((p) => `${p.pointer || "/"}: ${p.message}`).join("; ");
      return fail(code, message, first?.pointer || undefined);
    }
    const config = result.config;
    const current = this.#o.state.current;
    const override = this.#o.portOverride ?? null;
    if (override === null && current && config.server.port !== current.config.server.port) {
      return fail(
        "RESTART_REQUIRED",
        `server.port ${current.config.server.port} -> ${config.server.port} needs a restart; version ${current.version} stays applied`,
        "/server/port",
      );
    }
    const turn = await resolveTurnEntries(config, this.#secretsDir, this.#o.readSecret);
    if (!turn.ok) return fail("APPLY_FAILED", turn.message, turn.pointer);
    const snapshot: ConfigSnapshot = {
      version: input.version,
      hash: input.hash as ConfigSnapshot["hash"],
      revision: input.revision,
      config,
      turn: turn.entries,
      secretsReloads: 0,
      appliedAt: (this.#o.now ?? Date.now)(),
    };
    if (current && input.version <= current.version) {
      this.#log.warn({ version: input.version, applied: current.version }, "config version did not increase");
    }
    this.#o.state.swap(snapshot, (err) => this.#log.error({ err }, "config listener failed"));
    this.#o.logger.level = config.logging.level;
    for (const w of result.warnings) this.#log.warn({ pointer: w.pointer }, w.message);
    this.#log.info(
      { version: snapshot.version, hash: snapshot.hash, revision: snapshot.revision, codecs: config.webrtc.codecs },
      "config applied",
    );
    const portIgnored = override !== null && config.server.port !== override;
    return { ok: true, snapshot, portIgnored };
  }

  /**
   * Re-reads every secret file of the applied version `applied` (after any
   * apply in progress). Fails with `APPLY_FAILED` when that is not the
   * version and hash in force, or a file cannot be read; the previous
   * secrets then stay in use.
   */
  reloadSecrets(applied: { version: number; hash: string }): Promise<ReloadOutcome> {
    const run = this.#queue.then(() => this.#reloadSecrets(applied));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #reloadSecrets(applied: { version: number; hash: string }): Promise<ReloadOutcome> {
    const current = this.#o.state.current;
    if (current === null) {
      return { ok: false, error: { code: "APPLY_FAILED", message: "no config is applied yet; nothing to reload" } };
    }
    if (current.version !== applied.version || current.hash !== applied.hash) {
      return {
        ok: false,
        error: {
          code: "APPLY_FAILED",
          message: `secrets-reload names version ${applied.version} ${applied.hash}, but version ${current.version} ${current.hash} is applied`,
        },
      };
    }
    const turn = await resolveTurnEntries(current.config, this.#secretsDir, this.#o.readSecret);
    if (!turn.ok) {
      this.#log.warn(
        { pointer: turn.pointer, reason: turn.message },
        "secrets reload failed; previous secrets stay in use",
      );
      return { ok: false, error: { code: "APPLY_FAILED", message: turn.message, path: turn.pointer } };
    }
    const changed = !sameTurnEntries(current.turn, turn.entries);
    this.#o.state.replaceSecrets({ ...current, turn: turn.entries, secretsReloads: current.secretsReloads + 1 });
    this.#log.info({ version: current.version, hash: current.hash, changed }, "secrets reloaded");
    return { ok: true, changed };
  }

  get #secretsDir(): string {
    return this.#o.secretsDir ?? DEFAULT_SECRETS_DIR;
  }
}

function fail(code: NackCode, message: string, path?: string): ApplyOutcome {
  return { ok: false, error: path === undefined ? { code, message } : { code, message, path } };
}
