/**
 * `sfu-agent validate` against the invalid corpus (test/fixtures/invalid/),
 * the valid fixtures, and bad inputs generated here (empty, binary, huge,
 * directory, FIFO, symlinks, unreadable). The bulk runs in-process through
 * runCli(); a handful spawn the real `node agent/cli.ts` to prove the process
 * exit status and streams.
 *
 * Each committed invalid fixture starts with `# expect: <pointer>: <fragment>`
 * and optionally `# at: LINE:COL` (hand-checked position of that problem).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { type CliRun, cli } from "../../helpers/cli-run.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const INVALID_DIR = join(ROOT, "test", "fixtures", "invalid");
const VALID_DIR = join(ROOT, "test", "fixtures", "valid");
const CLI = join(ROOT, "agent", "cli.ts");

/** Runs `node agent/cli.ts ...args` as a real process (bounded by a timeout). */
function spawnCli(args: string[], options: { uid?: number; gid?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, ...options, timeout: 20_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

interface Expectation {
  pointer: string;
  fragment: string;
  at: string | null;
}

function expectationOf(file: string): Expectation {
  const lines = readFileSync(file, "utf8").split("\n");
  const m = /^# expect: (\S+): (.+)$/.exec(lines[0] ?? "");
  assert.ok(m, `${file}: first line must be '# expect: <pointer>: <fragment>'`);
  const at = /^# at: (\d+:\d+)$/.exec(lines[1] ?? "");
  return { pointer: m[1]!, fragment: m[2]!, at: at ? at[1]! : null };
}

/** Asserts the output holds a `FILE:LINE:COL: pointer: ...fragment...` error line (not a warning). */
function assertProblemLine(output: string, file: string, exp: Expectation): void {
  const lines = output.split("\n").filter((l) => l.startsWith(`${file}:`));
  const re = /^(.+):(\d+):(\d+): (\S+): (.+)$/;
  const matching = lines.filter((l) => {
    const m = re.exec(l);
    return m && m[1] === file && m[4] === exp.pointer && !m[5]!.startsWith("warning: ") && m[5]!.includes(exp.fragment);
  });
  assert.ok(matching.length > 0, `no line '${file}:L:C: ${exp.pointer}: ...${exp.fragment}...' in:\n${output}`);
  if (exp.at !== null) {
    const [, , line, col] = re.exec(matching[0]!)!;
    assert.equal(`${line}:${col}`, exp.at, `position of ${exp.pointer} in ${file}`);
  }
}

function assertNoStackTrace(run: CliRun): void {
  assert.doesNotMatch(run.stdout + run.stderr, /\n\s+at /, "stack trace in output");
  assert.doesNotMatch(run.stdout + run.stderr, /Error:|TypeError|RangeError/);
}

const corpus = readdirSync(INVALID_DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => relative(ROOT, join(INVALID_DIR, f)));

describe("validate: committed invalid corpus", () => {
  it("holds at least 40 distinct invalid configs, each with an expectation", () => {
    assert.ok(corpus.length >= 40, `only ${corpus.length} fixtures`);
    const bodies = new Set(corpus.map((f) => readFileSync(join(ROOT, f), "utf8").split("\n").slice(1).join("\n")));
    assert.equal(bodies.size, corpus.length, "fixtures must be distinct");
  });

  for (const file of corpus) {
    it(`${file}: exit 1 with a precise problem line`, async () => {
      const abs = join(ROOT, file);
      const exp = expectationOf(abs);
      const run = await cli("validate", abs);
      assert.equal(run.code, 1, run.stdout);
      assertProblemLine(run.stdout, abs, exp);
      assert.equal(run.stderr, "");
      assertNoStackTrace(run);
    });
  }

  it("reports every file of a mixed batch and exits 1", async () => {
    const files = [join(VALID_DIR, "minimal.yaml"), ...corpus.slice(0, 5).map((f) => join(ROOT, f))];
    const run = await cli("validate", ...files);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /minimal\.yaml: ok sha256:[0-9a-f]{64}\n/);
    for (const f of files.slice(1)) assertProblemLine(run.stdout, f, expectationOf(f));
  });
});

describe("validate: generated bad inputs", () => {
  let dir: string;
  const generated: { name: string; pointer: string; fragment: string }[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sfu-validate-"));
    chmodSync(dir, 0o755);
    const add = (name: string, pointer: string, fragment: string, content?: string | Buffer) => {
      if (content !== undefined) writeFileSync(join(dir, name), content);
      generated.push({ name, pointer, fragment });
    };
    add("empty.yaml", "/", "file is empty", "");
    add("whitespace-only.yaml", "/", "file is empty", "  \n\t\n\n   \n");
    // Random bytes behind a prefix that is never valid UTF-8.
    add(
      "binary-junk.bin",
      "/",
      "not valid UTF-8",
      Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc3]), randomBytes(4096)]),
    );
    add("nul-bytes.yaml", "/", "NUL bytes", "schemaVersion: 1\n\u0000\u0000server:\n");
    add("latin1.yaml", "/", "not valid UTF-8", Buffer.from("schemaVersion: 1\n# caf\xe9\n", "latin1"));
    const valid = readFileSync(join(VALID_DIR, "minimal.yaml"), "utf8");
    const padding = `# ${"x".repeat(1022)}\n`.repeat(1025); // 1025 KiB of comments
    add("huge.yaml", "/", "the limit is 1048576", valid + padding);
    mkdirSync(join(dir, "a-directory.yaml"));
    add("a-directory.yaml", "/", "is a directory");
    add("missing.yaml", "/", "no such file");
    symlinkSync(join(dir, "nowhere.yaml"), join(dir, "dangling-link.yaml"));
    add("dangling-link.yaml", "/", "no such file");
    symlinkSync(join(dir, "loop.yaml"), join(dir, "loop.yaml"));
    add("loop.yaml", "/", "too many levels of symbolic links");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("each gets exit 1, a precise message, no stack trace", async () => {
    assert.ok(generated.length >= 10);
    for (const g of generated) {
      const file = join(dir, g.name);
      const run = await cli("validate", file);
      assert.equal(run.code, 1, `${g.name}: ${run.stdout}`);
      assertProblemLine(run.stdout, file, { pointer: g.pointer, fragment: g.fragment, at: null });
      assertNoStackTrace(run);
    }
  });

  it("a FIFO is refused at once (READ_FAILED), without blocking on a writer", async () => {
    const fifo = join(dir, "config.fifo");
    const mk = await new Promise<number>((resolve) => {
      spawn("mkfifo", [fifo]).on("close", (c) => resolve(c ?? -1));
    });
    assert.equal(mk, 0, "mkfifo failed");
    const run = await cli("validate", "--format", "json", fifo);
    assert.equal(run.code, 1);
    const [report] = JSON.parse(run.stdout) as { code: string; problems: { message: string }[] }[];
    assert.equal(report?.code, "READ_FAILED");
    assert.match(report?.problems[0]?.message ?? "", /not a regular file/);
  });

  it("an unreadable file (mode 000) is READ_FAILED: permission denied", async () => {
    const file = join(dir, "unreadable.yaml");
    writeFileSync(file, readFileSync(join(VALID_DIR, "minimal.yaml")));
    chmodSync(file, 0o000);
    // root reads mode-000 files anyway, so as root the real CLI runs as nobody.
    const asRoot = process.getuid?.() === 0;
    const run = asRoot ? await spawnCli(["validate", file], { uid: 65534, gid: 65534 }) : await cli("validate", file);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assertProblemLine(run.stdout, file, { pointer: "/", fragment: "permission denied", at: null });
    assertNoStackTrace(run);
  });
});

describe("validate: valid files", () => {
  const valid = readdirSync(VALID_DIR)
    .sort()
    .map((f) => join(VALID_DIR, f));

  it("every valid fixture and the example config print 'FILE: ok sha256:...' and exit 0", async () => {
    const files = [...valid, join(ROOT, "k8s", "base", "config.yaml")];
    const run = await cli("validate", ...files);
    assert.equal(run.code, 0, run.stdout);
    for (const f of files) assert.match(run.stdout, new RegExp(`^${escapeRe(f)}: ok sha256:[0-9a-f]{64}$`, "m"));
    assert.equal(run.stderr, "");
  });

  it("spelled-out defaults, key order and JSON syntax do not change the hash", async () => {
    const run = await cli("validate", "--format", "json", ...valid.filter((f) => /minimal|defaults/.test(f)));
    const hashes = new Set((JSON.parse(run.stdout) as { hash: string }[]).map((r) => r.hash));
    assert.equal(hashes.size, 1);
  });

  it("an inline credential warns (FILE:LINE:COL) but passes, and the secret is never printed", async () => {
    const file = join(VALID_DIR, "inline-credential.yaml");
    for (const format of ["text", "json"]) {
      const run = await cli("validate", "--format", format, file);
      assert.equal(run.code, 0);
      assert.doesNotMatch(run.stdout + run.stderr, /not-a-real-secret/);
      if (format === "text") {
        assert.match(
          run.stdout,
          /inline-credential\.yaml:11:19: \/webrtc\/turnServers\/0\/credential: warning: inline/,
        );
      } else {
        const [r] = JSON.parse(run.stdout) as { valid: boolean; warnings: { pointer: string }[] }[];
        assert.equal(r?.valid, true);
        assert.equal(r?.warnings[0]?.pointer, "/webrtc/turnServers/0/credential");
      }
    }
  });

  it("a credentialFile under --secrets-dir that exists passes; --no-check-files skips the existence check only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sfu-validate-cred-"));
    try {
      const secrets = join(dir, "secrets");
      mkdirSync(secrets);
      const secret = join(secrets, "turn-credential");
      writeFileSync(secret, "s3cret\n");
      const body = (path: string) =>
        `schemaVersion: 1\nserver: {port: 8080}\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n` +
        `  turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: u\n      credentialFile: ${path}\n`;
      writeFileSync(join(dir, "ok.yaml"), body(secret));
      writeFileSync(join(dir, "missing.yaml"), body(join(secrets, "absent")));
      writeFileSync(join(dir, "outside.yaml"), body(join(dir, "ok.yaml")));
      writeFileSync(join(dir, "passwd.yaml"), body("/etc/passwd"));
      const sd = ["--secrets-dir", secrets];
      assert.equal((await cli("validate", ...sd, join(dir, "ok.yaml"))).code, 0);
      // The default directory (/etc/sfu/secrets) does not hold it.
      const byDefault = await cli("validate", join(dir, "ok.yaml"));
      assert.equal(byDefault.code, 1);
      assert.match(byDefault.stdout, /\/credentialFile: .*is outside the secrets directory \/etc\/sfu\/secrets/);
      assert.equal((await cli("validate", ...sd, join(dir, "missing.yaml"))).code, 1);
      assert.equal((await cli("validate", ...sd, "--no-check-files", join(dir, "missing.yaml"))).code, 0);
      for (const f of ["outside.yaml", "passwd.yaml"]) {
        for (const extra of [[], ["--no-check-files"]]) {
          const run = await cli("validate", ...sd, ...extra, join(dir, f));
          assert.equal(run.code, 1, `${f} ${extra.join(" ")}`);
          assert.match(
            run.stdout,
            /:\d+:\d+: \/webrtc\/turnServers\/0\/credentialFile: .*is outside the secrets directory/,
          );
        }
      }
      assert.equal((await cli("validate", "--secrets-dir", "", join(dir, "ok.yaml"))).code, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("validate: empty secret files and blank paths", () => {
  it("refuses an empty or whitespace-only credentialFile or authSecretFile (FILE:LINE:COL), and a blank path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sfu-validate-empty-secret-"));
    try {
      const secrets = join(dir, "secrets");
      mkdirSync(secrets);
      writeFileSync(join(secrets, "empty"), "");
      writeFileSync(join(secrets, "blank"), " \n\t\r\n");
      writeFileSync(join(secrets, "good"), "s3cret\n");
      const head =
        "server: {port: 8080}\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n  turnServers:\n";
      const v1 = (path: string) =>
        `schemaVersion: 1\n${head}    - urls: ["turn:turn.example.com:3478"]\n      username: u\n      credentialFile: ${path}\n`;
      const v2 = (path: string) =>
        `schemaVersion: 2\n${head}    - urls: ["turn:turn.example.com:3478"]\n      authSecretFile: ${path}\n`;
      const sd = ["--secrets-dir", secrets];
      for (const [name, body, key] of [
        ["v1", v1, "credentialFile"],
        ["v2", v2, "authSecretFile"],
      ] as const) {
        writeFileSync(join(dir, `${name}-good.yaml`), body(join(secrets, "good")));
        assert.equal((await cli("validate", ...sd, join(dir, `${name}-good.yaml`))).code, 0, `${name} good`);
        for (const secret of ["empty", "blank"]) {
          const file = join(dir, `${name}-${secret}.yaml`);
          writeFileSync(file, body(join(secrets, secret)));
          const run = await cli("validate", ...sd, file);
          assert.equal(run.code, 1, `${name} ${secret}: ${run.stdout}`);
          assert.equal(
            run.stdout.trim(),
            `${file}:${name === "v1" ? 9 : 8}:23: /webrtc/turnServers/0/${key}: ${join(secrets, secret)}: secret file is empty (or only whitespace)`,
          );
        }
        // A blank path is refused by the schema, with or without file checks.
        const blank = join(dir, `${name}-blank-path.yaml`);
        writeFileSync(blank, body('"   "'));
        for (const extra of [[], ["--no-check-files"]]) {
          const run = await cli("validate", ...sd, ...extra, blank);
          assert.equal(run.code, 1, `${name} blank path ${extra.join(" ")}`);
          assert.match(run.stdout, new RegExp(`:\\d+:\\d+: /webrtc/turnServers/0/${key}: `));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("validate: usage and output formats", () => {
  it("no FILE is a usage error (exit 2, usage on stderr)", async () => {
    const run = await cli("validate");
    assert.equal(run.code, 2);
    assert.match(run.stderr, /no FILE given/);
    assert.equal(run.stdout, "");
  });

  it("an unknown flag or bad --format value is exit 2", async () => {
    const unknown = await cli("validate", "--frobnicate", join(VALID_DIR, "minimal.yaml"));
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Unknown option '--frobnicate'/);
    const format = await cli("validate", "--format", "xml", join(VALID_DIR, "minimal.yaml"));
    assert.equal(format.code, 2);
    assert.match(format.stderr, /--format must be text or json/);
  });

  it("--help prints usage to stdout with exit 0", async () => {
    const run = await cli("validate", "--help");
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: sfu-agent validate/);
    assert.match(run.stdout, /FILE:LINE:COL: <json-pointer>: <message>/);
  });

  it("--quiet drops the ok lines", async () => {
    const run = await cli("validate", "-q", join(VALID_DIR, "minimal.yaml"));
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "");
  });

  it("--format json prints {file, valid, code, hash, problems, warnings} per file", async () => {
    const bad = join(INVALID_DIR, "codecs-no-audio.yaml");
    const good = join(VALID_DIR, "minimal.yaml");
    const run = await cli("validate", "--format", "json", good, bad);
    assert.equal(run.code, 1);
    const reports = JSON.parse(run.stdout) as Record<string, unknown>[];
    assert.equal(reports.length, 2);
    assert.deepEqual(Object.keys(reports[0]!).sort(), ["code", "file", "hash", "problems", "valid", "warnings"]);
    assert.equal(reports[0]!.valid, true);
    assert.match(String(reports[0]!.hash), /^sha256:[0-9a-f]{64}$/);
    assert.equal(reports[1]!.valid, false);
    assert.equal(reports[1]!.hash, null);
    assert.equal(reports[1]!.code, "INVALID_CONFIG");
    assert.deepEqual(reports[1]!.problems, [
      {
        severity: "error",
        pointer: "/webrtc/codecs",
        message: "needs at least one audio codec (opus, pcmu, pcma)",
        line: 8,
        col: 11,
      },
    ]);
  });

  it("schemaVersion 3 reports code UNSUPPORTED_SCHEMA in json", async () => {
    const run = await cli("validate", "--format", "json", join(INVALID_DIR, "schema-version-3.yaml"));
    assert.equal((JSON.parse(run.stdout) as { code: string }[])[0]?.code, "UNSUPPORTED_SCHEMA");
  });
});

describe("validate: hostile inputs (bounded output, no secrets, no raw control characters)", () => {
  let dir: string;
  const MINIMAL =
    "schemaVersion: 1\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n";
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sfu-validate-hostile-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("80,000 unknown keys: 20 problem lines by position, the limit reached, then 'and N more'", async () => {
    const keys = Array.from({ length: 80_000 }, (_, i) => `x${String(i).padStart(5, "0")}: 0\n`).join("");
    const file = write("keys.yaml", MINIMAL + keys);
    const run = await cli("validate", file);
    assert.equal(run.code, 1);
    const out = run.stdout.trimEnd().split("\n");
    assert.equal(out.length, 21, run.stdout);
    assert.equal(out[0], `${file}:7:1: /x00000: unknown key "x00000"`);
    assert.equal(out[18], `${file}:25:1: /x00018: unknown key "x00018"`);
    assert.match(out[19]!, /:8569:9: \/: YAML: file too large to read: more than 30000 YAML tokens/);
    assert.match(out[20]!, new RegExp(`^${escapeRe(file)}:1:1: /: and \\d+ more problem\\(s\\) not shown$`));
  });

  it("20,000 bad IPs print 21 lines, not 20,000", async () => {
    const ips = Array.from({ length: 20_000 }, (_, i) => `    - 300.${(i >> 8) & 255}.${i & 255}.1\n`).join("");
    const run = await cli("validate", "--format", "json", write("ips.yaml", `${MINIMAL}  announcedIps:\n${ips}`));
    assert.equal(run.code, 1);
    const [r] = JSON.parse(run.stdout) as { problems: { message: string; line: number }[] }[];
    assert.equal(r?.problems.length, 21);
    assert.equal(r?.problems[0]?.line, 8);
    assert.match(r?.problems[19]?.message ?? "", /file too large to read/);
    assert.match(r?.problems[20]?.message ?? "", /^and \d+ more problem\(s\) not shown$/);
    assert.ok(run.stdout.length < 10_000, `${run.stdout.length} bytes of output`);
  });

  it("a file that is valid but could not be pushed in one frame is refused", async () => {
    const entry = `    - urls: ["stun:stun.example.net:3478"]\n      username: '${'\\"'.repeat(256)}'\n`;
    const run = await cli("validate", write("frame.yaml", `${MINIMAL}  turnServers:\n${entry.repeat(1700)}`));
    assert.equal(run.code, 1);
    assert.match(run.stdout, /:1:1: \/: config is too large to deliver: .* push frame is limited to 1048576 bytes/);
  });

  it("secrets in credentials and URLs never reach the output, in text or json", async () => {
    const files = [
      write(
        "star.yaml",
        `${MINIMAL}  turnServers:\n    - urls: [turn:t.example.com]\n      username: a\n      credential: *Zx9Star\n`,
      ),
      write(
        "pipe.yaml",
        `${MINIMAL}  turnServers:\n    - urls: [turn:t.example.com]\n      username: a\n      credential: |Zx9Pipe\n`,
      ),
      write(
        "fold.yaml",
        `${MINIMAL}  turnServers:\n    - urls: [turn:t.example.com]\n      username: a\n      credential: >Zx9Fold\n`,
      ),
      write("url.yaml", `${MINIMAL}  turnServers:\n    - urls: ["turn:a:Zx9Url@t.example.com"]\n`),
    ];
    for (const format of ["text", "json"]) {
      const run = await cli("validate", "--format", format, ...files);
      assert.equal(run.code, 1);
      assert.doesNotMatch(run.stdout + run.stderr, /Zx9/);
      assert.match(run.stdout, /turn:\*\*\*@t\.example\.com/);
    }
  });

  it("control characters in keys and in the file name are printed escaped", async () => {
    const file = write("evil\u001b]0;t\u0007.yaml", `${MINIMAL}"k\\e[2J\\u202E": 1\n`);
    const run = await cli("validate", file);
    assert.equal(run.code, 1);
    assert.doesNotMatch(run.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    assert.match(run.stdout, /evil\\x1b\]0;t\\x07\.yaml:7:1: \/k\\x1b\[2J\\u202e: unknown key/);
  });

  it("directives and tags are refused with their line:col", async () => {
    const run = await cli(
      "validate",
      write("directive.yaml", `%FOO bar\n---\n${MINIMAL}`),
      write("tag.yaml", `${MINIMAL}logging:\n  level: !evil info\n`),
    );
    assert.equal(run.code, 1);
    assert.match(run.stdout, /directive\.yaml:1:1: \/: YAML directive %FOO is not accepted/);
    assert.match(run.stdout, /tag\.yaml:8:10: \/: YAML tag !evil is not accepted/);
  });

  it("a lone surrogate is refused at its place", async () => {
    const run = await cli("validate", write("surrogate.yaml", `${MINIMAL}logging:\n  level: "\\uD800"\n`));
    assert.equal(run.code, 1);
    assert.match(run.stdout, /surrogate\.yaml:8:10: \/logging\/level: string contains an unpaired UTF-16 surrogate/);
  });
});

describe("validate: the real process", { timeout: 60_000 }, () => {
  it("exit 0 and the ok line on the example config", async () => {
    const run = await spawnCli(["validate", "k8s/base/config.yaml"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^k8s\/base\/config\.yaml: ok sha256:[0-9a-f]{64}\n$/);
    assert.equal(run.stderr, "");
  });

  it("exit 1, precise lines and no stack trace on several invalid files at once", async () => {
    const files = [
      "test/fixtures/invalid/alias-bomb.yaml",
      "test/fixtures/invalid/codecs-duplicate.yaml",
      "test/fixtures/invalid/ice-range-inverted.yaml",
      "test/fixtures/invalid/syntax-tab-indent.yaml",
      "test/fixtures/invalid/turn-http-scheme.yaml",
      "test", // a directory
    ];
    const run = await spawnCli(["validate", ...files]);
    assert.equal(run.code, 1, run.stderr);
    for (const f of files.slice(0, -1)) assertProblemLine(run.stdout, f, expectationOf(join(ROOT, f)));
    assert.match(run.stdout, /^test:1:1: \/: is a directory, not a config file$/m);
    assert.match(run.stdout, /^test\/fixtures\/invalid\/syntax-tab-indent\.yaml:4:1: \/: YAML: Tabs/m);
    assertNoStackTrace(run);
    assert.equal(run.stderr, "");
  });

  it("exit 2 on a usage error", async () => {
    const run = await spawnCli(["validate", "--nope"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Unknown option/);
    assertNoStackTrace(run);
  });

  it("--format json from the real process parses", async () => {
    const run = await spawnCli(["validate", "--format", "json", "test/fixtures/invalid/codecs-empty.yaml"]);
    assert.equal(run.code, 1);
    const [r] = JSON.parse(run.stdout) as { problems: { pointer: string }[] }[];
    assert.equal(r?.problems[0]?.pointer, "/webrtc/codecs");
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("sfu-agent validate: rollout policies", () => {
  const dir = mkdtempSync(join(tmpdir(), "validate-rollout-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("validates rollout.yaml by name and any file by shape (steps, no config keys); prints its steps", async () => {
    const byName = join(dir, "rollout.yaml");
    writeFileSync(byName, "schemaVersion: 1\nsteps:\n  - { percent: 10, bake: 5m }\n  - { percent: 100, bake: 90s }\n");
    const byShape = join(dir, "canary-policy.yml");
    writeFileSync(byShape, '{"schemaVersion": 1, "steps": [{"percent": 100, "bake": "1h"}]}');
    const run = await cli("validate", byName, byShape, join(VALID_DIR, "minimal.yaml"));
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.deepEqual(run.stdout.trimEnd().split("\n").slice(0, 2), [
      `${byName}: ok rollout policy: 10% for 5m, 100% for 90s`,
      `${byShape}: ok rollout policy: 100% for 1h`,
    ]);
    assert.match(run.stdout, /minimal\.yaml: ok sha256:/);
  });

  it("an invalid policy: FILE:LINE:COL lines, exit 1, kind rollout-policy in json", async () => {
    const bad = join(dir, "rollout.yml");
    writeFileSync(
      bad,
      "schemaVersion: 1\nsteps:\n  - percent: 50\n  - percent: 20\n  - { percent: 100, bake: soon }\n",
    );
    const run = await cli("validate", bad);
    assert.equal(run.code, 1);
    assert.deepEqual(run.stdout.trimEnd().split("\n"), [
      `${bad}:4:14: /steps/1/percent: steps must increase: 20 follows 50`,
      `${bad}:5:27: /steps/2/bake: must match pattern "^[0-9]{1,6}(\\.[0-9]{1,3})?(s|m|h)$"`,
    ]);
    const json = await cli("validate", "--format", "json", bad);
    const [report] = JSON.parse(json.stdout) as Record<string, unknown>[];
    assert.equal(report?.kind, "rollout-policy");
    assert.equal(report?.code, "INVALID_POLICY");
    assert.equal(report?.valid, false);
  });
});
