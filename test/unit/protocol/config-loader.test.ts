/**
 * The config pipeline (protocol/config-loader.ts), example by example. The
 * invalid corpus is exercised through the CLI in test/unit/cli/; properties
 * are in config-loader.property.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  checkIceUri,
  formatProblem,
  loadConfigBytes,
  loadConfigFile,
  loadConfigText,
  MAX_CONFIG_BYTES,
  MAX_REPORTED_PROBLEMS,
  normalise,
  validateConfigValue,
} from "../../../protocol/config-loader.ts";
import type { SfuConfigV1 } from "../../../protocol/config-schema.ts";

const MINIMAL =
  "schemaVersion: 1\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n";
const minimalValue = (): SfuConfigV1 =>
  ({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
  }) as unknown as SfuConfigV1;

describe("loadConfigText", () => {
  it("loads a minimal config, normalised, with its hash", async () => {
    const r = await loadConfigText(MINIMAL);
    assert.ok(r.ok);
    assert.deepEqual(r.config, {
      schemaVersion: 1,
      server: { port: 8080 },
      webrtc: {
        icePortRange: [20000, 20100],
        codecs: ["vp8", "opus"],
        listenIp: "0.0.0.0",
        announcedIps: [],
        turnServers: [],
      },
      logging: { level: "info" },
      limits: { maxRooms: 100, maxParticipantsPerRoom: 16 },
    });
    assert.deepEqual(r.warnings, []);
  });

  it("locates an unknown key at the key, and a bad value at the value", async () => {
    const r = await loadConfigText(`${MINIMAL}logging:\n  level: loud\n  colour: true\n`, { source: "c.yaml" });
    assert.ok(!r.ok);
    const lines = r.problems.map((p) => formatProblem("c.yaml", p)).sort();
    assert.deepEqual(lines, [
      'c.yaml:8:10: /logging/level: must be one of "trace", "debug", "info", "warn", "error", "fatal"',
      'c.yaml:9:3: /logging/colour: unknown key "colour"',
    ]);
  });

  it("reports schema and semantic problems together in one run", async () => {
    const text = MINIMAL.replace("[vp8, opus]", "[vp8]").replace("port: 8080", "port: 0");
    const r = await loadConfigText(text);
    assert.ok(!r.ok);
    assert.deepEqual(r.problems.map((p) => p.pointer).sort(), ["/server/port", "/webrtc/codecs"]);
  });

  it("counts lines correctly with CRLF line endings and a BOM", async () => {
    const text = `\ufeff${MINIMAL.replace("port: 8080", "port: 70000")}`.replaceAll("\n", "\r\n");
    const r = await loadConfigText(text, { source: "crlf.yaml" });
    assert.ok(!r.ok);
    assert.equal(formatProblem("crlf.yaml", r.problems[0]!), "crlf.yaml:3:9: /server/port: must be <= 65535");
  });

  it("refuses nesting past 64 levels at the first node past the limit, without a stack overflow", async () => {
    const r = await loadConfigText(`a: ${"[".repeat(800_000)}`);
    assert.ok(!r.ok);
    // `a` is level 1, the 64th bracket (column 67) is level 65.
    assert.deepEqual(
      r.problems.map((p) => formatProblem("c.yaml", p)),
      [`c.yaml:1:67: /a${"/0".repeat(63)}: YAML: nested more than 64 levels deep`],
    );
    const ok = await loadConfigText(`${MINIMAL}x: ${"[".repeat(63)}${"]".repeat(63)}\n`);
    assert.ok(!ok.ok && ok.problems.every((p) => !/nested/.test(p.message)), "64 levels are accepted");
  });

  it("caps a flood of syntax errors at MAX_REPORTED_PROBLEMS plus one line saying how many more", async () => {
    const r = await loadConfigText(`${"a: b: c\n".repeat(200)}`);
    assert.ok(!r.ok);
    assert.equal(r.problems.length, MAX_REPORTED_PROBLEMS + 1);
    assert.match(r.problems.at(-1)!.message, /^and \d+ more problem\(s\) not shown$/);
    assert.equal(r.problems[0]!.line, 1, "the first problem is the first by position");
  });

  it("emits no process warnings for odd YAML (collection keys)", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const r = await loadConfigText("? [a, b]\n: 1\n");
      assert.ok(!r.ok);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings, []);
  });

  it("refuses text over the size limit", async () => {
    const r = await loadConfigText(`${MINIMAL}#${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    assert.ok(!r.ok);
    assert.match(r.problems[0]!.message, /exceeds 1048576 bytes/);
  });

  it("never puts a credential into a problem or warning", async () => {
    const secret = "hunter2-credential-value";
    const text = `${MINIMAL}  turnServers:\n    - urls: ["turn:t.example.com"]\n      username: u\n      credential: ${secret}\n      credentialFile: /nonexistent/x\n`;
    for (const r of [await loadConfigText(text), await loadConfigText(text.replace(/ {6}credentialFile.*\n/, ""))]) {
      const all = [...(r.ok ? [] : r.problems), ...r.warnings];
      assert.ok(all.length > 0);
      for (const p of all) assert.ok(!p.message.includes(secret), p.message);
    }
  });
});

describe("loadConfigBytes and loadConfigFile", () => {
  it("refuses invalid UTF-8 and NUL bytes", async () => {
    const bad = await loadConfigBytes(new Uint8Array([0x61, 0x3a, 0x20, 0xc3, 0x28]));
    assert.ok(!bad.ok && /not valid UTF-8/.test(bad.problems[0]!.message));
    const nul = await loadConfigBytes(new TextEncoder().encode(`${MINIMAL}\u0000`));
    assert.ok(!nul.ok && /NUL/.test(nul.problems[0]!.message));
  });

  it("maps file failures to NOT_FOUND / READ_FAILED / INVALID_CONFIG", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sfu-loader-"));
    try {
      const big = join(dir, "big.yaml");
      writeFileSync(big, Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x23));
      const cases: [string, string, RegExp][] = [
        [join(dir, "absent.yaml"), "NOT_FOUND", /no such file/],
        [dir, "READ_FAILED", /is a directory/],
        ["/dev/null", "READ_FAILED", /not a regular file/],
        [big, "INVALID_CONFIG", /1048577 bytes; the limit is 1048576/],
      ];
      for (const [path, code, message] of cases) {
        const r = await loadConfigFile(path);
        assert.ok(!r.ok, path);
        assert.equal(r.code, code, path);
        assert.match(r.problems[0]!.message, message);
        assert.equal(r.source, path);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads each file whole whatever was read before: small after large, over 64 KiB, invalid UTF-8 after valid", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sfu-loader-"));
    try {
      const padded = (rooms: number, bytes: number) => {
        const text = `${MINIMAL}limits:\n  maxRooms: ${rooms}\n`;
        return text + `# ${"x".repeat(78)}\n`.repeat(Math.max(0, Math.ceil((bytes - text.length) / 81)));
      };
      const write = (name: string, content: string | Uint8Array) => {
        writeFileSync(join(dir, name), content);
        return join(dir, name);
      };
      const files = [
        write("near-64k.yaml", padded(1, 64 * 1024 - 100)),
        write("small.yaml", padded(2, 0)),
        write("200k.yaml", padded(3, 200 * 1024)),
        write("small-again.yaml", padded(4, 0)),
      ];
      for (const [i, path] of files.entries()) {
        const r = await loadConfigFile(path);
        assert.ok(r.ok, path);
        assert.equal(r.config.limits.maxRooms, i + 1, path);
      }
      const bad = await loadConfigFile(write("latin1.yaml", new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a])));
      assert.ok(!bad.ok && /not valid UTF-8/.test(bad.problems[0]!.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("validateConfigValue", () => {
  it("returns problems with pointers and no positions (there is no text)", async () => {
    const value = { ...minimalValue(), bogus: 1, server: { port: "x" } };
    const r = await validateConfigValue(value);
    assert.ok(!r.ok);
    assert.equal(r.code, "INVALID_CONFIG");
    assert.deepEqual(r.problems.map((p) => p.pointer).sort(), ["/bogus", "/server/port"]);
    for (const p of r.problems) assert.deepEqual([p.line, p.col], [null, null]);
  });

  it("reports UNSUPPORTED_SCHEMA for another integer schemaVersion, INVALID_CONFIG for a non-integer", async () => {
    const three = await validateConfigValue({ ...minimalValue(), schemaVersion: 3 });
    assert.ok(!three.ok && three.code === "UNSUPPORTED_SCHEMA");
    assert.match(three.problems[0]!.message, /schemaVersion 3 is not supported \(supported: 1, 2\)/);
    const str = await validateConfigValue({ ...minimalValue(), schemaVersion: "1" });
    assert.ok(!str.ok && str.code === "INVALID_CONFIG");
  });

  it("does not look at credentialFile on disk when checkFiles is false", async () => {
    const value = minimalValue();
    value.webrtc.turnServers = [{ urls: ["turn:t.example.com"], username: "u", credentialFile: "/etc/sfu/secrets/x" }];
    assert.equal((await validateConfigValue(value)).ok, false);
    assert.equal((await validateConfigValue(value, { checkFiles: false })).ok, true);
  });
});

describe("normalise", () => {
  it("fills every default and copies lists (the input is never shared or changed)", () => {
    const input = minimalValue();
    const out = normalise(input);
    out.webrtc.codecs.push("vp9");
    out.webrtc.icePortRange[0] = 1;
    assert.deepEqual(input, minimalValue());
  });

  it("keeps given optional values and list order", () => {
    const input = {
      ...minimalValue(),
      webrtc: { ...minimalValue().webrtc, codecs: ["opus", "h264", "vp8"], listenIp: "127.0.0.1" },
      logging: {},
      limits: { maxRooms: 3 },
    } as unknown as SfuConfigV1;
    const out = normalise(input);
    assert.deepEqual(out.webrtc.codecs, ["opus", "h264", "vp8"]);
    assert.equal(out.webrtc.listenIp, "127.0.0.1");
    assert.deepEqual(out.logging, { level: "info" });
    assert.deepEqual(out.limits, { maxRooms: 3, maxParticipantsPerRoom: 16 });
  });
});

describe("checkIceUri", () => {
  it("accepts turn:, turns:, stun:, stuns: URIs per RFC 7064/7065", () => {
    for (const uri of [
      "stun:stun.example.com",
      "stun:stun.example.com:3478",
      "stuns:stun.example.com:5349",
      "stun:[2001:db8::1]:3478",
      "turn:192.0.2.1",
      "turn:turn.example.com:3478?transport=udp",
      "turns:turn.example.com:5349?transport=tcp",
    ]) {
      assert.equal(checkIceUri(uri), null, uri);
    }
  });

  it("explains what is wrong with a bad URI", () => {
    const cases: [string, RegExp][] = [
      ["http://turn.example.com", /scheme must be turn:, turns: or stun:/],
      ["turn.example.com:3478", /scheme must be/],
      ["turn:", /not a valid ICE server URI/],
      ["turn::3478", /not a valid ICE server URI/],
      ["turn://turn.example.com", /not a valid ICE server URI/],
      ["turn:turn.example.com:0", /port 0 is out of range/],
      ["turn:turn.example.com:65536", /port 65536 is out of range/],
      ["turn:turn.example.com:123456", /not a valid ICE server URI/],
      ["turn:turn.example.com?transport=sctp", /not a valid ICE server URI/],
      ["stun:stun.example.com?transport=udp", /stun: URIs take no transport/],
      ["turn:user@turn.example.com", /not a valid ICE server URI/],
    ];
    for (const [uri, re] of cases) assert.match(checkIceUri(uri) ?? "", re, uri);
  });
});
