/**
 * Preflight for tests that need a Debian package beyond `npm ci` (Chromium,
 * python3-websockets, ...): check it in well under a second and, when it is
 * missing, fail with the exact install command instead of letting the test
 * run into minutes of timeouts. `npm run setup` (scripts/setup-system.sh)
 * installs the same packages.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";

/** A system dependency of some tests. */
export interface SystemDependency {
  /** What is missing, for the message (e.g. "Chromium (/usr/bin/chromium)"). */
  name: string;
  /** Returns true when the dependency is present. Must be fast (it runs before each suite). */
  check: () => boolean;
  /** The exact shell command that installs it (e.g. `apt-get install -y chromium`). */
  install: string;
}

/** Thrown by {@link requireSystemDependency}; `code` is `SYSTEM_DEPENDENCY_MISSING`. */
export class MissingSystemDependencyError extends Error {
  readonly code = "SYSTEM_DEPENDENCY_MISSING";
  /** What is missing. */
  readonly dependency: string;
  /** The exact install command. */
  readonly install: string;
  constructor(dependency: string, install: string) {
    super(`${dependency} is not installed; run \`npm run setup\` as root, or: ${install}`);
    this.name = "MissingSystemDependencyError";
    this.dependency = dependency;
    this.install = install;
  }
}

const satisfied = new Set<string>();

/**
 * Throws {@link MissingSystemDependencyError} (naming the install command)
 * when `dep.check()` fails; a passed check is remembered for the process.
 */
export function requireSystemDependency(dep: SystemDependency): void {
  if (satisfied.has(dep.name)) return;
  if (!dep.check()) throw new MissingSystemDependencyError(dep.name, dep.install);
  satisfied.add(dep.name);
}

/** True when `path` is an executable file. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when `python -c "import <module>"` succeeds within 10 s. */
export function pythonImports(python: string, module: string): boolean {
  const r = spawnSync(python, ["-c", `import ${module}`], { stdio: "ignore", timeout: 10_000 });
  return r.status === 0;
}

/** Debian's Chromium, driven by the browser tests. `SFU_TEST_CHROMIUM` overrides the path. */
export function chromiumDependency(path = process.env.SFU_TEST_CHROMIUM || "/usr/bin/chromium"): SystemDependency {
  return { name: `Chromium (${path})`, check: () => isExecutable(path), install: "apt-get install -y chromium" };
}

/** Debian's python3-websockets, seen by `python` (default /usr/bin/python3), for the Python reference client. */
export function pythonWebsocketsDependency(python = "/usr/bin/python3"): SystemDependency {
  return {
    name: `python3-websockets (import websockets with ${python})`,
    check: () => pythonImports(python, "websockets"),
    install: "apt-get install -y python3-websockets",
  };
}

/** True when `go version` runs within 10 s (`go` on PATH, or `go`). */
export function goRuns(go: string): boolean {
  const r = spawnSync(go, ["version"], { stdio: "ignore", timeout: 10_000 });
  return r.status === 0;
}

/** Debian's Go toolchain (golang-go), for the Go client package (protocol/clients/go). `SFU_TEST_GO` overrides the command. */
export function goDependency(go = process.env.SFU_TEST_GO || "go"): SystemDependency {
  return { name: `Go toolchain (${go} version)`, check: () => goRuns(go), install: "apt-get install -y golang-go" };
}

/** Debian's pion/webrtc v3 sources under `gocode` (default /usr/share/gocode), for the pion SFU example. */
export function pionWebrtcDependency(gocode = "/usr/share/gocode"): SystemDependency {
  const path = `${gocode}/src/github.com/pion/webrtc/go.mod`;
  return {
    name: `pion/webrtc v3 for Go (${path})`,
    check: () => isReadable(path),
    install: "apt-get install -y golang-github-pion-webrtc.v3-dev",
  };
}

/** Debian's gorilla/websocket sources under `gocode` (default /usr/share/gocode), the Go client's one dependency. */
export function gorillaWebsocketDependency(gocode = "/usr/share/gocode"): SystemDependency {
  const path = `${gocode}/src/github.com/gorilla/websocket/go.mod`;
  return {
    name: `gorilla/websocket for Go (${path})`,
    check: () => isReadable(path),
    install: "apt-get install -y golang-github-gorilla-websocket-dev",
  };
}

/** True when `path` is a readable file. */
export function isReadable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
