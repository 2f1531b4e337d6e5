/**
 * Runs a process under the limits its container has in the pod
 * (`resources.limits` of k8s/base/deployment.yaml), for benchmarks and for
 * tests that must hold under those limits.
 *
 * Memory matters twice: Node sizes the V8 heap from the cgroup's limit (on a
 * 24 GiB machine the young generation alone may grow to 32 MiB, under the
 * agent's 192 MiB limit V8 keeps it at 2 MiB), and the kernel OOM-kills the
 * process that goes over it. CPU matters for latency: at 200m a process gets
 * 20 ms of CPU per 100 ms period, so one second of synchronous work stalls
 * its event loop for five.
 *
 * The limits are applied with child cgroups (v1 or v2) of this process's own
 * cgroups: memory (`memory.limit_in_bytes` / `memory.max`) and CPU (CFS
 * quota: `cpu.cfs_quota_us` over `cpu.cfs_period_us` / `cpu.max`). That needs
 * write access to the cgroup tree (root on a VM or CI runner); when it is
 * missing the caller gets the reason and runs the process another way.
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";

const ROOT = join(import.meta.dirname, "..", "..");
const DEPLOYMENT = join(ROOT, "k8s", "base", "deployment.yaml");

const UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9, "": 1 };

/** The CFS period used for a CPU limit, in microseconds (the kernel's and the kubelet's default). */
export const CFS_PERIOD_US = 100_000;

/** Bytes of a Kubernetes memory quantity such as `192Mi`. */
export function quantityBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G|)$/.exec(quantity);
  if (!m?.[1] || m[2] === undefined) throw new Error(`unsupported memory quantity ${JSON.stringify(quantity)}`);
  return Number(m[1]) * (UNITS[m[2]] ?? 1);
}

/** Millicores of a Kubernetes CPU quantity such as `200m`, `0.5` or `2`. */
export function quantityMillicores(quantity: string): number {
  const m = /^(\d+)m$/.exec(quantity);
  if (m?.[1]) return Number(m[1]);
  if (/^\d+(\.\d{1,3})?$/.test(quantity)) return Math.round(Number(quantity) * 1000);
  throw new Error(`unsupported CPU quantity ${JSON.stringify(quantity)}`);
}

type Limits = { memory?: string; cpu?: string | number };

function containerLimits(container: string): Limits {
  const doc = parse(readFileSync(DEPLOYMENT, "utf8")) as {
    spec: { template: { spec: Record<string, { name: string; resources?: { limits?: Limits } }[]> } };
  };
  const pod = doc.spec.template.spec;
  const found = [...(pod["initContainers"] ?? []), ...(pod["containers"] ?? [])].find((c) => c.name === container);
  if (!found) throw new Error(`${DEPLOYMENT}: no container ${container}`);
  return found.resources?.limits ?? {};
}

/** `resources.limits.memory` of a container of the base Deployment (init containers included). */
export function deploymentMemoryLimit(container: string): { quantity: string; bytes: number } {
  const quantity = containerLimits(container).memory;
  if (!quantity) throw new Error(`${DEPLOYMENT}: container ${container} has no resources.limits.memory`);
  return { quantity, bytes: quantityBytes(quantity) };
}

/** `resources.limits.cpu` of a container of the base Deployment (init containers included). */
export function deploymentCpuLimit(container: string): { quantity: string; millicores: number } {
  const raw = containerLimits(container).cpu;
  if (raw === undefined) throw new Error(`${DEPLOYMENT}: container ${container} has no resources.limits.cpu`);
  const quantity = String(raw);
  return { quantity, millicores: quantityMillicores(quantity) };
}

/** What the memory cgroup counted; a field is null when this kernel does not expose it. */
export interface MemoryCgroupStats {
  /** Times usage hit the limit (v1 `memory.failcnt`, v2 `memory.events` max). */
  limitHits: number | null;
  /** Processes of the cgroup the OOM killer killed (`oom_kill`). */
  oomKills: number | null;
  /** Peak usage in bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`). */
  peakBytes: number | null;
}

/** Child cgroups with limits; processes join them through {@link LimitCgroup.wrap}. */
export interface LimitCgroup {
  /** The memory limit applied, in bytes. */
  memoryBytes: number;
  /** The CPU limit applied, in millicores; null when none was asked for. */
  cpuMillicores: number | null;
  /** Command and arguments that run `command args` inside the cgroups (it joins before exec). */
  wrap(command: string, args: string[]): [string, string[]];
  /** The memory cgroup's counters. */
  memoryStats(): Promise<MemoryCgroupStats>;
  /** Removes the cgroups once their processes have exited (retries for about 5 s). */
  remove(): Promise<void>;
}

/** Kept for the callers that need memory only: {@link createLimitCgroup} without a CPU limit. */
export type MemoryCgroup = LimitCgroup;

/** Creates a memory cgroup with a limit, or returns why it cannot be created here. */
export function createMemoryCgroup(limitBytes: number): Promise<LimitCgroup | { unavailable: string }> {
  return createLimitCgroup({ memoryBytes: limitBytes });
}

interface Controller {
  dir: string;
  files: Record<string, string>;
}

/** Where a controller's child cgroup goes, and the files that set its limit; or why it cannot. */
async function placeController(
  lines: string[],
  name: "memory" | "cpu",
  child: string,
  value: { memoryBytes: number } | { millicores: number },
): Promise<Controller | string> {
  const v1 = lines.map((l) => l.split(":")).find((f) => f[1]?.split(",").includes(name));
  if (v1?.[2] !== undefined) {
    // The v1 hierarchy is mounted under its controller names (e.g. cpu,cpuacct); the plain name is a link or the mount.
    const dir = join("/sys/fs/cgroup", name, v1[2], child);
    if ("memoryBytes" in value) return { dir, files: { "memory.limit_in_bytes": String(value.memoryBytes) } };
    const quota = Math.round((value.millicores * CFS_PERIOD_US) / 1000);
    return { dir, files: { "cpu.cfs_period_us": String(CFS_PERIOD_US), "cpu.cfs_quota_us": String(quota) } };
  }
  const v2 = lines.find((l) => l.startsWith("0::"));
  if (v2 === undefined) return `no ${name} cgroup in /proc/self/cgroup`;
  const parent = join("/sys/fs/cgroup", v2.slice(3));
  const delegated = await readFile(join(parent, "cgroup.subtree_control"), "utf8").catch(() => "");
  if (!delegated.trim().split(" ").includes(name)) {
    return `${parent}: the ${name} controller is not enabled for child cgroups`;
  }
  const dir = join(parent, child);
  if ("memoryBytes" in value) return { dir, files: { "memory.max": String(value.memoryBytes) } };
  const quota = Math.round((value.millicores * CFS_PERIOD_US) / 1000);
  return { dir, files: { "cpu.max": `${quota} ${CFS_PERIOD_US}` } };
}

/**
 * Creates child cgroups limiting memory to `memoryBytes` and, when given,
 * CPU to `cpuMillicores` (a CFS quota over a 100 ms period); or returns why
 * they cannot be created here (then nothing is left behind).
 */
export async function createLimitCgroup(limits: {
  memoryBytes: number;
  cpuMillicores?: number;
}): Promise<LimitCgroup | { unavailable: string }> {
  const name = `sfu-limits-${process.pid}-${Math.floor(performance.now())}`;
  const made: string[] = [];
  const removeAll = async () => {
    for (const dir of [...made].reverse()) {
      for (let i = 0; i < 50; i++) {
        try {
          await rmdir(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") break;
          // rmdir succeeds once the cgroup's processes have exited.
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  };
  try {
    const lines = (await readFile("/proc/self/cgroup", "utf8")).trim().split("\n");
    const memory = await placeController(lines, "memory", name, { memoryBytes: limits.memoryBytes });
    if (typeof memory === "string") return { unavailable: memory };
    const wanted: Controller[] = [memory];
    if (limits.cpuMillicores !== undefined) {
      const cpu = await placeController(lines, "cpu", name, { millicores: limits.cpuMillicores });
      if (typeof cpu === "string") return { unavailable: cpu };
      // On cgroup v2 both controllers live in one directory.
      if (cpu.dir === memory.dir) Object.assign(memory.files, cpu.files);
      else wanted.push(cpu);
    }
    for (const c of wanted) {
      await mkdir(c.dir);
      made.push(c.dir);
      for (const [file, value] of Object.entries(c.files)) await writeFile(join(c.dir, file), value);
    }
    const procs = made.map((d) => join(d, "cgroup.procs"));
    const v1 = "memory.limit_in_bytes" in memory.files;
    const read = (file: string) => readFile(join(memory.dir, file), "utf8").catch(() => null);
    const field = (text: string | null, key: string) => {
      const m = text === null ? null : new RegExp(`^${key} (\\d+)$`, "m").exec(text);
      return m?.[1] === undefined ? null : Number(m[1]);
    };
    const num = (text: string | null) => (text === null || text.trim() === "" ? null : Number(text.trim()));
    return {
      memoryBytes: limits.memoryBytes,
      cpuMillicores: limits.cpuMillicores ?? null,
      // The shell writes its own pid into every cgroup.procs, then becomes the command.
      wrap: (command, args) => [
        "/bin/sh",
        [
          "-c",
          'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"',
          "cgroup-join",
          String(procs.length),
          ...procs,
          command,
          ...args,
        ],
      ],
      memoryStats: async () => {
        if (v1) {
          return {
            limitHits: num(await read("memory.failcnt")),
            oomKills: field(await read("memory.oom_control"), "oom_kill"),
            peakBytes: num(await read("memory.max_usage_in_bytes")),
          };
        }
        const events = await read("memory.events");
        return {
          limitHits: field(events, "max"),
          oomKills: field(events, "oom_kill"),
          peakBytes: num(await read("memory.peak")),
        };
      },
      remove: removeAll,
    };
  } catch (err) {
    await removeAll();
    return { unavailable: (err as Error).message };
  }
}
