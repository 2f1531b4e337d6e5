/**
 * The Go client package (protocol/clients/go) from the Node test suite: an
 * offline GOPATH-mode build against Debian's Go sources (/usr/share/gocode),
 * with one private GOPATH and one build cache under node_modules/.cache that
 * every test file (and every run) reuses, so the pion SFU example compiles
 * once and later builds are cache hits.
 */
import { spawn } from "node:child_process";
import { mkdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  goDependency,
  gorillaWebsocketDependency,
  pionWebrtcDependency,
  requireSystemDependency,
} from "./system-deps.ts";

const ROOT = join(import.meta.dirname, "..", "..");
/** The package's source directory. */
export const GO_PACKAGE_DIR = join(ROOT, "protocol", "clients", "go");
/** The package's import (module) path. */
export const GO_IMPORT_PATH = "github.com/sfu-config/sfu-config/protocol/clients/go";
/** Debian's Go source tree. */
export const GOCODE = "/usr/share/gocode";
/** Private GOPATH and build cache, reused between test files and runs. */
export const GO_CACHE_DIR = process.env.SFU_TEST_GO_CACHE || join(ROOT, "node_modules", ".cache", "sfu-config-go");

/** Fails at once, naming the install command, when Go or a Debian Go package is missing. */
export function requireGo(): void {
  requireSystemDependency(goDependency());
  requireSystemDependency(gorillaWebsocketDependency(GOCODE));
  requireSystemDependency(pionWebrtcDependency(GOCODE));
}

/** Environment of every go command: GOPATH mode, offline, the shared cache. */
export function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO111MODULE: "off",
    GOPATH: `${join(GO_CACHE_DIR, "path")}:${GOCODE}`,
    GOCACHE: join(GO_CACHE_DIR, "build"),
    GOFLAGS: "",
    GOPROXY: "off",
    CGO_ENABLED: "0",
  };
}

/**
 * Links the package into the private GOPATH (src/<import path> -> the source
 * tree) and returns the linked directory: go commands run there.
 */
export async function goWorkspace(): Promise<string> {
  requireGo();
  const link = join(GO_CACHE_DIR, "path", "src", GO_IMPORT_PATH);
  await mkdir(join(link, ".."), { recursive: true });
  const current = await readlink(link).catch(() => null);
  if (current !== GO_PACKAGE_DIR) {
    await rm(link, { recursive: true, force: true });
    await symlink(GO_PACKAGE_DIR, link);
  }
  return link;
}

/** Output of one go command. */
export interface GoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `go args...` in the linked package directory; bounded by `timeoutMs`. */
export async function runGo(args: string[], timeoutMs = 240_000): Promise<GoRun> {
  const cwd = await goWorkspace();
  // PWD names the linked path: go derives the import path from it (the real
  // path lies outside GOPATH, which would make it "_/..." and disable the
  // /v3 import resolution of GOPATH mode).
  const env = { ...goEnv(), PWD: cwd };
  const child = spawn(process.env.SFU_TEST_GO || "go", args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

let built: Promise<string> | null = null;

/** Builds examples/pion-sfu once per process (a cache hit after the first run); resolves with the binary's path. */
export function buildPionSfu(): Promise<string> {
  built ??= (async () => {
    const out = join(GO_CACHE_DIR, "bin", "pion-sfu");
    const r = await runGo(["build", "-o", out, "./examples/pion-sfu"]);
    if (r.code !== 0) throw new Error(`go build ./examples/pion-sfu failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return out;
  })();
  return built;
}

/**
 * Builds a throwaway Go program (`source`, package main, free to import the
 * package) from the private GOPATH's `sfu-config-test/<name>` and resolves
 * with the binary's path. Used for drivers that feed the package test data.
 */
export async function buildGoProgram(name: string, source: string): Promise<string> {
  await goWorkspace();
  const dir = join(GO_CACHE_DIR, "path", "src", "sfu-config-test", name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "main.go"), source);
  const out = join(GO_CACHE_DIR, "bin", name);
  const r = await runGo(["build", "-o", out, `sfu-config-test/${name}`]);
  if (r.code !== 0) throw new Error(`go build of ${name} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return out;
}
