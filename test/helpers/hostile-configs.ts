/**
 * A deterministic family of hostile config files, each under the loader's
 * 1 MiB file limit, for the agent's robustness test and the hostile-input
 * benchmark. Every case is a file a careless or malicious commit could put
 * in the ConfigMap, and every one is refused: the family covers the ways a
 * small file can cost unbounded memory or time (deep nesting, alias
 * expansion, floods of unknown keys or bad values), a valid-looking file
 * whose push frame would not fit the protocol's frame limit, secrets that
 * YAML or URI errors would quote, terminal escapes, YAML directives and tags,
 * and a string that cannot be hashed portably.
 *
 * Each case says what a user should see (a problem matching `problem`, the
 * file refused, one problem at `line` when the place is unambiguous), and, when it
 * embeds one, the secret string that must appear in no error, log, status
 * or metric.
 *
 * @example
 * for (const c of hostileConfigs()) await writer.write({ "config.yaml": c.text });
 */
import { MAX_CONFIG_BYTES } from "../../protocol/config-loader.ts";

/** One hostile config file and what a user should see for it. */
export interface HostileConfig {
  /** Short kebab-case name, stable across runs. */
  name: string;
  /** What the file does, for test and bench output. */
  description: string;
  /** The file content (UTF-8 YAML). */
  text: string;
  /** Byte length of `text` in UTF-8. */
  bytes: number;
  /** The problem text a user should see for this file (the file is always invalid). */
  problem: RegExp;
  /**
   * 1-based line one of the reported problems must point at, when only one
   * place is right (other problems it causes may come first, e.g. the TURN
   * server entry holding a broken credential).
   */
  line: number | null;
  /** A distinctive secret embedded in the file that must appear nowhere in output; null when none. */
  secret: string | null;
  /**
   * Set on a smaller size of another case (the name of the biggest one):
   * tests that run the agent may skip these, benchmarks report them.
   */
  smallerOf: string | null;
}

/** Largest file the loader accepts, in bytes: every hostile case is at most this. */
export const HOSTILE_FILE_LIMIT = MAX_CONFIG_BYTES;

/** A valid config every hostile case starts from; `maxRooms` tells two of them apart. */
export function goodConfig(maxRooms = 1): string {
  return `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1
logging:
  level: info
limits:
  maxRooms: ${maxRooms}
`;
}

/** The lines of {@link goodConfig} before `logging:`, i.e. up to the end of `webrtc:`. */
const WEBRTC_HEAD = `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8, opus]
  listenIp: 127.0.0.1
`;

const TAIL = `logging:
  level: info
limits:
  maxRooms: 1
`;

/** 1-based line of the first occurrence of `needle` in `text`. */
function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`hostile-configs: ${JSON.stringify(needle)} not in the text`);
  let line = 1;
  for (let i = 0; i < at; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function make(c: Omit<HostileConfig, "bytes" | "smallerOf"> & { smallerOf?: string }): HostileConfig {
  const bytes = Buffer.byteLength(c.text, "utf8");
  if (bytes > HOSTILE_FILE_LIMIT) throw new Error(`hostile-configs: ${c.name} is ${bytes} bytes, over the limit`);
  return { ...c, bytes, smallerOf: c.smallerOf ?? null };
}

/** `depth` nested flow sequences as the value of `announcedIps`: costs stack or memory per level. */
function nestedFlow(depth: number): HostileConfig {
  const text = `${WEBRTC_HEAD}  announcedIps: ${"[".repeat(depth)}${"]".repeat(depth)}\n${TAIL}`;
  return make({
    name: "nested-flow-sequences",
    description: `${depth.toLocaleString("en")} nested flow sequences [[[...]]]`,
    text,
    problem: /nest|deep|depth/i,
    line: lineOf(text, "announcedIps"),
    secret: null,
  });
}

/**
 * One anchored list of `urls` STUN URLs aliased `aliases` times: few aliases
 * (99 is within a cap of 100 alias uses), but the expanded value is
 * `aliases + 1` times the list, about 80 MB of strings for an 800 KB file.
 * The shape is otherwise valid.
 */
function aliasExpansion(urls: number, aliases: number): HostileConfig {
  const parts = [`${WEBRTC_HEAD}  turnServers:\n    - urls: &stun\n`];
  for (let i = 0; i < urls; i++) parts.push(`        - stun:stun-${i}.example.net:3478\n`);
  for (let i = 0; i < aliases; i++) parts.push("    - urls: *stun\n");
  const text = parts.join("") + TAIL;
  return make({
    name: "alias-expansion",
    description: `${urls.toLocaleString("en")} STUN URLs anchored once and aliased ${aliases} times (${(urls * (aliases + 1)).toLocaleString("en")} URLs after expansion)`,
    text,
    problem: /alias|expan|nodes|too (many|large|big)/i,
    line: null,
    secret: null,
  });
}

/**
 * One anchored list of `urls` long STUN URLs (about 830 bytes each) aliased
 * 99 times: few nodes (99,000 once expanded, under the node limit), but about
 * 82 MB of text once expanded from an 819 KB file. Refused by the bytes of
 * text after expansion.
 */
function aliasTextExpansion(urls: number): HostileConfig {
  const host = (i: number) => `h${i}${"-abcdefghij".repeat(5)}`.padEnd(60, "x");
  const url = (i: number) => `stun:${Array.from({ length: 13 }, () => host(i)).join(".")}.example.net:3478`;
  const parts = [`${WEBRTC_HEAD}  turnServers:\n    - urls: &stun\n`];
  for (let i = 0; i < urls; i++) parts.push(`        - ${url(i)}\n`);
  for (let i = 0; i < 99; i++) parts.push("    - urls: *stun\n");
  const text = parts.join("") + TAIL;
  return make({
    name: "alias-text-expansion",
    description: `${urls.toLocaleString("en")} long STUN URLs anchored once and aliased 99 times (about ${Math.round((Buffer.byteLength(text) * 100) / 1e6)} MB of text after expansion)`,
    text,
    problem: /bytes of text once aliases are expanded/,
    line: lineOf(text, "    - urls: *stun") + 1,
    secret: null,
  });
}

/** `count` unknown top-level keys after a valid config. */
function unknownKeys(count: number, smallerOf?: string): HostileConfig {
  const width = String(count - 1).length;
  const parts = [goodConfig()];
  for (let i = 0; i < count; i++) parts.push(`x${String(i).padStart(width, "0")}: 0\n`);
  const text = parts.join("");
  return make({
    name: `unknown-keys-${count / 1000}k`,
    description: `${count.toLocaleString("en")} unknown top-level keys`,
    text,
    problem: /unknown|not allowed|additional|unexpected/i,
    line: lineOf(text, `x${"0".repeat(width)}:`),
    secret: null,
    ...(smallerOf ? { smallerOf } : {}),
  });
}

/** `count` distinct malformed IPv4 addresses in `announcedIps`. */
function badIps(count: number): HostileConfig {
  const parts = [`${WEBRTC_HEAD}  announcedIps:\n`];
  for (let i = 0; i < count; i++) parts.push(`    - 300.${(i >> 8) & 255}.${i & 255}.1\n`);
  const text = parts.join("") + TAIL;
  return make({
    name: `bad-ips-${count / 1000}k`,
    description: `${count.toLocaleString("en")} malformed IP addresses in announcedIps`,
    text,
    problem: /ip|address|format/i,
    line: lineOf(text, "300.0.0.1"),
    secret: null,
  });
}

/**
 * A valid file of exactly `bytes` bytes whose TURN usernames are 512
 * backslashes and double quotes each: every one of those characters doubles
 * when the config is written as JSON, so the push frame is about twice the
 * file, over the protocol's 1 MiB frame limit.
 */
function undeliverable(bytes: number): HostileConfig {
  const username = '\\"'.repeat(256); // the schema's maximum username length, 512
  const parts = [`${WEBRTC_HEAD}  turnServers:\n`];
  let size = Buffer.byteLength(parts[0] as string) + Buffer.byteLength(TAIL);
  for (let i = 0; ; i++) {
    const entry = `    - urls: ["stun:stun-${i}.example.net:3478"]\n      username: '${username}'\n`;
    if (size + entry.length + 4 > bytes) break;
    parts.push(entry);
    size += entry.length;
  }
  parts.push(TAIL);
  // Pad to the exact size with a comment line.
  const pad = bytes - size;
  parts.push(`#${"-".repeat(pad - 2)}\n`);
  const text = parts.join("");
  return make({
    name: "undeliverable-frame",
    description: `valid ${bytes.toLocaleString("en")}-byte file of backslash-and-quote usernames whose push frame exceeds 1 MiB`,
    text,
    problem: /frame/i,
    line: null,
    secret: null,
  });
}

/** A TURN server whose inline credential is written unquoted after a YAML indicator. */
function credentialAfterIndicator(name: string, indicator: string, secret: string, problem: RegExp): HostileConfig {
  const text = `${WEBRTC_HEAD}  turnServers:
    - urls: ["turn:turn.example.com:3478"]
      username: alice
      credential: ${indicator}${secret}
${TAIL}`;
  return make({
    name,
    description: `unquoted inline credential starting with ${JSON.stringify(indicator)}`,
    text,
    problem,
    line: lineOf(text, "credential:"),
    secret,
  });
}

function turnUserinfo(): HostileConfig {
  const secret = "Zx9UrlSecret43";
  const text = `${WEBRTC_HEAD}  turnServers:
    - urls: ["turn:alice:${secret}@turn.example.com:3478"]
${TAIL}`;
  return make({
    name: "turn-url-userinfo",
    description: "TURN URL with user:password@ userinfo",
    text,
    problem: /uri|url/i,
    line: lineOf(text, "turn:alice"),
    secret,
  });
}

function controlCharKey(): HostileConfig {
  // YAML double-quoted escapes: \e is ESC, \a is BEL. A terminal would set its title and clear the screen.
  const text = `${goodConfig()}"x\\e]0;pwned\\a\\e[2J\\e[31mred": 1\n`;
  return make({
    name: "control-chars-in-key",
    description: "an unknown key holding ESC/BEL terminal escape sequences",
    text,
    problem: /unknown|not allowed|additional|unexpected/i,
    line: lineOf(text, '"x\\e'),
    secret: null,
  });
}

function directive(name: string, line: string): HostileConfig {
  const text = `${line}\n---\n${goodConfig()}`;
  return make({
    name,
    description: `YAML directive ${line}`,
    text,
    problem: /directive|%|version/i,
    line: 1,
    secret: null,
  });
}

function tag(): HostileConfig {
  const text = `${WEBRTC_HEAD}logging:\n  level: !evil info\nlimits:\n  maxRooms: 1\n`;
  return make({
    name: "yaml-tag",
    description: "a custom YAML tag (!evil) on a value",
    text,
    problem: /tag/i,
    line: lineOf(text, "!evil"),
    secret: null,
  });
}

function loneSurrogate(): HostileConfig {
  const text = `${WEBRTC_HEAD}  turnServers:
    - urls: ["stun:stun.example.net:3478"]
      username: "\\uD800"
${TAIL}`;
  return make({
    name: "lone-surrogate",
    description: 'a lone UTF-16 surrogate ("\\uD800") in a string',
    text,
    problem: /surrogate/i,
    line: lineOf(text, "username:"),
    secret: null,
  });
}

/**
 * The hostile family, biggest sizes first within each kind. Deterministic:
 * the same texts on every call. About 5 MB of strings in all; build it once.
 */
export function hostileConfigs(): HostileConfig[] {
  return [
    nestedFlow(400_000),
    aliasExpansion(19_000, 99),
    aliasTextExpansion(990),
    unknownKeys(80_000),
    unknownKeys(20_000, "unknown-keys-80k"),
    badIps(20_000),
    undeliverable(1_025_000),
    // An alias to an anchor that does not exist, and block scalar headers with extra characters.
    credentialAfterIndicator("credential-star", "*", "Zx9StarSecret41", /alias|anchor/i),
    credentialAfterIndicator("credential-pipe", "|", "Zx9PipeSecret42", /block scalar|header|indicator/i),
    credentialAfterIndicator("credential-gt", ">", "Zx9FoldSecret44", /block scalar|header|indicator/i),
    turnUserinfo(),
    controlCharKey(),
    directive("directive-unknown", "%FOO bar"),
    directive("directive-yaml-9.9", "%YAML 9.9"),
    tag(),
    loneSurrogate(),
  ];
}
