/**
 * Benchmark of the agent's reload path (issue 3), run with `npm run bench:agent`.
 *
 * Builds and spawns the compiled agent the image runs (`node <flags>
 * dist/agent/cli.js run`) with the node flags of Dockerfile.agent's
 * ENTRYPOINT and the ENV of its runtime stage, under the memory limit of its container in k8s/base/deployment.yaml when
 * this machine lets us create a memory cgroup (see scripts/lib/container-limits.ts: Node
 * sizes the V8 heap from that limit). The agent watches a temp ConfigMap
 * directory (updated like the kubelet does, by scripts/local/atomic-writer.ts)
 * and pushes to a scripted fake SFU that acks every config. Prints:
 * - file swap (rename of ..data) -> config received and acked by the SFU:
 *   p50/p90/p99/max over 200 swaps of a 16 KiB config, 100 ms apart;
 * - the same for a baseline "signal-only reloader" (a child process that
 *   watches the directory and signals on the ..data rename, reading nothing
 *   and waiting for no ack) and the ratio;
 * - agent RSS after start, after 1,000 swaps and after 4,000 more (the
 *   second difference is the leak check: the first includes V8's one-time
 *   warm-up, mostly optimised code);
 * - agent CPU while idle (3 s) after start and after the swaps.
 * Bounded: about 60-100 s on a 2-core machine. Figures, not assertions.
 * `AGENT_NODE_FLAGS="--max-semi-space-size=1"` passes V8 flags to the agent;
 * `AGENT_MEMORY_LIMIT=none` runs it without the container's memory limit.
 */

import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createMemoryCgroup, deploymentMemoryLimit, type MemoryCgroup } from "../scripts/lib/container-limits.ts";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../test/unit/docker/dockerfile.ts";
import { emitFigures } from "./figures.ts";

const ROOT = join(import.meta.dirname, "..");

const SWAPS_MEASURED = 200;
const SWAPS_TOTAL = 1_000;
/** Swaps after SWAPS_TOTAL whose RSS growth tells a leak from warm-up. */
const SWAPS_STEADY = 4_000;
/**
 * Pause between measured swaps. Kubelet swaps of one pod come a minute or
 * more apart; 100 ms (twice the agent's 50 ms debounce of the swap's trailing
 * events) measures each swap on its own instead of on the tail of the last
 * one. The remaining swaps of the RSS phase run back to back.
 */
const SWAP_GAP_MS = 100;
const TARGET_BYTES = 16 * 1024;

/** A valid config of about 16 KiB; `n` changes its hash. */
function bigConfig(n: number): string {
  const head = `schemaVersion: 1\nserver:\n  port: 8080\nlimits:\n  maxRooms: ${n}\nlogging:\n  level: info\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, h264, opus]\n  listenIp: 127.0.0.1\n  turnServers:\n`;
  let body = "";
  for (let i = 0; head.length + body.length < TARGET_BYTES - 60; i++) {
    body += `    - urls: ["stun:stun-${i}.example.net:3478"]  # relay ${i}\n`;
  }
  return head + body;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}
function summary(xs: number[]): { p50: number; p90: number; p99: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
}
const fmt = (x: number) => `${x.toFixed(2)} ms`;

async function rssKiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100 Hz)
}
async function idleCpuPercent(pid: number, ms: number): Promise<number> {
  const a = await cpuTicks(pid);
  await new Promise((r) => setTimeout(r, ms));
  const b = await cpuTicks(pid);
  return ((b - a) * 10 * 100) / ms; // 1 tick = 10 ms
}

async function measureAgent(
  dir: string,
  writer: AtomicWriter,
  cgroup: MemoryCgroup | null,
  image: { env: Record<string, string>; nodeFlags: string[] },
) {
  const nodeFlags = [...image.nodeFlags, ...(process.env["AGENT_NODE_FLAGS"] ?? "").split(" ").filter(Boolean)];
  const args = [...nodeFlags, join(ROOT, "dist", "agent", "cli.js"), "run", "--config-dir", dir];
  args.push("--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "warn");
  const [command, argv] = cgroup ? cgroup.wrap(process.execPath, args) : [process.execPath, args];
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...image.env } });
  const exited = new Promise((r) => child.once("exit", r));
  // --log-level warn hides the start line: find the ports from /proc instead of logs.
  const pid = child.pid as number;
  const pushUrl = await findPushUrl(pid);
  const sfu = await FakeSfu.connect({ url: pushUrl });
  await sfu.waitForConfig(() => true, 10_000);
  await new Promise((r) => setTimeout(r, 1_000));
  const rssStart = await rssKiB(pid);
  const idleStart = await idleCpuPercent(pid, 3_000);

  const latencies: number[] = [];
  const settledRss = async () => {
    await new Promise((r) => setTimeout(r, 2_000));
    return rssKiB(pid);
  };
  let rssAfter = 0;
  for (let n = 2; n <= SWAPS_TOTAL + SWAPS_STEADY + 1; n++) {
    const { renamedAt } = await writer.write({ "config.yaml": bigConfig(n) });
    const m = await sfu.waitForConfig(
      (x) => (x.config as { limits: { maxRooms: number } }).limits.maxRooms === n,
      10_000,
    );
    const rec = sfu.received.find((r) => r.message === m);
    if (n <= SWAPS_MEASURED + 1 && rec) latencies.push(rec.at - renamedAt);
    sfu.received.length = 0; // keep the fake SFU's memory flat
    if (n <= SWAPS_MEASURED + 1) await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
    if (n === SWAPS_TOTAL + 1) rssAfter = await settledRss();
  }
  const rssSteady = await settledRss();
  const idleAfter = await idleCpuPercent(pid, 3_000);
  child.kill("SIGTERM");
  await sfu.closed;
  await exited;
  return { latencies, rssStart, rssAfter, rssSteady, idleStart, idleAfter };
}

async function findPushUrl(pid: number): Promise<string> {
  // The agent listens on two ports; the push server is the one refusing plain HTTP with 426.
  for (let i = 0; i < 200; i++) {
    const ports = await listeningPorts(pid);
    for (const port of ports) {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
      if (res?.status === 426) {
        await res.text();
        return `ws://127.0.0.1:${port}`;
      }
      await res?.text();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("agent push server not found");
}

async function listeningPorts(pid: number): Promise<number[]> {
  const { readdir, readlink } = await import("node:fs/promises");
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const l = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(l);
    if (m?.[1]) inodes.add(m[1]);
  }
  const ports: number[] = [];
  for (const line of (await readFile("/proc/net/tcp", "utf8")).split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && f[9] && inodes.has(f[9])) ports.push(Number.parseInt(f[1]?.split(":")[1] ?? "0", 16));
  }
  return ports;
}

/** Baseline: a signal-only reloader (watch the directory, SIGUSR2 the parent on the ..data rename). */
async function measureBaseline(dir: string, writer: AtomicWriter): Promise<number[]> {
  const script = `
    const fs = require("node:fs");
    fs.watch(${JSON.stringify(dir)}, (ev, name) => { if (name === "..data") process.kill(process.ppid, "SIGUSR2"); });
    process.stdout.write("ready\\n");`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((r) => child.stdout.once("data", r));
  let signalled: () => void = () => {};
  const onSignal = () => signalled();
  process.on("SIGUSR2", onSignal);
  const out: number[] = [];
  for (let n = 0; n < SWAPS_MEASURED; n++) {
    const got = new Promise<number>((r) => {
      signalled = () => r(performance.now());
    });
    const { renamedAt } = await writer.write({ "config.yaml": bigConfig(100_000 - n) });
    out.push((await got) - renamedAt);
    await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
  }
  process.off("SIGUSR2", onSignal);
  child.kill();
  return out;
}

/** The agent container's memory limit as a cgroup, or null (and a line saying why). */
async function memoryLimit(): Promise<{ cgroup: MemoryCgroup | null; line: string }> {
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

async function main(): Promise<void> {
  // The image runs the compiled agent; so does the benchmark.
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
  const dir = await mkdtemp(join(tmpdir(), "sfu-agent-bench-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": bigConfig(1) });
  const flags = process.env["AGENT_NODE_FLAGS"] ? ` agent node flags: ${process.env["AGENT_NODE_FLAGS"]}` : "";
  const limit = await memoryLimit();
  const runtime = (await readDockerfile(join(ROOT, "Dockerfile.agent"))).at(-1) as Stage;
  const image = { env: stageEnv(runtime), nodeFlags: nodeEntrypoint(runtime).nodeFlags };
  const envText = Object.entries(image.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(
    `sfu-agent reload benchmark: ${SWAPS_MEASURED} measured swaps, ${SWAPS_TOTAL + SWAPS_STEADY} swaps total, config ${Buffer.byteLength(bigConfig(1))} bytes, node ${process.version}${flags}`,
  );
  console.log(
    `agent: node ${image.nodeFlags.join(" ")} dist/agent/cli.js with Dockerfile.agent's ENTRYPOINT flags and ENV (${envText}), ${limit.line}`,
  );
  try {
    const t0 = performance.now();
    const agent = await measureAgent(dir, writer, limit.cgroup, image);
    const base = summary(await measureBaseline(dir, writer));
    const lat = summary(agent.latencies);
    console.log("\nswap (rename of ..data) -> SFU has the config and acks it");
    console.log(`  agent     p50 ${fmt(lat.p50)}  p90 ${fmt(lat.p90)}  p99 ${fmt(lat.p99)}  max ${fmt(lat.max)}`);
    console.log(
      `  baseline  p50 ${fmt(base.p50)}  p90 ${fmt(base.p90)}  p99 ${fmt(base.p99)}  max ${fmt(base.max)}  (signal-only reloader: reads nothing, no ack)`,
    );
    console.log(`  ratio     p50 x${(lat.p50 / base.p50).toFixed(1)}  p99 x${(lat.p99 / base.p99).toFixed(1)}`);
    console.log("\nagent RSS");
    console.log(`  after start        ${(agent.rssStart / 1024).toFixed(1)} MiB`);
    const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
    console.log(
      `  after ${SWAPS_TOTAL} swaps   ${mib(agent.rssAfter)}  (growth ${mib(agent.rssAfter - agent.rssStart)})`,
    );
    console.log(
      `  after ${SWAPS_STEADY} more    ${mib(agent.rssSteady)}  (growth ${mib(agent.rssSteady - agent.rssAfter)}: what a leak would add; the first ${SWAPS_TOTAL} include V8's warm-up)`,
    );
    console.log("\nagent CPU while idle (3 s)");
    console.log(`  after start        ${agent.idleStart.toFixed(2)} %`);
    console.log(`  after the swaps    ${agent.idleAfter.toFixed(2)} %`);
    console.log(`\ntotal ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    emitFigures("agent-reload", {
      swap_to_ack_p50_ms: { value: lat.p50, unit: "ms", better: "lower" },
      swap_to_ack_p99_ms: { value: lat.p99, unit: "ms", better: "lower" },
      signal_only_baseline_p99_ms: { value: base.p99, unit: "ms" },
      p99_vs_signal_only_ratio: { value: lat.p99 / base.p99, unit: "x", better: "lower" },
      rss_after_start_mib: { value: agent.rssStart / 1024, unit: "MiB", better: "lower" },
      rss_growth_after_swaps_mib: { value: (agent.rssAfter - agent.rssStart) / 1024, unit: "MiB", better: "lower" },
      rss_growth_next_swaps_mib: { value: (agent.rssSteady - agent.rssAfter) / 1024, unit: "MiB", better: "lower" },
      idle_cpu_percent: { value: agent.idleAfter, unit: "%", better: "lower" },
    });
  } finally {
    await limit.cgroup?.remove();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
