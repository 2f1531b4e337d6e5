/**
 * Property tests of the config pipeline (fast-check): random documents never
 * make it throw, and arbitrary valid configs round-trip through YAML and JSON
 * with a hash that depends on content only (not key order, not spelling out
 * defaults).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { stringify as yamlStringify } from "yaml";
import {
  type ConfigProblem,
  type LoadResult,
  loadConfigBytes,
  loadConfigText,
  normalise,
  validateConfigValue,
} from "../../../protocol/config-loader.ts";
import { AUDIO_CODECS, LOG_LEVELS, type SfuConfigV1, VIDEO_CODECS } from "../../../protocol/config-schema.ts";
import { canonicalJson, configHash } from "../../../protocol/hash.ts";

/** Drops undefined-valued keys, as a config file would simply omit them. */
function compact<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const host = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
);
const uriPort = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
const stunServer = fc
  .array(fc.tuple(fc.constantFrom("stun", "stuns"), host, uriPort), { minLength: 1, maxLength: 3 })
  .map((urls) => ({ urls: urls.map(([s, h, p]) => `${s}:${h}${p === undefined ? "" : `:${p}`}`) }));
const turnServer = fc
  .record({
    urls: fc.array(
      fc.tuple(
        fc.constantFrom("turn", "turns"),
        host,
        uriPort,
        fc.constantFrom("", "?transport=udp", "?transport=tcp"),
      ),
      { minLength: 1, maxLength: 3 },
    ),
    username: fc.string({ minLength: 1, maxLength: 30, unit: "grapheme" }),
    credential: fc.string({ minLength: 1, maxLength: 30 }),
  })
  .map((t) => ({ ...t, urls: t.urls.map(([s, h, p, q]) => `${s}:${h}${p === undefined ? "" : `:${p}`}${q}`) }));

const codecs = fc
  .tuple(
    fc.shuffledSubarray([...AUDIO_CODECS], { minLength: 1 }),
    fc.shuffledSubarray([...VIDEO_CODECS], { minLength: 1 }),
    fc.boolean(),
  )
  .map(([a, v, audioFirst]) => (audioFirst ? [...a, ...v] : [...v, ...a]));

/** Arbitrary valid config of schema v1 (no credentialFile: that needs a file on disk). */
export const validConfig: fc.Arbitrary<SfuConfigV1> = fc
  .record({
    port: fc.integer({ min: 1, max: 65535 }),
    range: fc.uniqueArray(fc.integer({ min: 1024, max: 65535 }), { minLength: 2, maxLength: 2 }),
    codecs,
    listenIp: fc.option(fc.oneof(fc.ipV4(), fc.ipV6()), { nil: undefined }),
    announcedIps: fc.option(fc.uniqueArray(fc.ipV4(), { maxLength: 3 }), { nil: undefined }),
    turnServers: fc.option(fc.array(fc.oneof(stunServer, turnServer), { maxLength: 3 }), { nil: undefined }),
    level: fc.option(fc.option(fc.constantFrom(...LOG_LEVELS), { nil: undefined }), { nil: undefined }),
    limits: fc.option(
      fc.record(
        { maxRooms: fc.integer({ min: 1, max: 100000 }), maxParticipantsPerRoom: fc.integer({ min: 1, max: 10000 }) },
        { requiredKeys: [] },
      ),
      { nil: undefined },
    ),
  })
  .map(
    (r) =>
      compact({
        schemaVersion: 1 as const,
        server: { port: r.port },
        webrtc: compact({
          icePortRange: [...r.range].sort((a, b) => a - b) as unknown as SfuConfigV1["webrtc"]["icePortRange"],
          codecs: r.codecs as SfuConfigV1["webrtc"]["codecs"],
          listenIp: r.listenIp,
          announcedIps: r.announcedIps,
          turnServers: r.turnServers,
        }),
        logging: r.level === undefined ? undefined : compact({ level: r.level }),
        limits: r.limits,
      }) as SfuConfigV1,
  );

/** Deterministically reorders every object's keys (reverse, then rotate by `seed`). */
function reorderKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v) => reorderKeys(v, seed + 1));
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value).reverse();
  const k = entries.length === 0 ? 0 : seed % entries.length;
  const rotated = [...entries.slice(k), ...entries.slice(0, k)];
  return Object.fromEntries(rotated.map(([key, v]) => [key, reorderKeys(v, seed + 7)]));
}

function assertWellFormed(result: LoadResult, text?: string): void {
  const lineCount = text === undefined ? Number.POSITIVE_INFINITY : text.split("\n").length;
  const check = (p: ConfigProblem) => {
    assert.equal(typeof p.message, "string");
    assert.ok(p.message.length > 0);
    assert.ok(p.pointer === "" || p.pointer.startsWith("/"), `pointer ${p.pointer}`);
    if (p.line !== null) assert.ok(p.line >= 1 && p.line <= lineCount, `line ${p.line} of ${lineCount}`);
    if (p.col !== null) assert.ok(p.col >= 1, `col ${p.col}`);
  };
  if (result.ok) {
    assert.match(result.hash, /^sha256:[0-9a-f]{64}$/);
  } else {
    assert.ok(result.problems.length > 0, "a failure carries at least one problem");
    result.problems.forEach(check);
  }
  result.warnings.forEach(check);
}

const yamlChars = fc.constantFrom(
  ..."abc019:-[]{},&*!|>'\"#%@`?~=<\\/ \t\n\n\n  .".split(""),
  "schemaVersion",
  "server",
  "port",
  "webrtc",
  "codecs",
  "---",
  "<<",
  "!!binary",
  "&a",
  "*a",
  "\u00e9",
  "\u{1F600}",
  "\r\n",
  "\ufeff",
);
const yamlishText = fc.array(yamlChars, { maxLength: 200 }).map((parts) => parts.join(""));

describe("config loader properties", () => {
  it("random text (YAML-ish and arbitrary unicode) never makes loadConfigText throw", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(yamlishText, fc.string({ unit: "binary", maxLength: 300 })), async (text) => {
        const result = await loadConfigText(text, { checkFiles: false });
        assertWellFormed(result, text);
      }),
      { numRuns: 400 },
    );
  });

  it("random bytes never make loadConfigBytes throw", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
        assertWellFormed(await loadConfigBytes(bytes, { checkFiles: false }));
      }),
      { numRuns: 300 },
    );
  });

  it("random JS values never make validateConfigValue throw; YAML of random JSON never makes the loader throw", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.anything({ withNullPrototype: true, withBigInt: true, withDate: true, withMap: true }),
        async (v) => {
          assertWellFormed(await validateConfigValue(v, { checkFiles: false }));
        },
      ),
      { numRuns: 300 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (v) => {
        const text = yamlStringify(v);
        assertWellFormed(await loadConfigText(text, { checkFiles: false }), text);
      }),
      { numRuns: 200 },
    );
  });

  it("a valid config with one subtree replaced by random JSON never makes the loader throw", async () => {
    const paths = [
      [],
      ["server"],
      ["server", "port"],
      ["webrtc"],
      ["webrtc", "icePortRange"],
      ["webrtc", "codecs"],
      ["webrtc", "listenIp"],
      ["webrtc", "announcedIps"],
      ["webrtc", "turnServers"],
      ["logging"],
      ["limits"],
      ["extra"],
    ];
    await fc.assert(
      fc.asyncProperty(validConfig, fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 }), async (c, path, v) => {
        const mutated = structuredClone(c) as Record<string, unknown>;
        let target: Record<string, unknown> = mutated;
        for (const seg of path.slice(0, -1)) {
          if (typeof target[seg] !== "object" || target[seg] === null) target[seg] = {};
          target = target[seg] as Record<string, unknown>;
        }
        const last = path.at(-1);
        if (last !== undefined) target[last] = v;
        const doc: unknown = last === undefined ? v : mutated;
        const text = yamlStringify(doc);
        assertWellFormed(await loadConfigText(text, { checkFiles: false }), text);
        assertWellFormed(await validateConfigValue(doc, { checkFiles: false }));
      }),
      { numRuns: 300 },
    );
  });

  it("valid configs round-trip through YAML and JSON; the hash is that of the normalised config", async () => {
    await fc.assert(
      fc.asyncProperty(validConfig, async (c) => {
        const expected = normalise(c);
        for (const text of [yamlStringify(c), JSON.stringify(c), JSON.stringify(c, null, 2)]) {
          const result = await loadConfigText(text);
          assert.ok(result.ok, `${text}\n${JSON.stringify(!result.ok && result.problems)}`);
          assert.deepEqual(result.config, expected);
          assert.equal(result.hash, configHash(expected));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("normalise is idempotent, and its output is itself a valid config with the same hash", async () => {
    await fc.assert(
      fc.asyncProperty(validConfig, async (c) => {
        const once = normalise(c);
        const twice = normalise(once as unknown as SfuConfigV1);
        assert.deepEqual(twice, once);
        const reloaded = await validateConfigValue(once);
        assert.ok(reloaded.ok);
        assert.equal(reloaded.hash, configHash(once));
      }),
      { numRuns: 200 },
    );
  });

  it("the hash is stable under key reordering at every level", async () => {
    await fc.assert(
      fc.asyncProperty(validConfig, fc.nat(1000), async (c, seed) => {
        const shuffled = reorderKeys(c, seed);
        assert.equal(canonicalJson(shuffled), canonicalJson(c));
        const [a, b] = await Promise.all([validateConfigValue(c), validateConfigValue(shuffled)]);
        assert.ok(a.ok && b.ok);
        assert.equal(b.hash, a.hash);
        const fromYaml = await loadConfigText(yamlStringify(shuffled));
        assert.ok(fromYaml.ok);
        assert.equal(fromYaml.hash, a.hash);
      }),
      { numRuns: 200 },
    );
  });
});
