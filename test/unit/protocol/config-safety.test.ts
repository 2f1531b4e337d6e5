/**
 * What the loader's problems may show: no secret text whatever the YAML
 * shape, control characters escaped in every human line, YAML directives
 * and tags refused with their place, unpaired surrogates refused; and the
 * text helpers of protocol/safe-text.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatProblem,
  type LoadResult,
  loadConfigText,
  validateConfigValue,
} from "../../../protocol/config-loader.ts";
import { capText, escapeControlChars, isSecretKey, redactUserinfo } from "../../../protocol/safe-text.ts";

const MINIMAL =
  "schemaVersion: 1\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n";
const MINIMAL_LINES = 6;

/** Every line a user could see for a result: problems and warnings, formatted, and their raw fields. */
function everything(r: LoadResult, source = "c.yaml"): string {
  const list = [...(r.ok ? [] : r.problems), ...r.warnings];
  return list.map((p) => `${formatProblem(source, p)}\n${JSON.stringify(p)}`).join("\n");
}

/** A TURN server whose inline credential line is `credential: <raw>`. */
const withCredential = (raw: string) =>
  `${MINIMAL}  turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: alice\n      credential: ${raw}\n`;
const CREDENTIAL_LINE = MINIMAL_LINES + 4;

describe("secrets are never quoted", () => {
  const cases: [string, string, RegExp][] = [
    [
      "alias-looking credential",
      "*Zx9StarSecret41",
      /alias \*\(name not shown: under a secret key\) has no anchor before it/,
    ],
    [
      "block scalar header with extra characters (|)",
      "|Zx9PipeSecret42",
      /Block scalar header includes extra characters: \|\*\*\*/,
    ],
    [
      "block scalar header with extra characters (>)",
      ">Zx9FoldSecret44 more",
      /Block scalar header includes extra characters: >\*\*\*/,
    ],
    ["a tag", "!Zx9TagSecret45 x", /a YAML tag is not accepted/],
    ["a bad escape in a double-quoted credential", '"ab\\qZx9EscSecret46"', /Invalid escape sequence \\\*\*\*/],
  ];
  for (const [name, raw, expected] of cases) {
    it(`${name}: the problem is on the credential line and names no secret`, async () => {
      const secret = /Zx9\w+/.exec(raw)![0];
      const r = await loadConfigText(withCredential(raw));
      assert.ok(!r.ok);
      const all = everything(r);
      assert.ok(!all.includes(secret), all);
      assert.ok(!all.includes(secret.slice(3)), all);
      const hit = r.problems.find((p) => expected.test(p.message));
      assert.ok(hit, all);
      assert.equal(hit.line, CREDENTIAL_LINE);
    });
  }

  it("a credential under another secret-like key (password, token) in a flow mapping", async () => {
    const r = await loadConfigText(`${MINIMAL}extra: {password: |Zx9FlowSecret47}\n`);
    assert.ok(!r.ok);
    assert.ok(!everything(r).includes("Zx9FlowSecret47"), everything(r));
  });

  it("quotes source text outside secret keys (the redaction is targeted)", async () => {
    const r = await loadConfigText(`${MINIMAL}note: |visible\n`);
    assert.ok(!r.ok);
    assert.match(everything(r), /extra characters: \|visible/);
  });

  it("URI userinfo is redacted in URI problems, with the host kept", async () => {
    const secret = "Zx9UrlSecret43";
    const text = `${MINIMAL}  turnServers:\n    - urls: ["turn:alice:${secret}@turn.example.com:3478"]\n      username: a\n      credential: b\n`;
    const r = await loadConfigText(text);
    assert.ok(!r.ok);
    const all = everything(r);
    assert.ok(!all.includes(secret) && !all.includes("alice"), all);
    assert.match(all, /"turn:\*\*\*@turn\.example\.com:3478": not a valid ICE server URI/);
  });

  it("pushed values (validateConfigValue) get the same redaction", async () => {
    const r = await validateConfigValue({
      schemaVersion: 1,
      server: { port: 8080 },
      webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"], turnServers: [{ urls: ["stun:u:Zx9Push@h"] }] },
    });
    assert.ok(!r.ok);
    assert.ok(!everything(r).includes("Zx9Push"), everything(r));
  });
});

describe("control characters are escaped in human output", () => {
  it("an unknown key with ESC/BEL, C1 and bidi controls, and a file name with ESC", async () => {
    const r = await loadConfigText(`${MINIMAL}"x\\e]0;pwned\\a\\e[2J\\x9b31m\\u202Eevil": 1\n`);
    assert.ok(!r.ok);
    const line = formatProblem("c\u001b[31m.yaml", r.problems[0]!);
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    assert.equal(
      line,
      `c\\x1b[31m.yaml:${MINIMAL_LINES + 1}:1: /x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eevil: unknown key "x\\u001b]0;pwned\\u0007\\u001b[2J\\x9b31m\\u202eevil"`,
    );
  });
});

describe("directives and tags", () => {
  const cases: [string, string, number, number, RegExp][] = [
    ["unknown directive", `%FOO bar\n---\n${MINIMAL}`, 1, 1, /YAML directive %FOO is not accepted/],
    ["YAML 9.9", `%YAML 9.9\n---\n${MINIMAL}`, 1, 1, /YAML directive %YAML is not accepted/],
    ["YAML 1.1 (another schema: yes/no booleans)", `%YAML 1.1\n---\n${MINIMAL}`, 1, 1, /directive %YAML/],
    ["TAG", `%TAG !e! tag:example.com,2000:\n---\n${MINIMAL}`, 1, 1, /directive %TAG/],
    [
      "a custom tag",
      `${MINIMAL}logging:\n  level: !evil info\n`,
      MINIMAL_LINES + 2,
      10,
      /YAML tag !evil is not accepted/,
    ],
    [
      "a core tag",
      `${MINIMAL}logging:\n  level: !!str info\n`,
      MINIMAL_LINES + 2,
      10,
      /YAML tag !!str is not accepted/,
    ],
    ["a verbatim tag", `${MINIMAL}x: !<tag:yaml.org,2002:str> y\n`, MINIMAL_LINES + 1, 4, /YAML tag !<tag:yaml/],
  ];
  for (const [name, text, line, col, re] of cases) {
    it(`${name} is refused at ${line}:${col}`, async () => {
      const r = await loadConfigText(text);
      assert.ok(!r.ok);
      const p = r.problems.find((q) => re.test(q.message));
      assert.ok(p, everything(r));
      assert.deepEqual([p.line, p.col], [line, col]);
    });
  }

  it("%YAML 1.2 (the plain core schema) is accepted with the same hash as without it", async () => {
    const plain = await loadConfigText(MINIMAL);
    const declared = await loadConfigText(`%YAML 1.2\n---\n${MINIMAL}`);
    assert.ok(plain.ok && declared.ok);
    assert.equal(declared.hash, plain.hash);
  });
});

describe("unpaired surrogates", () => {
  it("refuses a lone surrogate in a YAML string and in a key, at their place", async () => {
    const text = `${MINIMAL}  turnServers:\n    - urls: ["stun:stun.example.net:3478"]\n      username: "\\uD800"\n`;
    const r = await loadConfigText(text);
    assert.ok(!r.ok);
    assert.deepEqual(
      r.problems.map((p) => formatProblem("c.yaml", p)),
      [
        `c.yaml:${MINIMAL_LINES + 3}:17: /webrtc/turnServers/0/username: string contains an unpaired UTF-16 surrogate (like \\uD800); strings must be well-formed Unicode`,
      ],
    );
    const key = await loadConfigText(`${MINIMAL}"a\\uDC00b": 1\n`);
    assert.ok(!key.ok);
    assert.ok(key.problems.some((p) => /key contains an unpaired/.test(p.message) && p.line === MINIMAL_LINES + 1));
  });

  it("refuses one in a pushed value; accepts well-formed astral characters", async () => {
    const value = (username: string) => ({
      schemaVersion: 1,
      server: { port: 8080 },
      webrtc: {
        icePortRange: [20000, 20100],
        codecs: ["vp8", "opus"],
        turnServers: [{ urls: ["stun:s.example.com"], username }],
      },
    });
    const bad = await validateConfigValue(value("a\uDFFFb"));
    assert.ok(!bad.ok);
    assert.equal(bad.problems[0]!.pointer, "/webrtc/turnServers/0/username");
    assert.ok((await validateConfigValue(value("😀\uD83D\uDE00"))).ok);
  });
});

describe("safe-text", () => {
  it("escapeControlChars escapes C0, DEL, C1, U+2028/9 and bidi controls only", () => {
    assert.equal(
      escapeControlChars("a\u0000\u001b\u007f\u0085\u009f\u2028\u2029\u202e\u2066\u200f\\é😀"),
      "a\\x00\\x1b\\x7f\\x85\\x9f\\u2028\\u2029\\u202e\\u2066\\u200f\\é😀",
    );
  });

  it("redactUserinfo keeps scheme and host", () => {
    assert.equal(
      redactUserinfo('"turn:u:p@h:3478" and turns://x@y, mail a@b'),
      '"turn:***@h:3478" and turns://***@y, mail a@b',
    );
  });

  it("capText cuts with an ellipsis, never inside a surrogate pair", () => {
    assert.equal(capText("abcdef", 4), "abc…");
    assert.equal(capText("ab😀", 3), "ab…");
    assert.equal(capText("a😀b", 3), "a…");
    assert.equal(capText("abc", 3), "abc");
  });

  it("isSecretKey recognises credential-like keys", () => {
    for (const k of ["credential", "credentialFile", "password", "apiToken", "client_secret"])
      assert.ok(isSecretKey(k), k);
    for (const k of ["username", "urls", "level"]) assert.ok(!isSecretKey(k), k);
  });
});
