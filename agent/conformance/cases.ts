/**
 * The scripted conformance cases, in the order they run (PROTOCOL.md).
 * Each case is a pure script over the {@link SuiteContext}; the configs come
 * from test-configs.ts. Cases that drop the link come last so the earlier
 * ones share one connection.
 */
import { BACKOFF_DEFAULTS, backoffDelay } from "../../protocol/backoff.ts";
import { CloseCode } from "../../protocol/close-codes.ts";
import { SUPPORTED_SCHEMA_VERSIONS } from "../../protocol/config-schema.ts";
import { configHash } from "../../protocol/hash.ts";
import type { HealthMessage } from "../../protocol/messages-schema.ts";
import { helloFeatures, SECRETS_RELOAD_FEATURE } from "../../protocol/secrets-reload.ts";
import type { SfuSession } from "./sfu-session.ts";
import { type CaseResult, type ConformanceCase, describeClose, type SuiteContext, sameApplied } from "./suite.ts";
import { asV2, hashVector, portChanged, reverseKeys, unsupportedSchema, variant } from "./test-configs.ts";

/**
 * Shortest delay the kit accepts before re-dial attempt `n` (0-based) after
 * failed attempts: the least PROTOCOL.md section 3's reconnect delay can be
 * (protocol/backoff.ts with its defaults and the lowest random draw), less
 * 10 % for timer and clock slack.
 */
export function minRedialDelayMs(n: number): number {
  return backoffDelay(n, BACKOFF_DEFAULTS, () => 0) * 0.9;
}
/** Dial attempts the reconnect case refuses (HTTP 503) before accepting one. */
export const REFUSED_REDIALS = 2;
/** Longest backoff the refused attempts may add (the ceilings: 0.5 + 1 + 2 s), allowed on top of the step timeout. */
const REFUSED_BACKOFF_ALLOWANCE_MS = Array.from({ length: REFUSED_REDIALS + 1 }, (_, n) =>
  backoffDelay(n, { ...BACKOFF_DEFAULTS, jitter: "none" }),
).reduce((a, b) => a + b, 0);

/**
 * How long the call-health case waits for a `health` frame naming the last
 * acked hash: PROTOCOL.md section 15 has an SFU send one at once when it
 * applies another hash, so this only covers the trip over loopback.
 */
export const HEALTH_WAIT_MS = 1_500;

const fail = (reason: string): CaseResult => ({ ok: false, reason });
const pass = (...notes: string[]): CaseResult => ({ ok: true, notes });
const skip = (why: string): CaseResult => ({ ok: true, notes: [], skipped: why });

/**
 * Waits for the SFU to close `session` itself with `code` (after the kit sent
 * something it must refuse), then for its re-dial, whose hello must report
 * what it applied.
 */
async function expectCloseAndRedial(ctx: SuiteContext, session: SfuSession, code: number, after: string) {
  const close = await session.waitClosed(ctx.stepTimeoutMs);
  let closeProblem: string | null = null;
  if (close === null) {
    session.close(CloseCode.PROTOCOL_ERROR, "expected the SFU to close");
    closeProblem = `the SFU did not close the link within ${ctx.stepTimeoutMs} ms after ${after} (expected close ${code})`;
  } else if (close.byKit) {
    closeProblem = `the kit had to close the link (${describeClose(close)}) after ${after}`;
  } else if (close.code !== code) {
    closeProblem = `the SFU closed with ${describeClose(close)} after ${after}; expected ${code}`;
  }
  const redial = await redialed(ctx);
  if (!redial.ok) return fail(closeProblem ? `${closeProblem}; ${redial.reason}` : redial.reason);
  return closeProblem ? fail(closeProblem) : pass(...redial.notes);
}

/** Waits for a re-dial (`extraMs` beyond the step timeout) and checks its hello reports the last acked config. */
async function redialed(ctx: SuiteContext, extraMs = 0): Promise<CaseResult> {
  const expected = ctx.applied;
  const dial = await ctx.live(extraMs);
  if (!dial.ok) return fail(dial.reason);
  const applied = dial.session.hello?.applied ?? null;
  if (!ctx.appliedKnown) {
    ctx.applied = applied;
    ctx.appliedKnown = true;
    return pass(
      `hello.applied not checked: an earlier config got no valid reply; it reports ${JSON.stringify(applied)}`,
    );
  }
  if (!sameApplied(applied, expected)) {
    return fail(`hello after re-dial reports applied ${JSON.stringify(applied)}, expected ${JSON.stringify(expected)}`);
  }
  return pass();
}

/**
 * Checks the `health` frames of one connection (already schema-valid): per
 * hash the counters never decrease, no more ICE verdicts or join failures
 * than joins, and the last frame names the hash the SFU acked last (when
 * known).
 */
export function checkHealthFrames(frames: readonly HealthMessage[], appliedHash: string | null): CaseResult {
  const last = new Map<string, HealthMessage>();
  for (const [i, f] of frames.entries()) {
    if (f.joinFailures > f.joins || f.iceConnected + f.iceFailures > f.joins) {
      return fail(
        `health frame ${i} counts more outcomes than joins (joins ${f.joins}, joinFailures ${f.joinFailures}, iceConnected ${f.iceConnected}, iceFailures ${f.iceFailures})`,
      );
    }
    const prev = last.get(f.hash);
    if (prev) {
      for (const k of ["joins", "joinFailures", "iceConnected", "iceFailures"] as const) {
        if (f[k] < prev[k])
          return fail(`health frame ${i}: ${k} went down from ${prev[k]} to ${f[k]} for the same hash`);
      }
      if (prev.since !== f.since) return fail(`health frame ${i}: since changed for the same hash ${f.hash}`);
    }
    last.set(f.hash, f);
  }
  const newest = frames.at(-1)!;
  if (appliedHash !== null && newest.hash !== appliedHash) {
    return fail(
      `the latest health frame names ${newest.hash}, not the last acked hash ${appliedHash} (send one at once when another hash is applied)`,
    );
  }
  return pass(`${frames.length} health frame(s); latest: joins ${newest.joins}, iceFailures ${newest.iceFailures}`);
}

/** The cases, in order. */
export const CASES: readonly ConformanceCase[] = [
  {
    name: "hello",
    summary: "the SFU dials in and sends a valid hello first, within 5 s",
    run: async (ctx) => {
      const dial = await ctx.server.nextDial(ctx.firstDialTimeoutMs);
      if (!dial.ok) {
        if (dial.timeout) ctx.gone = "no SFU ever dialed in";
        return fail(dial.reason);
      }
      ctx.adopt(dial.session);
      const hello = dial.session.hello!;
      ctx.applied = hello.applied ?? null;
      const supported = SUPPORTED_SCHEMA_VERSIONS.filter((v) => hello.schemaVersions.includes(v));
      if (!hello.schemaVersions.includes(1)) {
        dial.session.close(CloseCode.UNSUPPORTED_PROTOCOL, "no common schema version");
        return fail(`hello.schemaVersions ${JSON.stringify(hello.schemaVersions)} lacks 1; kit closed 4007`);
      }
      const features = helloFeatures(hello);
      const notes = [
        `sfu ${hello.sfu.name} ${hello.sfu.version}, hello after ${Math.round(dial.delayMs)} ms`,
        `schemaVersions ${JSON.stringify(supported)}, features ${JSON.stringify(features)}`,
      ];
      if (hello.applied)
        notes.push(`the SFU already runs version ${hello.applied.version}; versions continue above it`);
      return pass(...notes);
    },
  },
  {
    name: "config-acked",
    summary: "a valid config is acked with its nonce, version and hash",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const sent = ctx.push(live.session, variant(ctx.base, ctx.nextSerial()));
      return ctx.checkAck(await ctx.reply(live.session, sent));
    },
  },
  {
    name: "nonce-echoed",
    summary: "replies echo the config's nonce, also when nonces skip values",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const sent = ctx.push(live.session, variant(ctx.base, ctx.nextSerial()), { nonce: live.session.lastNonce + 7 });
      return ctx.checkAck(await ctx.reply(live.session, sent));
    },
  },
  {
    name: "restart-required-nacked",
    summary: "a server.port change (not appliable live) is nacked with a code, RESTART_REQUIRED expected",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const config = portChanged(variant(ctx.base, ctx.nextSerial()));
      const sent = ctx.push(live.session, config);
      const reply = await ctx.reply(live.session, sent);
      const result = ctx.checkNack(reply, null, `a server.port change to ${config.server.port} (it needs a restart)`);
      if (!result.ok || !reply.ok || reply.message.type !== "nack") return result;
      const code = reply.message.error.code;
      return code === "RESTART_REQUIRED" ? pass() : pass(`nacked with ${code}; RESTART_REQUIRED is the expected code`);
    },
  },
  {
    name: "unsupported-schema-nacked",
    summary: "a config with schemaVersion 99 is nacked UNSUPPORTED_SCHEMA",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const sent = ctx.push(live.session, unsupportedSchema(variant(ctx.base, ctx.nextSerial())));
      const reply = await ctx.reply(live.session, sent);
      return ctx.checkNack(reply, "UNSUPPORTED_SCHEMA", "a schemaVersion 99 config");
    },
  },
  {
    name: "canonical-hash",
    summary:
      "the SFU's canonical JSON hash of a reordered, pretty-printed config with non-ASCII, <>&, U+2028/U+2029, \\b and \\f equals the kit's",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const config = hashVector(variant(ctx.base, ctx.nextSerial()));
      const sent = ctx.push(live.session, config, { wire: reverseKeys(config), pretty: true });
      const reply = await ctx.reply(live.session, sent);
      const result = ctx.checkAck(reply);
      if (result.ok) return result;
      return fail(
        `${result.reason} (the canonical JSON sorts keys, has no whitespace, writes non-ASCII, "<>&/", U+2028 and U+2029 raw, and \\b \\f as such, not \\u0008 \\u000c; see agent/conformance/README.md)`,
      );
    },
  },
  {
    name: "wrong-hash-nacked",
    summary: "a config whose hash does not match its content is nacked INVALID_CONFIG",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const config = variant(ctx.base, ctx.nextSerial());
      const sent = ctx.push(live.session, config, { hash: configHash({ not: "this config" }) });
      const reply = await ctx.reply(live.session, sent);
      return ctx.checkNack(reply, "INVALID_CONFIG", "a config whose hash does not match it: verify the hash");
    },
  },
  {
    name: "v2-config-acked",
    summary: "an SFU listing schemaVersion 2 acks a valid v2 config (server.allowedOrigins)",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const versions = live.session.hello?.schemaVersions ?? [];
      if (!versions.includes(2)) {
        return skip(`hello.schemaVersions ${JSON.stringify(versions)} does not list 2 (the agent never pushes it v2)`);
      }
      const sent = ctx.push(live.session, asV2(variant(ctx.base, ctx.nextSerial())));
      return ctx.checkAck(await ctx.reply(live.session, sent));
    },
  },
  {
    name: "secrets-reload-acked",
    summary:
      "an SFU listing secrets-reload in hello.features re-reads its secret files and acks with the applied version and hash",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      if (!helloFeatures(live.session.hello).includes(SECRETS_RELOAD_FEATURE)) {
        return skip(`hello.features does not list ${SECRETS_RELOAD_FEATURE} (the agent never sends it)`);
      }
      if (ctx.applied === null || !ctx.appliedKnown) {
        const setup = ctx.push(live.session, variant(ctx.base, ctx.nextSerial()));
        const acked = ctx.checkAck(await ctx.reply(live.session, setup));
        if (!acked.ok) return fail(`setup config not acked: ${acked.reason}`);
      }
      const applied = ctx.applied;
      if (applied === null) return fail("no applied config to reload");
      const sent = ctx.reloadSecrets(live.session, applied, 1);
      const result = ctx.checkAck(await ctx.reply(live.session, sent));
      if (!result.ok) return result;
      // A reload naming a config that is not applied is refused, and the applied one stays.
      const stale = ctx.reloadSecrets(
        live.session,
        { version: applied.version + 1000, hash: configHash({ stale: 1 }) },
        2,
      );
      return ctx.checkNack(
        await ctx.reply(live.session, stale),
        null,
        "a secrets-reload naming a config it does not run",
      );
    },
  },
  {
    name: "call-health-optional",
    summary:
      "optional: an SFU that sends health frames (advertised by the kit) sends valid ones for the applied hash; none is noted, not failed",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const session = live.session;
      const applied = ctx.appliedKnown ? ctx.applied : null;
      const deadline = ctx.clock() + Math.min(HEALTH_WAIT_MS, ctx.stepTimeoutMs);
      const current = () => session.healthFrames.findLast((f) => applied !== null && f.message.hash === applied.hash);
      while (current() === undefined && session.isOpen && ctx.clock() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const frames = session.healthFrames.map((f) => f.message);
      if (frames.length === 0) {
        return pass("no health frame: the optional call-health feature (PROTOCOL.md section 15) is not implemented");
      }
      return checkHealthFrames(frames, applied?.hash ?? null);
    },
  },
  {
    name: "reconnect-with-backoff",
    summary: "after the agent drops the link the SFU re-dials with backoff and its hello reports what it applied",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      ctx.server.refuseNextDials(REFUSED_REDIALS);
      const firstAttempt = ctx.server.attempts.length;
      const droppedAt = ctx.clock();
      live.session.close(1001, "conformance kit: dropping the link");
      const result = await redialed(ctx, REFUSED_BACKOFF_ALLOWANCE_MS);
      ctx.server.refuseNextDials(0);
      const times = [droppedAt, ...ctx.server.attempts.slice(firstAttempt).map((a) => a.at)];
      const gaps = times.slice(1).map((t, i) => Math.round(t - times[i]!));
      if (!result.ok) {
        const seen = gaps.length === 0 ? "no dial attempt" : `dial attempts ${gaps.join(", ")} ms apart`;
        return fail(`${result.reason} (after the drop: ${seen})`);
      }
      if (gaps.length < REFUSED_REDIALS + 1) {
        return fail(`expected ${REFUSED_REDIALS} refused attempts before the accepted one, saw ${gaps.length - 1}`);
      }
      const early = gaps.findIndex((g, n) => g < minRedialDelayMs(n));
      if (early !== -1) {
        return fail(
          `re-dial attempt ${early} came ${gaps[early]} ms after the previous one, under the ${Math.round(minRedialDelayMs(early))} ms ` +
            `the backoff allows (gaps ${gaps.join(", ")} ms; PROTOCOL.md: min(30 s, 0.5 s x 2^n) x [0.5, 1])`,
        );
      }
      return pass(...result.notes, `re-dial gaps ${gaps.join(", ")} ms (${REFUSED_REDIALS} refused with HTTP 503)`);
    },
  },
  {
    name: "malformed-frame-redial",
    summary: "a frame that is not JSON makes the SFU close 4001 and re-dial, not crash",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      live.session.sendRaw('{"type":"config","nonce":');
      return expectCloseAndRedial(ctx, live.session, CloseCode.BAD_JSON, "a malformed frame");
    },
  },
  {
    name: "unknown-type-redial",
    summary: "a frame of an unknown type makes the SFU close 4002 and re-dial",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      live.session.send({ type: "conformance-surprise", nonce: live.session.lastNonce + 1 });
      return expectCloseAndRedial(ctx, live.session, CloseCode.UNKNOWN_TYPE, "a frame of unknown type");
    },
  },
  {
    name: "stale-nonce-redial",
    summary: "a config whose nonce did not increase makes the SFU close 4004 and re-dial",
    run: async (ctx) => {
      const live = await ctx.live();
      if (!live.ok) return fail(live.reason);
      const first = ctx.push(live.session, variant(ctx.base, ctx.nextSerial()));
      const acked = ctx.checkAck(await ctx.reply(live.session, first));
      if (!acked.ok) return fail(`setup config not acked: ${acked.reason}`);
      ctx.push(live.session, variant(ctx.base, ctx.nextSerial()), { nonce: first.nonce });
      return expectCloseAndRedial(ctx, live.session, CloseCode.BAD_NONCE, `a repeated nonce ${first.nonce}`);
    },
  },
];
