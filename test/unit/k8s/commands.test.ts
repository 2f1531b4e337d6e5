/**
 * Every image the manifests reference is built by one of the project's
 * Dockerfiles at the package's version, and every command and flag they run
 * exists in the package: the entrypoint is a package `bin`, the subcommand is
 * one of `sfu-agent`'s, each flag appears in that command's `--help`, and
 * the real command line parses (no usage error).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { COMMANDS } from "../../../agent/cli.ts";
import { IMAGES, lastInstruction, nodeEntrypoint, readDockerfile } from "../../../scripts/lib/dockerfile.ts";
import { allContainers, findObject, K8S_DIR, type K8sObject, podSpec, REPO_ROOT, renderK8s } from "./manifests.ts";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
};

interface Workload {
  source: string;
  object: K8sObject;
  container: K8sObject;
}

let workloads: Workload[];
let objects: K8sObject[];

/** The TypeScript source of the bin an image's ENTRYPOINT starts. */
async function entrySource(image: string): Promise<{ bin: string; source: string }> {
  const name = image.split(":")[0] as keyof typeof IMAGES;
  const stages = await readDockerfile(join(REPO_ROOT, IMAGES[name]));
  const final = stages.at(-1);
  assert.ok(final);
  const workdir = lastInstruction(final, "WORKDIR")?.text ?? "/";
  const { script } = nodeEntrypoint(final);
  const rel = posix.relative(workdir, script);
  const bin = Object.entries(pkg.bin).find(([, p]) => p === rel)?.[0];
  assert.ok(bin, `${rel} is a package bin`);
  return { bin, source: join(REPO_ROOT, rel.replace(/^dist\//, "").replace(/\.js$/, ".ts")) };
}

/** `--name` of every flag in args (`--name=value` or `--name`). */
function flagNames(args: string[]): string[] {
  return args.filter((a) => a.startsWith("--")).map((a) => a.split("=")[0] as string);
}

/** The environment of a container, ConfigMap keys and the downward API resolved. */
function resolvedEnv(container: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (typeof e.value === "string") env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = "1a2b3c4d";
    else if (e.valueFrom?.configMapKeyRef) {
      env[e.name] = findObject(objects, "ConfigMap", e.valueFrom.configMapKeyRef.name).data[
        e.valueFrom.configMapKeyRef.key
      ];
    }
  }
  return env;
}

/** Expands Kubernetes `$(VAR)` references in args. */
function expand(args: string[], env: Record<string, string>): string[] {
  return args.map((a) => a.replace(/\$\((\w+)\)/g, (_m, v: string) => env[v] ?? `$(${v})`));
}

before(async () => {
  workloads = [];
  objects = [];
  for (const source of ["base", "hook"]) {
    const rendered = await renderK8s(source);
    objects.push(...rendered);
    for (const object of rendered.filter((o) => o.kind === "Deployment" || o.kind === "Job")) {
      for (const container of allContainers(podSpec(object))) workloads.push({ source, object, container });
    }
  }
});

describe("images and commands in the manifests", () => {
  it("reference only the project's images, at the package version", () => {
    assert.ok(workloads.length >= 3);
    for (const { object, container } of workloads) {
      const [name, tag] = String(container.image).split(":");
      assert.ok(name && name in IMAGES, `${object.metadata.name}/${container.name}: ${container.image} is built here`);
      assert.equal(tag, pkg.version, `${container.image} is tagged with the package version`);
    }
  });

  it("start the image's entrypoint (no command override); exec hooks and probes only run node", () => {
    for (const { container } of workloads) {
      assert.equal(container.command, undefined, `${container.name} uses the image ENTRYPOINT`);
      const execs = [container.lifecycle?.preStop, container.lifecycle?.postStart, container.livenessProbe]
        .concat([container.readinessProbe, container.startupProbe])
        .map((h) => h?.exec?.command)
        .filter(Boolean) as string[][];
      for (const command of execs) assert.equal(command[0], "node", `${container.name}: ${command[0]} is in the image`);
    }
  });

  it("use sfu-agent subcommands and flags that its --help lists", async () => {
    for (const { container } of workloads) {
      const { bin, source } = await entrySource(container.image);
      if (bin !== "sfu-agent") continue;
      const [sub, ...rest] = container.args as string[];
      assert.ok(sub && sub in COMMANDS, `sfu-agent ${sub} exists`);
      const { stdout } = await run(process.execPath, [source, sub, "--help"], { timeout: 30_000 });
      for (const flag of flagNames(rest)) assert.match(stdout, new RegExp(`${flag}\\b`), `sfu-agent ${sub} ${flag}`);
    }
  });

  it("use sfu-server flags that its --help lists, and its parser accepts them", async () => {
    const sfu = workloads.filter((w) => w.container.name === "sfu");
    assert.equal(sfu.length, 1);
    for (const { container } of sfu) {
      const { bin, source } = await entrySource(container.image);
      assert.equal(bin, "sfu-server");
      const { stdout } = await run(process.execPath, [source, ...container.args, "--help"], { timeout: 30_000 });
      for (const flag of flagNames(container.args)) assert.match(stdout, new RegExp(`${flag}\\b`), flag);
    }
  });

  it("give the hook a notify command line that parses (it fails on the unreachable AWS endpoint, not on usage)", async () => {
    const hook = workloads.find((w) => w.source === "hook");
    assert.ok(hook);
    const { source } = await entrySource(hook.container.image);
    const mount = hook.container.volumeMounts.find((m: K8sObject) => m.name === "config").mountPath as string;
    const args = expand(hook.container.args, resolvedEnv(hook.container)).map((a) =>
      a.replace(`=${mount}/`, `=${join(K8S_DIR, "base")}/`),
    );
    assert.ok(!args.some((a) => a.includes("$(")), `every $(VAR) resolved: ${args.join(" ")}`);
    const result = await run(process.execPath, [source, ...args, "--endpoint-url=http://127.0.0.1:9"], {
      timeout: 60_000,
      env: { ...process.env, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_MAX_ATTEMPTS: "1" },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    assert.equal(result.code, 1, `exit 1 (publish failed), not 2 (usage): ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /usage/i);
  });
});
