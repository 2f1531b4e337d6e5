/**
 * The fresh-machine preflight: scripts/setup-system.sh (`npm run setup`)
 * reports each missing Debian package with the exact `apt-get install -y`
 * command and a non-zero exit when it cannot install (not root, no sudo, or
 * --check); the tests' own preflight (test/helpers/system-deps.ts) fails in
 * well under a second with the same command; the README's test command,
 * package.json and .ci/run agree.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { launchChromium } from "../../helpers/browser.ts";
import { coturnDependency, startCoturn } from "../../helpers/coturn.ts";
import {
  chromiumDependency,
  goDependency,
  gorillaWebsocketDependency,
  MissingSystemDependencyError,
  pionWebrtcDependency,
  pythonWebsocketsDependency,
  requireSystemDependency,
} from "../../helpers/system-deps.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SCRIPT = join(ROOT, "scripts", "setup-system.sh");
const ALL =
  "chromium python3-websockets coturn prometheus golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev";

let dir = "";
/** A PATH with only a fake `id` (uid 1000) on it: no sudo, no apt-get, no turnserver, no promtool. */
let userPath = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "setup-system-"));
  userPath = join(dir, "bin");
  await mkdir(userPath);
  await writeFile(join(userPath, "id"), "#!/bin/sh\necho 1000\n");
  await chmod(join(userPath, "id"), 0o755);
  await symlink("/bin/true", join(dir, "present"));
  for (const pkg of ["pion/webrtc", "gorilla/websocket"]) {
    await mkdir(join(dir, "gocode", "src", "github.com", pkg), { recursive: true });
    await writeFile(join(dir, "gocode", "src", "github.com", pkg, "go.mod"), `module github.com/${pkg}\n`);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the script with `env` on top of a minimal environment; bounded to 20 s. */
function setup(args: string[], env: Record<string, string>) {
  const started = performance.now();
  const r = spawnSync("/bin/bash", [SCRIPT, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, ms: performance.now() - started };
}

/** Every check pointed at something present (`/bin/true`), whatever this machine has installed. */
function allPresent(): Record<string, string> {
  const present = join(dir, "present");
  return {
    SFU_SETUP_CHROMIUM: present,
    SFU_SETUP_PYTHON: present,
    SFU_SETUP_TURNSERVER: present,
    SFU_SETUP_PROMTOOL: present,
    SFU_SETUP_GO: present,
    SFU_SETUP_GOCODE: join(dir, "gocode"),
  };
}

describe("scripts/setup-system.sh", () => {
  it("exits 0 and installs nothing when every package is present", () => {
    const r = setup(["--check"], allPresent());
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /setup-system: ok/);
  });

  it("--check with Chromium missing: exit 1 and the exact install command", () => {
    const r = setup(["--check"], { ...allPresent(), SFU_SETUP_CHROMIUM: join(dir, "no-such-chromium") });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /missing Debian packages: chromium\n/);
    assert.ok(r.out.includes("apt-get update && apt-get install -y chromium\n"), r.out);
  });

  it("not root and no sudo: names every missing package in one command and exits 1 without installing", () => {
    const r = setup([], {
      PATH: userPath,
      SFU_SETUP_CHROMIUM: join(dir, "no-such-chromium"),
      SFU_SETUP_PYTHON: join(dir, "no-such-python3"),
      SFU_SETUP_TURNSERVER: "no-such-turnserver",
      SFU_SETUP_PROMTOOL: "no-such-promtool",
      SFU_SETUP_GOCODE: join(dir, "no-such-gocode"),
    });
    assert.equal(r.code, 1, r.out);
    assert.ok(r.out.includes(`apt-get install -y ${ALL}\n`), r.out);
    assert.doesNotMatch(r.out, /installing/);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  });

  it("a Python without websockets counts as python3-websockets missing", () => {
    const r = setup(["--check"], { ...allPresent(), SFU_SETUP_PYTHON: "/bin/false" });
    assert.equal(r.code, 1, r.out);
    assert.ok(r.out.includes("apt-get install -y python3-websockets\n"), r.out);
  });

  it("without the Go packages: golang-go and the two Debian Go source packages in one command", () => {
    const r = setup(["--check"], {
      ...allPresent(),
      SFU_SETUP_GO: "no-such-go",
      SFU_SETUP_GOCODE: join(dir, "no-such-gocode"),
    });
    assert.equal(r.code, 1, r.out);
    assert.ok(
      r.out.includes(
        "apt-get install -y golang-go golang-github-pion-webrtc.v3-dev golang-github-gorilla-websocket-dev\n",
      ),
      r.out,
    );
  });

  it("rejects unknown options with exit 2", () => {
    const r = setup(["--bogus"], allPresent());
    assert.equal(r.code, 2, r.out);
  });
});

describe("the tests' preflight (test/helpers/system-deps.ts)", () => {
  it("a missing Chromium fails at once with the install command", () => {
    const started = performance.now();
    assert.throws(
      () => requireSystemDependency(chromiumDependency(join(dir, "no-such-chromium"))),
      (err: unknown) =>
        err instanceof MissingSystemDependencyError &&
        err.code === "SYSTEM_DEPENDENCY_MISSING" &&
        err.message.includes("apt-get install -y chromium") &&
        err.message.includes("npm run setup"),
    );
    assert.ok(performance.now() - started < 1000);
  });

  it("launchChromium() rejects in under a second when the browser is missing", async () => {
    const saved = process.env.SFU_TEST_CHROMIUM;
    process.env.SFU_TEST_CHROMIUM = join(dir, "no-such-chromium");
    const started = performance.now();
    try {
      await assert.rejects(launchChromium(), /apt-get install -y chromium/);
    } finally {
      if (saved === undefined) delete process.env.SFU_TEST_CHROMIUM;
      else process.env.SFU_TEST_CHROMIUM = saved;
    }
    assert.ok(performance.now() - started < 1000);
  });

  it("a missing coturn fails at once with the install command, and so does startCoturn()", async () => {
    assert.throws(
      () => requireSystemDependency(coturnDependency(join(dir, "no-such-turnserver"))),
      (err: unknown) => err instanceof MissingSystemDependencyError && /apt-get install -y coturn/.test(err.message),
    );
    const saved = process.env.SFU_TEST_TURNSERVER;
    process.env.SFU_TEST_TURNSERVER = join(dir, "no-such-turnserver");
    const started = performance.now();
    try {
      await assert.rejects(startCoturn({ secrets: ["s"] }), /apt-get install -y coturn/);
    } finally {
      if (saved === undefined) delete process.env.SFU_TEST_TURNSERVER;
      else process.env.SFU_TEST_TURNSERVER = saved;
    }
    assert.ok(performance.now() - started < 1000);
  });

  it("a Python that cannot import websockets fails with the install command", () => {
    assert.throws(
      () => requireSystemDependency(pythonWebsocketsDependency(join(dir, "no-such-python3"))),
      /apt-get install -y python3-websockets/,
    );
    assert.throws(() => requireSystemDependency(pythonWebsocketsDependency("/bin/false")), /python3-websockets/);
  });

  it("a missing Go toolchain or Debian Go package fails with its install command", () => {
    assert.throws(() => requireSystemDependency(goDependency(join(dir, "no-such-go"))), /apt-get install -y golang-go/);
    assert.throws(
      () => requireSystemDependency(pionWebrtcDependency(join(dir, "no-such-gocode"))),
      /apt-get install -y golang-github-pion-webrtc\.v3-dev/,
    );
    assert.throws(
      () => requireSystemDependency(gorillaWebsocketDependency(join(dir, "no-such-gocode"))),
      /apt-get install -y golang-github-gorilla-websocket-dev/,
    );
    requireSystemDependency(pionWebrtcDependency(join(dir, "gocode")));
  });

  it("names the same packages as the setup script", async () => {
    const script = await readFile(SCRIPT, "utf8");
    for (const dep of [
      chromiumDependency(),
      pythonWebsocketsDependency(),
      coturnDependency(),
      goDependency(),
      pionWebrtcDependency(),
      gorillaWebsocketDependency(),
    ]) {
      const pkg = dep.install.replace("apt-get install -y ", "");
      assert.match(script, new RegExp(`\\|\\| echo ${pkg.replaceAll(".", "\\.")}\\n`), `setup-system.sh checks ${pkg}`);
    }
  });
});

describe("the README's commands, package.json and .ci/run agree", () => {
  it("README line 2 runs `npm run setup` before the tests, and .ci/run runs that same line", async () => {
    const readme = (await readFile(join(ROOT, "README.md"), "utf8")).split("\n");
    const testLine = readme.find((l) => l.startsWith("npm ci && ") && l.includes("npm test"));
    assert.ok(testLine, "README has the test command");
    const command = testLine.split("#")[0]!.trim();
    assert.equal(command, "npm ci && npm run setup && npm test");
    const ci = await readFile(join(ROOT, ".ci", "run"), "utf8");
    assert.ok(ci.split("\n").includes(command), ".ci/run runs the README's test command");
    assert.doesNotMatch(ci, /apt-get install/, ".ci/run has no second copy of the apt step");
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.setup, "bash scripts/setup-system.sh");
  });
});
