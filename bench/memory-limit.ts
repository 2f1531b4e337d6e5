/**
 * Runs a benchmarked process under the memory limit its container has in the
 * pod, because Node sizes the V8 heap from that limit: on a 24 GiB machine
 * the young generation alone may grow to 32 MiB, under the agent's 192 MiB
 * limit V8 keeps it at 2 MiB. A memory figure taken without the limit
 * describes a process the pod never runs.
 *
 * The limit is read from k8s/base/deployment.yaml and applied with a child
 * memory cgroup (v1 or v2) of the bench's own cgroup. That needs write access
 * to the cgroup tree (root on a VM or CI runner); when it is missing the
 * caller runs the process without the limit and reports why.
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";

const ROOT = join(import.meta.dirname, "..");
const DEPLOYMENT = join(ROOT, "k8s", "base", "deployment.yaml");

const UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9, "": 1 };

/** Bytes of a Kubernetes memory quantity such as `192Mi`. */
export function quantityBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G|)$/.exec(quantity);
  if (!m?.[1] || m[2] === undefined) throw new Error(`unsupported memory quantity ${JSON.stringify(quantity)}`);
  return Number(m[1]) * (UNITS[m[2]] ?? 1);
}

/** `resources.limits.memory` of a container of the base Deployment (init containers included). */
export function deploymentMemoryLimit(container: string): { quantity: string; bytes: number } {
  const doc = parse(readFileSync(DEPLOYMENT, "utf8")) as {
    spec: { template: { spec: Record<string, { name: string; resources?: { limits?: { memory?: string } } }[]> } };
  };
  const pod = doc.spec.template.spec;
  const found = [...(pod["initContainers"] ?? []), ...(pod["containers"] ?? [])].find((c) => c.name === container);
  const quantity = found?.resources?.limits?.memory;
  if (!quantity) throw new Error(`${DEPLOYMENT}: container ${container} has no resources.limits.memory`);
  return { quantity, bytes: quantityBytes(quantity) };
}

/** A child memory cgroup with a limit; processes join it through {@link wrap}. */
export interface MemoryCgroup {
  /** Command and arguments that run `command args` inside the cgroup (it joins before exec). */
  wrap(command: string, args: string[]): [string, string[]];
  remove(): Promise<void>;
}

/** Creates the cgroup, or returns why it cannot be created here. */
export async function createMemoryCgroup(limitBytes: number): Promise<MemoryCgroup | { unavailable: string }> {
  const name = `sfu-bench-${process.pid}`;
  try {
    const lines = (await readFile("/proc/self/cgroup", "utf8")).trim().split("\n");
    const v1 = lines.map((l) => l.split(":")).find((f) => f[1]?.split(",").includes("memory"));
    let dir: string;
    let limitFile: string;
    if (v1?.[2] !== undefined) {
      dir = join("/sys/fs/cgroup/memory", v1[2], name);
      limitFile = "memory.limit_in_bytes";
    } else {
      const v2 = lines.find((l) => l.startsWith("0::"));
      if (v2 === undefined) return { unavailable: "no memory cgroup in /proc/self/cgroup" };
      const parent = join("/sys/fs/cgroup", v2.slice(3));
      const delegated = await readFile(join(parent, "cgroup.subtree_control"), "utf8").catch(() => "");
      if (!delegated.split(" ").includes("memory")) {
        return { unavailable: `${parent}: the memory controller is not enabled for child cgroups` };
      }
      dir = join(parent, name);
      limitFile = "memory.max";
    }
    await mkdir(dir);
    try {
      await writeFile(join(dir, limitFile), String(limitBytes));
    } catch (err) {
      await rmdir(dir).catch(() => {});
      throw err;
    }
    const procs = join(dir, "cgroup.procs");
    return {
      wrap: (command, args) => ["/bin/sh", ["-c", 'echo $$ > "$0" && exec "$@"', procs, command, ...args]],
      // rmdir succeeds once the cgroup's processes have exited; retry briefly.
      remove: async () => {
        for (let i = 0; i < 50; i++) {
          try {
            await rmdir(dir);
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      },
    };
  } catch (err) {
    return { unavailable: (err as Error).message };
  }
}
