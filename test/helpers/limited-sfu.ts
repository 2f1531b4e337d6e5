/**
 * The real `sfu-server` process as the image runs it (Dockerfile.sfu's node
 * flags and ENV) under the `sfu` container's limits from
 * k8s/base/deployment.yaml (memory and CPU as child cgroups; without cgroups,
 * `--max-old-space-size`, and the test output says so), for the hostile-input
 * suite's SFU tests. The SFU's counterpart of limited-agent.ts.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import {
  createLimitCgroup,
  deploymentCpuLimit,
  deploymentMemoryLimit,
  type LimitCgroup,
} from "../../scripts/lib/container-limits.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../../scripts/lib/dockerfile.ts";

const ROOT = join(import.meta.dirname, "../..");

/** A running limited `sfu-server`. */
export interface LimitedSfu {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` of its HTTP server. */
  base: string;
  /** The cgroup it runs in; null when cgroups are unavailable here. */
  cgroup: LimitCgroup | null;
  /** Asserts the process is still running and its cgroup saw no OOM kill; `what` names the step. */
  alive(what: string): Promise<void>;
  /** SIGTERM, wait for the exit, remove the cgroup. */
  stop(): Promise<void>;
}

/** Starts `sfu/cli.ts` with `args` (besides `--port 0 --host 127.0.0.1`) and resolves once it listens. */
export async function startLimitedSfu(args: string[]): Promise<LimitedSfu> {
  const runtime = (await readDockerfile(join(ROOT, "Dockerfile.sfu"))).at(-1) as Stage;
  const memory = deploymentMemoryLimit("sfu");
  const cpu = deploymentCpuLimit("sfu");
  const limits = await createLimitCgroup({ memoryBytes: memory.bytes, cpuMillicores: cpu.millicores });
  const flags = [...nodeEntrypoint(runtime).nodeFlags];
  let cgroup: LimitCgroup | null = null;
  if ("unavailable" in limits) {
    flags.push(`--max-old-space-size=${Math.floor(memory.bytes / 2 ** 20 / 2)}`);
    console.log(`# NO cgroup (${limits.unavailable}): --max-old-space-size only`);
  } else {
    cgroup = limits;
    console.log(`# cgroup limits of the sfu container: memory ${memory.quantity}, cpu ${cpu.quantity}`);
  }
  const argv0 = [...flags, join(ROOT, "sfu", "cli.ts"), ...args, "--port", "0", "--host", "127.0.0.1"];
  const [command, argv] = cgroup ? cgroup.wrap(process.execPath, argv0) : [process.execPath, argv0];
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { ...process.env, ...stageEnv(runtime) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr?.resume();
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n")) {
        if (line.includes('"SFU listening"')) resolve((JSON.parse(line) as { port: number }).port);
      }
      if (buf.length > 1_000_000) buf = buf.slice(-10_000);
    });
    child.once("exit", (code) => reject(new Error(`sfu-server exited with ${code} before listening`)));
  }).catch(async (err: unknown) => {
    await cgroup?.remove();
    throw err;
  });
  child.stdout?.resume();
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    cgroup,
    async alive(what) {
      const stats = cgroup ? await cgroup.memoryStats() : null;
      assert.ok(
        child.exitCode === null && child.signalCode === null,
        `${what}: sfu-server exited (code ${child.exitCode}, signal ${child.signalCode}); cgroup ${JSON.stringify(stats)}`,
      );
      if (typeof stats?.oomKills === "number") assert.equal(stats.oomKills, 0, `${what}: OOM kill in the SFU's cgroup`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      await cgroup?.remove();
    },
  };
}
