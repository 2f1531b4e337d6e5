/**
 * Loads and validates a rollout policy (`rollout.yaml`) with the config
 * loader's YAML rules (one document, unique keys, alias limit, size limit)
 * and its problem format (`FILE:LINE:COL: <pointer>: <message>`), then
 * checks what the schema cannot say (steps in increasing percent, the last
 * at 100) and normalises it (defaults filled in, bake times in ms).
 *
 * Expected failures are returned as `{ ok: false }` values, never thrown.
 */
import { createHash } from "node:crypto";
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from "node:fs";
import { createAjv } from "./ajv.ts";
import { type ConfigProblem, describeSchemaErrors, parseYamlDocument } from "./config-loader.ts";
import {
  ROLLOUT_POLICY_DEFAULTS,
  type RolloutPolicy,
  type RolloutPolicyV1,
  rolloutPolicySchemaV1,
} from "./rollout-schema.ts";

/** Largest rollout policy file accepted, in bytes. */
export const MAX_POLICY_BYTES = 64 * 1024;

/** Why a policy was refused. */
export type PolicyFailureCode = "INVALID_POLICY" | "UNSUPPORTED_SCHEMA" | "NOT_FOUND" | "READ_FAILED";

/** Result of loading a rollout policy. */
export type PolicyLoadResult =
  | { ok: true; source: string; policy: RolloutPolicy }
  | { ok: false; source: string; code: PolicyFailureCode; problems: ConfigProblem[] };

const validate = createAjv().compile(rolloutPolicySchemaV1);

/** Parses a bake duration (`30s`, `5m`, `1.5h`) to milliseconds; null when malformed. */
export function parseBake(text: string): number | null {
  const m = /^(\d{1,6}(?:\.\d{1,3})?)(s|m|h)$/.exec(text);
  if (!m) return null;
  const unit = { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "s" | "m" | "h"];
  return Math.round(Number(m[1]) * unit);
}

/** Reads and loads a policy file (no cache: `validate`, the driver). Never throws for bad input. */
export function loadRolloutPolicyFile(path: string, options: { source?: string } = {}): PolicyLoadResult {
  return new PolicyFileCache().load(path, options);
}

/** Dependencies of {@link PolicyFileCache} (a seam for tests). */
export interface PolicyFileCacheDeps {
  /** Parses policy text; default {@link loadRolloutPolicyText}. */
  parse?: (text: string, options: { source: string }) => PolicyLoadResult;
}

/**
 * A policy file read on every config reading (the agent: every resync and
 * event) is parsed once per change. The file is opened, and while the
 * opened file's identity (device, inode, size, modification and change
 * times, nanoseconds) is the one last read, the last result is returned
 * without reading it; the kubelet's `..data` swap gives every new version a
 * new inode. A new identity with the same content (sha256) is not parsed
 * again either. Identity and content come from the same descriptor, so a
 * swap between the check and the read cannot pair one file's identity with
 * another's content.
 */
export class PolicyFileCache {
  readonly #parse: (text: string, options: { source: string }) => PolicyLoadResult;
  #last: { identity: string; digest: string; source: string; result: PolicyLoadResult } | null = null;

  constructor(deps: PolicyFileCacheDeps = {}) {
    this.#parse = deps.parse ?? loadRolloutPolicyText;
  }

  /** Loads `path` (see the class comment). Never throws for bad input. */
  load(path: string, options: { source?: string } = {}): PolicyLoadResult {
    const source = options.source ?? path;
    const fail = (code: PolicyFailureCode, message: string): PolicyLoadResult => {
      this.#last = null;
      return { ok: false, source, code, problems: [problem("", message)] };
    };
    let fd: number | undefined;
    let bytes: Buffer;
    let identity: string;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      const stat = fstatSync(fd, { bigint: true });
      if (stat.isDirectory()) return fail("READ_FAILED", "is a directory, not a rollout policy");
      if (!stat.isFile()) return fail("READ_FAILED", "is not a regular file");
      if (stat.size > BigInt(MAX_POLICY_BYTES)) {
        return fail("INVALID_POLICY", `file is ${stat.size} bytes; the limit is ${MAX_POLICY_BYTES}`);
      }
      identity = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
      const last = this.#last;
      if (last !== null && last.identity === identity && last.source === source) return last.result;
      const buf = Buffer.allocUnsafe(MAX_POLICY_BYTES + 1);
      let length = 0;
      for (;;) {
        const n = readSync(fd, buf, length, buf.length - length, length);
        length += n;
        if (n === 0 || length > MAX_POLICY_BYTES) break;
      }
      if (length > MAX_POLICY_BYTES) return fail("INVALID_POLICY", `file exceeds ${MAX_POLICY_BYTES} bytes`);
      bytes = buf.subarray(0, length);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT") return fail("NOT_FOUND", "no such file");
      if (e.code === "EISDIR") return fail("READ_FAILED", "is a directory, not a rollout policy");
      if (e.code === "EACCES" || e.code === "EPERM") return fail("READ_FAILED", "permission denied");
      return fail("READ_FAILED", `cannot read: ${e.code ?? e.message}`);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const digest = createHash("sha256").update(bytes).digest("hex");
    const last = this.#last;
    if (last !== null && last.digest === digest && last.source === source) {
      this.#last = { ...last, identity };
      return last.result;
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      return fail("INVALID_POLICY", "file is not valid UTF-8 text");
    }
    const result = this.#parse(text, { source });
    this.#last = { identity, digest, source, result };
    return result;
  }
}

/** Parses, validates and normalises policy text (YAML or JSON). Never throws for bad input. */
export function loadRolloutPolicyText(text: string, options: { source?: string } = {}): PolicyLoadResult {
  const source = options.source ?? "<input>";
  const parsed = parseYamlDocument(text, MAX_POLICY_BYTES);
  if (!parsed.ok) return { ok: false, source, code: "INVALID_POLICY", problems: parsed.problems };
  const value = parsed.value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "empty" : Array.isArray(value) ? "a list" : `a ${typeof value}`;
    return {
      ok: false,
      source,
      code: "INVALID_POLICY",
      problems: [problem("", `a rollout policy must be a mapping with schemaVersion: 1, got ${kind}`)],
    };
  }
  const sv = (value as { schemaVersion?: unknown }).schemaVersion;
  if (typeof sv === "number" && Number.isInteger(sv) && sv !== 1) {
    return {
      ok: false,
      source,
      code: "UNSUPPORTED_SCHEMA",
      problems: [
        {
          ...problem("/schemaVersion", `schemaVersion ${sv} is not supported (supported: 1)`),
          ...parsed.locate("/schemaVersion"),
        },
      ],
    };
  }
  const problems: ConfigProblem[] = [];
  if (!validate(value)) {
    for (const p of describeSchemaErrors(validate.errors ?? [])) {
      const { onKey, ...rest } = p;
      problems.push({ ...rest, ...parsed.locate(p.pointer, onKey) });
    }
  }
  const steps = (value as { steps?: unknown }).steps;
  if (Array.isArray(steps)) {
    let previous = 0;
    for (let i = 0; i < steps.length; i++) {
      const percent = (steps[i] as { percent?: unknown } | null)?.percent;
      if (typeof percent !== "number") continue;
      if (percent <= previous && percent > 0) {
        problems.push({
          ...problem(`/steps/${i}/percent`, `steps must increase: ${percent} follows ${previous}`),
          ...parsed.locate(`/steps/${i}/percent`),
        });
      }
      previous = Math.max(previous, percent);
    }
    const last = steps.at(-1) as { percent?: unknown } | undefined;
    if (steps.length > 0 && typeof last?.percent === "number" && last.percent !== 100) {
      problems.push({
        ...problem(`/steps/${steps.length - 1}/percent`, `the last step must be 100 (percent), got ${last.percent}`),
        ...parsed.locate(`/steps/${steps.length - 1}/percent`),
      });
    }
  }
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
    return { ok: false, source, code: "INVALID_POLICY", problems };
  }
  return { ok: true, source, policy: normalisePolicy(value as RolloutPolicyV1) };
}

/** Fills the defaults of a schema-valid policy. */
export function normalisePolicy(p: RolloutPolicyV1): RolloutPolicy {
  const d = ROLLOUT_POLICY_DEFAULTS;
  const h = p.halt?.health;
  return {
    schemaVersion: 1,
    steps: p.steps.map((s) => ({
      percent: s.percent,
      bakeMs: s.bake === undefined ? d.bakeMs : (parseBake(s.bake) ?? d.bakeMs),
    })),
    halt: {
      health: {
        minJoins: h?.minJoins ?? d.minJoins,
        maxJoinFailureRate: h?.maxJoinFailureRate ?? d.maxJoinFailureRate,
        maxIceFailureRate: h?.maxIceFailureRate ?? d.maxIceFailureRate,
        maxRatioToBaseline: h?.maxRatioToBaseline ?? d.maxRatioToBaseline,
      },
      noTraffic: p.halt?.noTraffic ?? d.noTraffic,
    },
  };
}

/** True when a parsed YAML/JSON value looks like a rollout policy (schemaVersion and a `steps` list) rather than a config. */
export function looksLikeRolloutPolicy(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return "steps" in v && !("webrtc" in v) && !("server" in v);
}

function problem(pointer: string, message: string): ConfigProblem {
  return { severity: "error", pointer, message, line: null, col: null };
}
