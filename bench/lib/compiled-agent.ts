/**
 * The agent as the image runs it, for the benchmarks that measure the
 * process (bench:agent, bench:memory): compiled with tsconfig.build.json,
 * started with Dockerfile.agent's node flags and ENV, under the memory limit
 * of its container in k8s/base/deployment.yaml when this machine lets us
 * create a memory cgroup (Node sizes the V8 heap from that limit).
 */
import { execFileSync } from "node:child_process";
import { totalmem } from "node:os";
import { join } from "node:path";
import { createMemoryCgroup, deploymentMemoryLimit, type MemoryCgroup } from "../../scripts/lib/container-limits.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../../scripts/lib/dockerfile.ts";

const ROOT = join(import.meta.dirname, "..", "..");

/** The compiled CLI the image runs. */
export const COMPILED_CLI = join(ROOT, "dist", "agent", "cli.js");

/** Compiles the agent (dist/) and returns the image's node flags and ENV. */
export async function buildImageAgent(): Promise<{ env: Record<string, string>; nodeFlags: string[] }> {
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
  const runtime = (await readDockerfile(join(ROOT, "Dockerfile.agent"))).at(-1) as Stage;
  return { env: stageEnv(runtime), nodeFlags: [...nodeEntrypoint(runtime).nodeFlags] };
}

/**
 * A memory cgroup with the sfu-agent container's limit, or null (with why)
 * when none can be made here or `AGENT_MEMORY_LIMIT=none`; `line` says which
 * for the report.
 */
export async function agentMemoryLimit(): Promise<{ cgroup: MemoryCgroup | null; line: string }> {
  if (process.env["AGENT_MEMORY_LIMIT"] === "none") {
    return { cgroup: null, line: "no memory limit (AGENT_MEMORY_LIMIT=none)" };
  }
  const limit = deploymentMemoryLimit("sfu-agent");
  const cgroup = await createMemoryCgroup(limit.bytes);
  if ("unavailable" in cgroup) {
    const machine = `${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
    return {
      cgroup: null,
      line: `NOT under the container's ${limit.quantity} limit (${cgroup.unavailable}): V8 sizes the heap for ${machine}, so RSS overstates the pod's`,
    };
  }
  return { cgroup, line: `under the container's memory limit, ${limit.quantity} (k8s/base/deployment.yaml)` };
}
