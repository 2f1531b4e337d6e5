/**
 * Runs the conformance cases (cases.ts) in order against the SFU that dials
 * into a {@link ConformanceServer}, and reports one line per case:
 * `PASS name` (optionally followed by indented `  note: ...` lines),
 * `FAIL name: reason`, or `SKIP name: not applicable: reason` for a case
 * about an optional capability the SFU does not advertise (schemaVersion 2,
 * `hello.features`): a skip is printed and counted apart, never as a pass. The cases share a {@link SuiteContext}: the live
 * session, the version counter and what the SFU has acked so far.
 *
 * Failing cases are returned values; the runner only throws on programming
 * errors inside a case, which it reports as a failure of that case.
 */
import { CloseCode } from "../../protocol/close-codes.ts";
import type { NormalisedConfigV1 } from "../../protocol/config-schema.ts";
import { configHash } from "../../protocol/hash.ts";
import type { AckMessage, AppliedRef, NackMessage } from "../../protocol/messages-schema.ts";
import { secretsReloadMessage } from "../../protocol/secrets-reload.ts";
import type { ConformanceServer } from "./kit-server.ts";
import type { SfuSession } from "./sfu-session.ts";

/** What a case concluded; `skipped` (with `ok: true`) = not applicable to this SFU, counted apart from passes. */
export type CaseResult = { ok: true; notes: string[]; skipped?: string } | { ok: false; reason: string };

/** One scripted check. */
export interface ConformanceCase {
  /** Short kebab-case name printed on the PASS/FAIL line. */
  name: string;
  /** One sentence: what the SFU must do. */
  summary: string;
  run: (ctx: SuiteContext) => Promise<CaseResult>;
}

/** A config message as the kit sent it. */
export interface SentConfig {
  nonce: number;
  version: number;
  hash: string;
}

/** Knobs of {@link SuiteContext.push} for deliberately odd messages. */
export interface PushOverrides {
  /** Nonce to send instead of the next one. */
  nonce?: number;
  /** Hash to send instead of the config's own. */
  hash?: string;
  /** `schemaVersion` of the message (default: the config's, else 1). */
  schemaVersion?: number;
  /** Object to serialise as `config` instead of `config` itself (same content, other key order). */
  wire?: unknown;
  /** Pretty-print the frame (whitespace the SFU must not hash). */
  pretty?: boolean;
}

/** Outcome of waiting for the reply to a config. */
export type ReplyOutcome = { ok: true; message: AckMessage | NackMessage } | { ok: false; reason: string };

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  server: ConformanceServer;
  /** The valid base config every pushed config derives from. */
  base: NormalisedConfigV1;
  /** How long to wait for each reply, close and re-dial, ms. */
  stepTimeoutMs: number;
  /** How long to wait for the SFU's first dial-in, ms. */
  firstDialTimeoutMs: number;
  /** Monotonic clock in milliseconds. */
  clock: () => number;
  /** Receives each output line (without newline). */
  report: (line: string) => void;
}

/** Totals of a run. */
export interface SuiteSummary {
  passed: number;
  failed: number;
  /** Cases not applicable to this SFU (an optional capability it does not advertise). */
  skipped: number;
  results: { name: string; result: CaseResult }[];
}

/** State shared by the cases of one run, and the helpers they use. */
export class SuiteContext {
  readonly server: ConformanceServer;
  readonly base: SuiteOptions["base"];
  readonly stepTimeoutMs: number;
  readonly firstDialTimeoutMs: number;
  readonly clock: () => number;
  /** The current connection (possibly closed). */
  session: SfuSession | null = null;
  /** Why the SFU is considered gone (later cases then fail at once), or null. */
  gone: string | null = null;
  /** Highest config version used so far (continues from hello.applied). */
  version = 0;
  /** What the SFU should report as applied: its last acked version, or its hello's. */
  applied: AppliedRef = null;
  /**
   * False after a config went unanswered or was answered with a frame the
   * kit refused: the SFU may have applied it, so {@link applied} is not
   * checked until an ack, nack or hello says what is in force again.
   */
  appliedKnown = true;
  #serial = 0;

  constructor(options: SuiteOptions) {
    this.server = options.server;
    this.base = options.base;
    this.stepTimeoutMs = options.stepTimeoutMs;
    this.firstDialTimeoutMs = options.firstDialTimeoutMs;
    this.clock = options.clock;
  }

  /** A fresh serial number for config variants. */
  nextSerial(): number {
    this.#serial += 1;
    return this.#serial;
  }

  /** Adopts a session that said hello: later versions continue from what it applied. */
  adopt(session: SfuSession): void {
    this.session = session;
    const applied = session.hello?.applied ?? null;
    if (applied) this.version = Math.max(this.version, applied.version);
  }

  /**
   * The open session, waiting up to the step timeout for a re-dial when the
   * last one closed (plus `extraMs` when the SFU is expected to back off
   * first). On a timeout the SFU is marked gone.
   */
  async live(extraMs = 0): Promise<{ ok: true; session: SfuSession } | { ok: false; reason: string }> {
    if (this.gone !== null) return { ok: false, reason: this.gone };
    if (this.session?.isOpen) return { ok: true, session: this.session };
    const waitMs = this.stepTimeoutMs + extraMs;
    const dial = await this.server.nextDial(waitMs);
    if (!dial.ok) {
      if (dial.timeout) this.gone = `the SFU is gone: it did not re-dial within ${waitMs} ms`;
      return { ok: false, reason: dial.timeout ? (this.gone ?? dial.reason) : `re-dial failed: ${dial.reason}` };
    }
    this.adopt(dial.session);
    return { ok: true, session: dial.session };
  }

  /** Sends `config` as the next config message on `session`; returns what was sent. */
  push(session: SfuSession, config: unknown, overrides: PushOverrides = {}): SentConfig {
    const nonce = overrides.nonce ?? session.lastNonce + 1;
    session.lastNonce = Math.max(session.lastNonce, nonce);
    this.version += 1;
    const hash = overrides.hash ?? configHash(config);
    const schemaVersion =
      overrides.schemaVersion ?? ((config as { schemaVersion?: unknown }).schemaVersion as number | undefined) ?? 1;
    const message = {
      type: "config",
      nonce,
      version: this.version,
      hash,
      revision: `conformance-${this.version}`,
      schemaVersion,
      config: overrides.wire ?? config,
    };
    session.sendRaw(overrides.pretty ? JSON.stringify(message, null, 2) : JSON.stringify(message));
    return { nonce, version: this.version, hash };
  }

  /**
   * Sends `secrets-reload` naming `applied` (the config the SFU should run)
   * with `generation`, as the next message; returns what its reply must echo.
   */
  reloadSecrets(session: SfuSession, applied: { version: number; hash: string }, generation: number): SentConfig {
    const nonce = session.lastNonce + 1;
    session.lastNonce = nonce;
    session.sendRaw(JSON.stringify(secretsReloadMessage(nonce, applied, generation)));
    return { nonce, version: applied.version, hash: applied.hash };
  }

  /** Waits for the reply to `sent`, skipping nothing: the next frame must be it. */
  async reply(session: SfuSession, sent: SentConfig): Promise<ReplyOutcome> {
    const event = await session.next(this.stepTimeoutMs);
    if (event.kind !== "reply") this.appliedKnown = false;
    switch (event.kind) {
      case "timeout":
        return { ok: false, reason: `no reply to nonce ${sent.nonce} within ${this.stepTimeoutMs} ms` };
      case "closed":
        return { ok: false, reason: `the SFU closed the link (${describeClose(event.close)}) instead of replying` };
      case "invalid":
        return {
          ok: false,
          reason: `reply refused by the protocol parser (kit closed ${event.closeCode}): ${event.reason}`,
        };
      case "reply": {
        const m = event.message;
        const echoes = m.nonce === sent.nonce && m.version === sent.version && m.hash === sent.hash;
        if (!echoes) this.appliedKnown = false;
        if (m.nonce > session.lastNonce) {
          session.close(CloseCode.BAD_NONCE, `reply to nonce ${m.nonce}, never issued`);
          return { ok: false, reason: `reply nonce ${m.nonce} was never issued (sent ${sent.nonce}); kit closed 4004` };
        }
        if (m.nonce !== sent.nonce) {
          return { ok: false, reason: `reply nonce ${m.nonce} does not echo the config's nonce ${sent.nonce}` };
        }
        if (m.version !== sent.version || m.hash !== sent.hash) {
          session.close(CloseCode.PROTOCOL_ERROR, "reply version or hash differs from the config's");
          const got = `version ${m.version} hash ${m.hash}`;
          return {
            ok: false,
            reason: `${m.type} ${got} does not echo the config's version ${sent.version} hash ${sent.hash}; kit closed 4000`,
          };
        }
        if (m.type === "ack") {
          this.applied = { version: m.version, hash: m.hash };
          this.appliedKnown = true;
        }
        return { ok: true, message: m };
      }
    }
  }

  /** Checks a reply (already checked by {@link reply} to echo nonce, version and hash) is an ack. */
  checkAck(reply: ReplyOutcome): CaseResult {
    if (!reply.ok) return { ok: false, reason: reply.reason };
    const m = reply.message;
    if (m.type === "nack") return { ok: false, reason: `nacked ${m.error.code}: ${m.error.message}` };
    return { ok: true, notes: [] };
  }

  /**
   * Checks a reply is a nack that reports the still applied
   * config and carries `code` (any code when `code` is null).
   */
  checkNack(reply: ReplyOutcome, code: string | null, ackMeans: string): CaseResult {
    if (!reply.ok) return { ok: false, reason: reply.reason };
    const m = reply.message;
    if (m.type === "ack") return { ok: false, reason: `acked ${ackMeans}` };
    if (!this.appliedKnown) {
      this.applied = m.applied ?? null;
      this.appliedKnown = true;
    } else if (!sameApplied(m.applied, this.applied)) {
      return {
        ok: false,
        reason: `nack.applied is ${JSON.stringify(m.applied)} but the SFU last acked ${JSON.stringify(this.applied)}`,
      };
    }
    if (code !== null && m.error.code !== code) {
      return { ok: false, reason: `nacked ${m.error.code} (${m.error.message}); expected ${code}` };
    }
    return { ok: true, notes: [] };
  }
}

/** True when two applied references name the same version and hash. */
export function sameApplied(a: AppliedRef | undefined, b: AppliedRef | undefined): boolean {
  if (!a || !b) return (a ?? null) === (b ?? null);
  return a.version === b.version && a.hash === b.hash;
}

/** `4001 "bad JSON"`, `1006 (no close frame)`. */
export function describeClose(close: { code: number; reason: string }): string {
  if (close.code === 1006) return "1006, no close frame: did the process crash?";
  return close.reason ? `${close.code} ${JSON.stringify(close.reason)}` : String(close.code);
}

/** Runs `cases` in order and reports each; resolves with the totals. */
export async function runSuite(cases: readonly ConformanceCase[], options: SuiteOptions): Promise<SuiteSummary> {
  const ctx = new SuiteContext(options);
  const summary: SuiteSummary = { passed: 0, failed: 0, skipped: 0, results: [] };
  for (const c of cases) {
    let result: CaseResult;
    try {
      result = await c.run(ctx);
    } catch (err) {
      result = { ok: false, reason: `kit error: ${err instanceof Error ? err.message : String(err)}` };
    }
    summary.results.push({ name: c.name, result });
    if (result.ok && result.skipped !== undefined) {
      summary.skipped += 1;
      options.report(`SKIP ${c.name}: not applicable: ${result.skipped}`);
    } else if (result.ok) {
      summary.passed += 1;
      options.report(`PASS ${c.name}`);
      for (const note of result.notes) options.report(`  note: ${note}`);
    } else {
      summary.failed += 1;
      options.report(`FAIL ${c.name}: ${result.reason}`);
    }
  }
  const skipped = summary.skipped > 0 ? `, ${summary.skipped} skipped (not applicable)` : "";
  options.report(`${summary.passed} passed, ${summary.failed} failed${skipped}`);
  return summary;
}
