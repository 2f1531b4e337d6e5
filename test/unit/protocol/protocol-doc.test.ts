/**
 * Keeps protocol/PROTOCOL.md honest: its canonical-JSON test vector, its
 * Python recipe, its worked example, its event examples and its tables are
 * read out of the document and checked against the code.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { loadConfigFile, normalise, validateConfigValue } from "../../../protocol/config-loader.ts";
import { AUDIO_CODECS, CONFIG_DEFAULTS, LOG_LEVELS, VIDEO_CODECS } from "../../../protocol/config-schema.ts";
import { canonicalJson, configHash } from "../../../protocol/hash.ts";
import { parseAgentFrame, parseReloadEvent, parseSfuFrame, parseStatusEvent } from "../../../protocol/messages.ts";
import { MAX_FRAME_BYTES, NACK_CODES, SETTLEMENT_OUTCOMES, SUBPROTOCOL } from "../../../protocol/messages-schema.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const DOC = readFileSync(join(ROOT, "protocol", "PROTOCOL.md"), "utf8");

/** Every fenced block preceded by `<!-- marker -->`, in document order. */
function blocks(marker: string): string[] {
  const re = new RegExp(`<!-- ${marker} -->\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\``, "g");
  return [...DOC.matchAll(re)].map((m) => m[1]!);
}

function one(marker: string): string {
  const found = blocks(marker);
  assert.equal(found.length, 1, `exactly one <!-- ${marker} --> block in PROTOCOL.md`);
  return found[0]!;
}

/** Rows of the markdown table following `heading` (first column -> row cells). */
function tableAfter(heading: string): string[][] {
  const start = DOC.indexOf(heading);
  assert.ok(start >= 0, `heading ${heading}`);
  const lines = DOC.slice(start).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

describe("PROTOCOL.md canonical JSON test vector", () => {
  const input = one("vector:input");
  const canonical = one("vector:canonical");
  const hash = one("vector:hash");

  it("canonicalJson(input) is the documented canonical form", () => {
    assert.equal(canonicalJson(JSON.parse(input)), canonical);
  });

  it("configHash(input) is the documented hash, = sha256 of the canonical UTF-8 bytes", () => {
    assert.match(hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(configHash(JSON.parse(input)), hash);
    assert.equal(`sha256:${createHash("sha256").update(Buffer.from(canonical, "utf8")).digest("hex")}`, hash);
  });

  it("the vector exercises key sorting, escapes (\\b and \\f too), U+2028/U+2029, non-ASCII and HTML characters", () => {
    assert.match(canonical, /^\{"B":.*"Z":.*"a":/); // upper case sorts before lower case
    for (const s of [
      "\\t",
      "\\n",
      '\\"',
      "\\\\",
      "\\u0001",
      "\\b",
      "\\f",
      "\u2028",
      "\u2029",
      "<&>",
      "é",
      "ü€",
      "😀",
    ]) {
      assert.ok(canonical.includes(s), s);
    }
  });

  it("the documented Python recipe produces the same canonical form and hash", () => {
    const recipe = one("recipe:python");
    const run = spawnSync("python3", ["-c", recipe], { input, encoding: "utf8", timeout: 20_000 });
    assert.equal(run.error, undefined, `python3 is needed for this test: ${run.error?.message}`);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, `${canonical}\n${hash}\n`);
  });
});

describe("PROTOCOL.md worked example", () => {
  it("every SFU frame parses; every agent frame parses, carries a normalised config, and its hash matches", async () => {
    const sfu = blocks("example:sfu");
    const agent = blocks("example:agent");
    assert.ok(sfu.length >= 4 && agent.length >= 3);
    for (const text of sfu) {
      const parsed = parseSfuFrame(text);
      assert.ok(parsed.ok, `${text}: ${!parsed.ok && parsed.reason}`);
    }
    for (const text of agent) {
      const parsed = parseAgentFrame(text);
      assert.ok(parsed.ok, `${text}: ${!parsed.ok && parsed.reason}`);
      const msg = parsed.message;
      assert.equal(configHash(msg.config), msg.hash);
      assert.equal(msg.schemaVersion, (msg.config as { schemaVersion: number }).schemaVersion);
      const checked = await validateConfigValue(msg.config);
      assert.ok(checked.ok, JSON.stringify(!checked.ok && checked.problems));
      assert.deepEqual(checked.config, msg.config, "the pushed config is normalised");
      assert.equal(checked.hash, msg.hash);
    }
  });

  it("the first pushed config is minimal.yaml as the loader normalises it", async () => {
    const loaded = await loadConfigFile(join(ROOT, "test", "fixtures", "valid", "minimal.yaml"));
    assert.ok(loaded.ok);
    const first = parseAgentFrame(blocks("example:agent")[0]!);
    assert.ok(first.ok);
    assert.deepEqual(first.message.config, loaded.config);
    assert.equal(first.message.hash, loaded.hash);
  });

  it("the exchange follows the rules: replies echo their config, nonces and versions increase", () => {
    // Interleave agent and SFU frames in document order.
    const re = /<!-- example:(sfu|agent) -->\n```json\n([\s\S]*?)\n```/g;
    const frames = [...DOC.matchAll(re)].map((m) => JSON.parse(m[2]!) as Record<string, unknown>);
    let last: Record<string, unknown> | null = null;
    let lastNonce = 0;
    let lastVersion = 0;
    let applied: unknown = null;
    for (const f of frames) {
      if (f.type === "config") {
        assert.ok((f.nonce as number) > lastNonce && (f.version as number) > lastVersion);
        lastNonce = f.nonce as number;
        lastVersion = f.version as number;
        last = f;
      } else if (f.type === "ack" || f.type === "nack") {
        assert.ok(last, "a reply follows a config");
        for (const k of ["nonce", "version", "hash"]) assert.equal(f[k], last[k], k);
        if (f.type === "nack") assert.deepEqual(f.applied, applied);
        else applied = { version: f.version, hash: f.hash };
        last = null;
      } else if (f.type === "hello" && f.applied !== null) {
        assert.deepEqual(f.applied, applied, "a reconnecting SFU reports what it acked last");
      }
    }
  });

  it("the event examples parse, raw and in an SNS envelope", () => {
    const reloads = blocks("example:reload").map((t) => parseReloadEvent(t));
    assert.deepEqual(
      reloads.map((r) => r.ok && r.envelope),
      [false, true],
    );
    const [raw, wrapped] = reloads;
    assert.ok(raw?.ok && wrapped?.ok);
    assert.deepEqual(wrapped.event, raw.event);
    for (const t of blocks("example:status")) assert.ok(parseStatusEvent(t).ok, t);
  });
});

describe("PROTOCOL.md tables match the code", () => {
  it("the close code table lists every code of close-codes.ts under its name", () => {
    const rows = tableAfter("## 7. Closing; close codes");
    const documented = new Map(rows.map((r) => [Number(r[0]), r[1]!.replaceAll("`", "")]));
    for (const [name, code] of Object.entries(CloseCode)) assert.equal(documented.get(code), name, `${code}`);
  });

  it("every NACK code, settlement outcome, codec and log level is documented; constants are as written", () => {
    const nackRows = tableAfter("## 6. Applying a config; NACK codes").map((r) => r[0]!.replaceAll("`", ""));
    for (const code of NACK_CODES) assert.ok(nackRows.includes(code), code);
    for (const o of SETTLEMENT_OUTCOMES) assert.ok(DOC.includes(`\`${o}\`: `), o);
    for (const c of [...VIDEO_CODECS, ...AUDIO_CODECS, ...LOG_LEVELS]) assert.ok(DOC.includes(`\`${c}\``), c);
    assert.ok(DOC.includes(`\`${SUBPROTOCOL}\``));
    assert.ok(DOC.includes(`${MAX_FRAME_BYTES} bytes`));
  });

  it("the normalisation defaults table is what normalise() fills in", () => {
    const rows = tableAfter("## 9. Normalisation");
    const n = normalise({
      schemaVersion: 1,
      server: { port: 8080 },
      webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
    } as unknown as Parameters<typeof normalise>[0]) as unknown as Record<string, Record<string, unknown>>;
    assert.equal(rows.length, 6);
    for (const [field, value] of rows) {
      const [section, key] = field!.replaceAll("`", "").split(".") as [string, string];
      assert.deepEqual(n[section]?.[key], JSON.parse(value!.replaceAll("`", "")), field);
    }
    assert.equal(n.webrtc?.listenIp, CONFIG_DEFAULTS.listenIp);
  });
});
