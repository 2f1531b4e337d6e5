/**
 * The loader's bounds (protocol/yaml-document.ts, config-problems.ts): every
 * hostile shape is refused with a located problem, error lists are capped,
 * configs that could not be delivered in one frame are refused. No timings
 * are asserted here (the hostile-input benchmark measures them); the point
 * is what a user sees.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  formatProblem,
  type LoadResult,
  loadConfigText,
  MAX_CONFIG_BYTES,
  MAX_CONFIG_JSON_BYTES,
  MAX_REPORTED_PROBLEMS,
  MAX_YAML_ALIASES,
  MAX_YAML_DEPTH,
  MAX_YAML_EXPANDED_BYTES,
  MAX_YAML_KEYS,
  MAX_YAML_NODES,
  MAX_YAML_TOKENS,
  validateConfigValue,
} from "../../../protocol/config-loader.ts";
import { MAX_FRAME_BYTES } from "../../../protocol/messages-schema.ts";

const MINIMAL =
  "schemaVersion: 1\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n";
const MINIMAL_LINES = MINIMAL.split("\n").length - 1;

function lines(r: LoadResult, source = "c.yaml"): string[] {
  assert.ok(!r.ok, "expected the config to be refused");
  return r.problems.map((p) => formatProblem(source, p));
}

describe("nesting", () => {
  it("refuses deep block nesting at the first node past 64 levels", async () => {
    // 70 nested block mappings under `x`: `x` is level 1 (a key of the root), each `k:` one more.
    const body = Array.from({ length: 70 }, (_, i) => `${"  ".repeat(i + 1)}k:`).join("\n");
    const r = await loadConfigText(`${MINIMAL}x:\n${body} 1\n`);
    const out = lines(r);
    assert.equal(out.length, 1, out.join("\n"));
    assert.match(out[0]!, /^c\.yaml:\d+:\d+: \/x(\/k)+: YAML: nested more than 64 levels deep$/);
  });

  it("refuses 800 KB of compact nested sequences (- - - ...) without a stack overflow", async () => {
    const r = await loadConfigText(`${MINIMAL}x: \n  ${"- ".repeat(400_000)}1\n`);
    assert.match(lines(r).join("\n"), /nested more than 64 levels deep/);
  });

  it("puts the syntax errors that caused runaway nesting before the nesting problem", async () => {
    const r = await loadConfigText(`${MINIMAL}${"a: b: c\n".repeat(200)}`);
    const out = lines(r);
    assert.match(out[0]!, new RegExp(`^c\\.yaml:${MINIMAL_LINES + 1}:\\d+: /: YAML: `));
  });

  it("refuses a deeply nested pushed value without throwing", async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const r = await validateConfigValue({ schemaVersion: 1, x: deep });
    assert.ok(!r.ok);
    assert.match(r.problems.map((p) => p.message).join("\n"), /nested more than 64 levels deep/);
  });
});

describe("alias expansion", () => {
  it("refuses an anchored list aliased 99 times (within the alias limit) by its expanded size", async () => {
    // Short URLs: the 49 aliases' text (about 1.4 MB) stays under the text limit.
    const urls = Array.from({ length: 2_000 }, (_, i) => `        - stun:s-${i}.net\n`).join("");
    const text = `${MINIMAL}  turnServers:\n    - urls: &stun\n${urls}${"    - urls: *stun\n".repeat(99)}`;
    const out = lines(await loadConfigText(text));
    assert.equal(out.length, 1, out.join("\n"));
    // About 2,020 nodes before the first alias and 2,001 per alias: the 49th alias (turnServers/49) crosses 100,000.
    const firstAliasLine = MINIMAL_LINES + 3 + 2_000;
    assert.equal(
      out[0],
      `c.yaml:${firstAliasLine + 48}:13: /webrtc/turnServers/49/urls: YAML: more than ${MAX_YAML_NODES} nodes (counting aliases at their expanded size)`,
    );
  });

  it("refuses an 800 KB anchored list aliased 99 times before expanding anything", async () => {
    const urls = Array.from({ length: 19_000 }, (_, i) => `        - stun:stun-${i}.example.net:3478\n`).join("");
    const text = `${MINIMAL}  turnServers:\n    - urls: &stun\n${urls}${"    - urls: *stun\n".repeat(99)}`;
    assert.ok(Buffer.byteLength(text) <= MAX_CONFIG_BYTES);
    const r = await loadConfigText(text);
    assert.ok(!r.ok);
    assert.match(lines(r).join("\n"), /file too large to read: more than 30000 YAML tokens/);
  });

  it("refuses an 819 KB list of long STUN URLs aliased 99 times (few nodes) by its text after expansion", async () => {
    // 990 URLs of about 830 bytes: 99,000 nodes expanded fit the node limit, 82 MB of text does not.
    const host = (i: number) => `h${i}${"-abcdefghij".repeat(5)}`.padEnd(60, "x");
    const url = (i: number) => `stun:${Array.from({ length: 13 }, () => host(i)).join(".")}.example.net:3478`;
    const urls = Array.from({ length: 990 }, (_, i) => `        - ${url(i)}\n`).join("");
    const text = `${MINIMAL}  turnServers:\n    - urls: &stun\n${urls}${"    - urls: *stun\n".repeat(99)}`;
    assert.ok(Buffer.byteLength(text) > 800_000 && Buffer.byteLength(text) <= MAX_CONFIG_BYTES);
    const out = lines(await loadConfigText(text));
    // The anchored list is about 820 KB: the second alias (turnServers/2) crosses 2 MiB.
    assert.deepEqual(out, [
      `c.yaml:${MINIMAL_LINES + 3 + 990 + 1}:13: /webrtc/turnServers/2/urls: YAML: more than ${MAX_YAML_EXPANDED_BYTES} bytes of text once aliases are expanded (each alias counts its anchor's text again)`,
    ]);
  });

  it("refuses a billion-laughs ladder, and more than the alias limit", async () => {
    const ladder = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 8; i++)
      ladder.push(`${"abcdefgh"[i]}: &${"abcdefgh"[i]} [${`*${"abcdefgh"[i - 1]}, `.repeat(9)}*${"abcdefgh"[i - 1]}]`);
    assert.match(lines(await loadConfigText(`${ladder.join("\n")}\n`)).join("\n"), /more than 100000 nodes/);
    const many = `a: &a 1\nb: [${"*a, ".repeat(MAX_YAML_ALIASES)}*a]\n`;
    assert.deepEqual(lines(await loadConfigText(many)), [
      'c.yaml:1:1: /: missing required key "schemaVersion"',
      'c.yaml:1:1: /: missing required key "server"',
      'c.yaml:1:1: /: missing required key "webrtc"',
      'c.yaml:1:1: /a: unknown key "a"',
      `c.yaml:2:${5 + 4 * MAX_YAML_ALIASES}: /: YAML: more than ${MAX_YAML_ALIASES} aliases; the rest of the file was not read`,
    ]);
  });

  it("accepts aliases in a valid config and expands them", async () => {
    const text = `${MINIMAL}  announcedIps: &ips [192.0.2.1]\n  turnServers:\n    - urls: &u [stun:a.example.com]\n    - urls: *u\n`;
    const r = await loadConfigText(text);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.deepEqual(
      r.config.webrtc.turnServers.map((t) => t.urls),
      [["stun:a.example.com"], ["stun:a.example.com"]],
    );
  });

  it("names an alias without an anchor, and an alias inside its own anchor", async () => {
    assert.ok(
      lines(await loadConfigText(`${MINIMAL}x: *nowhere\n`)).includes(
        `c.yaml:${MINIMAL_LINES + 1}:4: /x: YAML: alias *nowhere has no anchor &nowhere before it`,
      ),
    );
    assert.match(
      lines(await loadConfigText(`${MINIMAL}x: &a [*a]\n`)).join("\n"),
      /alias \*a is inside its own anchor/,
    );
  });
});

describe("key and token limits, capped lists", () => {
  const unknownKeys = (count: number) => {
    const parts = [MINIMAL];
    for (let i = 0; i < count; i++) parts.push(`x${String(i).padStart(5, "0")}: 0\n`);
    return parts.join("");
  };

  it("80,000 unknown keys: 20 problems, the first at the first unknown key, the token limit always listed", async () => {
    const r = await loadConfigText(unknownKeys(80_000));
    const out = lines(r);
    assert.equal(out.length, MAX_REPORTED_PROBLEMS + 1);
    assert.equal(out[0], `c.yaml:${MINIMAL_LINES + 1}:1: /x00000: unknown key "x00000"`);
    assert.equal(out[18], `c.yaml:${MINIMAL_LINES + 19}:1: /x00018: unknown key "x00018"`);
    // Each `x00000: 0` line is 3.5 tokens: the limit is reached on line 8,569 (of 80,006).
    assert.equal(
      out[19],
      `c.yaml:8569:9: /: YAML: file too large to read: more than ${MAX_YAML_TOKENS} YAML tokens; the rest of the file was not read`,
    );
    assert.match(out[20]!, /^c\.yaml:1:1: \/: and \d+ more problem\(s\) not shown$/);
  });

  it("more than 10,000 mapping keys: the keys past the limit are not read, the limit is listed", async () => {
    const keys = Array.from({ length: 12_000 }, (_, i) => `k${i}:\n`).join("");
    const out = lines(await loadConfigText(`${MINIMAL}${keys}`));
    // MINIMAL has 6 keys, so key k9994 is the 10,001st.
    assert.ok(
      out.includes(
        `c.yaml:${MINIMAL_LINES + 9995}:1: /k9994: YAML: more than ${MAX_YAML_KEYS} mapping keys; the keys from here on were not read`,
      ),
      out.join("\n"),
    );
    assert.equal(out[0], `c.yaml:${MINIMAL_LINES + 1}:1: /k0: unknown key "k0"`);
  });

  it("5,000 unknown keys (under every limit): each is reported, the list capped with the right count", async () => {
    const r = await loadConfigText(unknownKeys(5_000));
    assert.ok(!r.ok);
    assert.equal(r.problems.length, MAX_REPORTED_PROBLEMS + 1);
    assert.equal(r.problems.at(-1)!.message, `and ${5_000 - MAX_REPORTED_PROBLEMS} more problem(s) not shown`);
    assert.deepEqual(
      r.problems.slice(0, 3).map((p) => [p.pointer, p.line, p.col]),
      [
        ["/x00000", MINIMAL_LINES + 1, 1],
        ["/x00001", MINIMAL_LINES + 2, 1],
        ["/x00002", MINIMAL_LINES + 3, 1],
      ],
    );
  });

  it("20,000 bad IPs: schema errors are capped like syntax errors, each located", async () => {
    const ips = Array.from({ length: 20_000 }, (_, i) => `    - 300.${(i >> 8) & 255}.${i & 255}.1\n`).join("");
    const r = await loadConfigText(`${MINIMAL}  announcedIps:\n${ips}`);
    const out = lines(r);
    assert.equal(out.length, MAX_REPORTED_PROBLEMS + 1);
    assert.equal(out[0], `c.yaml:${MINIMAL_LINES + 2}:7: /webrtc/announcedIps/0: must be a valid IP address`);
    assert.equal(out[18], `c.yaml:${MINIMAL_LINES + 20}:7: /webrtc/announcedIps/18: must be a valid IP address`);
    assert.match(out[19]!, /: \/: YAML: file too large to read/);
    assert.match(out[20]!, /^c\.yaml:1:1: \/: and \d+ more problem\(s\) not shown$/);
  });

  it("2,000 bad IPs (under the token limit): the summary counts the rest", async () => {
    const ips = Array.from({ length: 2_000 }, (_, i) => `    - 300.${(i >> 8) & 255}.${i & 255}.1\n`).join("");
    const out = lines(await loadConfigText(`${MINIMAL}  announcedIps:\n${ips}`));
    assert.equal(out.length, MAX_REPORTED_PROBLEMS + 1);
    assert.equal(out[19], `c.yaml:${MINIMAL_LINES + 21}:7: /webrtc/announcedIps/19: must be a valid IP address`);
    assert.equal(out[20], "c.yaml:1:1: /: and 1980 more problem(s) not shown");
  });

  it("caps warnings too", async () => {
    const servers = Array.from(
      { length: 30 },
      (_, i) => `    - urls: [turn:t${i}.example.com]\n      username: u\n      credential: c\n`,
    ).join("");
    const r = await loadConfigText(`${MINIMAL}  turnServers:\n${servers}`);
    assert.ok(r.ok);
    assert.equal(r.warnings.length, MAX_REPORTED_PROBLEMS + 1);
    assert.equal(r.warnings.at(-1)!.message, "and 10 more warning(s) not shown");
    assert.equal(r.warnings.at(-1)!.severity, "warning");
  });

  it("refuses more than the token limit of flow items, keeping the problems before the cut", async () => {
    const r = await loadConfigText(`${MINIMAL}bogus: 1\nx: [${"1,".repeat(MAX_YAML_TOKENS)}1]\n`);
    const out = lines(r);
    assert.deepEqual(out.slice(0, 1), [`c.yaml:${MINIMAL_LINES + 1}:1: /bogus: unknown key "bogus"`]);
    assert.match(out.at(-1)!, new RegExp(`^c\\.yaml:${MINIMAL_LINES + 2}:\\d+: /: YAML: file too large to read`));
    assert.equal(out.length, 2, out.join("\n"));
  });

  it("counts what the parse tree keeps besides nodes: blank lines, comments, anchors, stray commas", async () => {
    const near = MAX_CONFIG_BYTES - 1024;
    for (const [name, text] of [
      ["blank lines", `${MINIMAL}${"\n".repeat(near)}`],
      ["comments", `${MINIMAL}${"#\n".repeat(near / 2)}`],
      ["anchors", `${MINIMAL}x: ${"&a ".repeat(near / 3)}1\n`],
      ["stray commas", `${MINIMAL}x: [${" ,".repeat(near / 2)}]\n`],
    ] as const) {
      const out = lines(await loadConfigText(text));
      assert.ok(
        out.some((l) => l.includes(`file too large to read: more than ${MAX_YAML_TOKENS} YAML tokens`)),
        `${name}: ${out.join("\n")}`,
      );
      assert.ok(out.length <= MAX_REPORTED_PROBLEMS + 1, name);
    }
  });

  it("reports duplicate keys at the second one, and refuses list or mapping keys", async () => {
    assert.ok(
      lines(await loadConfigText(`${MINIMAL}x: 1\nx: 2\n`)).includes(
        `c.yaml:${MINIMAL_LINES + 2}:1: /x: YAML: duplicate key "x"; map keys must be unique`,
      ),
    );
    assert.match(
      lines(await loadConfigText(`${MINIMAL}? [a, b]\n: 1\n`)).join("\n"),
      /a mapping key must be a plain value, not a list, mapping or alias/,
    );
  });

  it("caps each message and pointer at 300 characters", async () => {
    const key = "k".repeat(5000);
    const r = await loadConfigText(`${MINIMAL}? ${key}\n: 1\n`);
    assert.ok(!r.ok);
    const p = r.problems[0]!;
    assert.equal(p.message.length, 300);
    assert.ok(p.message.endsWith("…"));
    assert.equal(p.pointer.length, 300);
    assert.deepEqual([p.line, p.col], [MINIMAL_LINES + 1, 3]);
  });

  it("stops a cyclic in-process value at the node limit", async () => {
    const value: Record<string, unknown> = { schemaVersion: 1 };
    value.self = [value];
    const r = await validateConfigValue(value);
    assert.ok(!r.ok);
    assert.match(r.problems.map((p) => p.message).join("\n"), /more than 64 levels deep|more than 100000 nodes/);
  });
});

describe("frame limit", () => {
  /** A valid config whose usernames are `count` entries of `unit`. */
  const withUsernames = (servers: number, username: string) => {
    const entry = `    - urls: ["stun:stun.example.net:3478"]\n      username: '${username}'\n`;
    return `${MINIMAL}  turnServers:\n${entry.repeat(servers)}`;
  };

  it("refuses a valid file under 1 MiB whose push frame would exceed MAX_FRAME_BYTES, naming both sizes", async () => {
    const text = withUsernames(1800, '\\"'.repeat(256)); // each of the 512 characters doubles in JSON
    assert.ok(Buffer.byteLength(text) <= MAX_CONFIG_BYTES);
    const r = await loadConfigText(text);
    const out = lines(r);
    assert.equal(out.length, 1, out.join("\n"));
    assert.match(
      out[0]!,
      new RegExp(
        `^c\\.yaml:1:1: /: config is too large to deliver: its canonical JSON is more than \\d+ bytes, but a push frame is limited to ${MAX_FRAME_BYTES} bytes`,
      ),
    );
  });

  it("accepts a config whose canonical JSON is exactly MAX_CONFIG_JSON_BYTES, refuses one byte more", async () => {
    // One server whose host grows one byte at a time, then `servers` servers whose 512-character
    // usernames (backslashes and quotes) take 1,024 bytes of JSON each.
    const text = (hostPad: number, servers: number) =>
      `${MINIMAL}  turnServers:\n    - urls: ["stun:h${"a".repeat(hostPad)}.example.net"]\n` +
      `    - urls: ["stun:stun.example.net:3478"]\n      username: '${'\\"'.repeat(256)}'\n`.repeat(servers);
    const jsonBytes = async (t: string) => {
      const r = await loadConfigText(t);
      assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
      return Buffer.byteLength(JSON.stringify(r.config));
    };
    const empty = await jsonBytes(text(0, 0));
    const perServer = (await jsonBytes(text(0, 1))) - empty;
    const servers = Math.floor((MAX_CONFIG_JSON_BYTES - empty) / perServer);
    const pad = MAX_CONFIG_JSON_BYTES - (empty + servers * perServer);
    assert.ok(pad >= 0 && pad < perServer);
    assert.equal(await jsonBytes(text(pad, servers)), MAX_CONFIG_JSON_BYTES);
    const over = await loadConfigText(text(pad + 1, servers));
    assert.deepEqual(
      lines(over).map((l) => l.replace(/\d+ bytes, but/, "N bytes, but")),
      [
        `c.yaml:1:1: /: config is too large to deliver: its canonical JSON is more than N bytes, but a push frame is limited to ${MAX_FRAME_BYTES} bytes (the protocol's MAX_FRAME_BYTES), which leaves ${MAX_CONFIG_JSON_BYTES} bytes for the config`,
      ],
    );
  });
});

describe("README", () => {
  it("the 'Validating configs' limits table states the loader's limits", () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Validating configs"), readme.indexOf("## The agent"));
    const n = (v: number) => v.toLocaleString("en");
    for (const [what, value] of [
      ["file size", `1 MiB (${n(MAX_CONFIG_BYTES)} bytes)`],
      ["nesting of lists and mappings", `${MAX_YAML_DEPTH} levels`],
      ["YAML tokens read", n(MAX_YAML_TOKENS)],
      ["nodes, counting each alias", n(MAX_YAML_NODES)],
      ["text after alias expansion", `2 MiB (${n(MAX_YAML_EXPANDED_BYTES)} bytes)`],
      ["aliases", n(MAX_YAML_ALIASES)],
      ["mapping keys", n(MAX_YAML_KEYS)],
      ["canonical JSON of the normalised config", `${n(MAX_CONFIG_JSON_BYTES)} bytes`],
    ] as const) {
      const row = section.split("\n").find((l) => l.startsWith(`| ${what}`));
      assert.ok(row, `no row for ${what}`);
      assert.ok(row.includes(`| ${value}`), `${row} should say ${value}`);
    }
    assert.ok(section.includes(`at most ${MAX_REPORTED_PROBLEMS} problems`));
  });
});
