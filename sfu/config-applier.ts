/**
 * Applies one config version to the running SFU without disturbing live
 * calls: checks it, resolves TURN credentials, swaps the immutable snapshot and sets
 * the log level. Never touches an existing session: peer connections keep the
 * snapshot they were created under. Shared by the agent client and the
 * standalone `--config FILE` mode.
 *
 * Outcomes are returned values (ack or a NACK error), never throws.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import {
  configHash,
  type NackCode,
  type NormalisedConfigV1,
  SUPPORTED_SCHEMA_VERSIONS,
  validateConfigValue,
} from "../protocol/index.ts";
import type { ClientIceServer, ConfigSnapshot, ConfigState } from "./config-state.ts";

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

/** Dependencies of {@link ConfigApplier}. */
export interface ConfigApplierOptions {
  state: ConfigState;
  /** The process's root logger; its level follows `logging.level`. */
  logger: Logger;
  /** `--port`: when set, `server.port` has no effect and changing it is acked. */
  portOverride?: number | null;
  /** Clock for `appliedAt` (ms since epoch). */
  now?: () => number;
  /** Reads a credential file (injectable for tests). */
  readCredential?: (path: string) => Promise<string>;
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
    // The credential files are read at apply time below: unreadable is APPLY_FAILED (it can pass), not invalid.
    const result = await validateConfigValue(input.config, { source: `config v${input.version}`, checkFiles: false });
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
    let iceServers: ClientIceServer[];
    try {
      iceServers = await this.#resolveIceServers(config);
    } catch (err) {
      const e = err as Error & { path?: string; pointer?: string };
      return fail("APPLY_FAILED", e.message, e.pointer);
    }
    const snapshot: ConfigSnapshot = {
      version: input.version,
      hash: input.hash as ConfigSnapshot["hash"],
      revision: input.revision,
      config,
      iceServers,
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

  async #resolveIceServers(config: NormalisedConfigV1): Promise<ClientIceServer[]> {
    const read = this.#o.readCredential ?? ((p: string) => readFile(p, "utf8"));
    const out: ClientIceServer[] = [];
    for (const [i, t] of config.webrtc.turnServers.entries()) {
      const server: ClientIceServer = { urls: [...t.urls] };
      if (t.username !== undefined) server.username = t.username;
      if (t.credential !== undefined) server.credential = t.credential;
      if (t.credentialFile !== undefined) {
        try {
          server.credential = (await read(t.credentialFile)).trim();
        } catch (err) {
          const e = new Error(
            `cannot read credentialFile of TURN server ${i}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
          );
          (e as Error & { pointer: string }).pointer = `/webrtc/turnServers/${i}/credentialFile`;
          throw e;
        }
      }
      out.push(server);
    }
    return out;
  }
}

function fail(code: NackCode, message: string, path?: string): ApplyOutcome {
  return { ok: false, error: path === undefined ? { code, message } : { code, message, path } };
}
