/**
 * Benchmark of the agent's reload path (issue 3), run with `npm run bench:agent`.
 *
 * Spawns the real `node agent/cli.ts run` process on a temp ConfigMap
 * directory (updated like the kubelet does, by scripts/local/atomic-writer.ts)
 * and a scripted fake SFU that acks every config, then prints:
 * - file swap (rename of ..data) -> config received and acked by the SFU:
 *   p50/p90/p99/max over 200 swaps of a 16 KiB config, 100 ms apart;
 * - the same for a baseline "signal-only reloader" (a child process that
 *   watches the directory and signals on the ..data rename, reading nothing
 *   and waiting for no ack) and the ratio;
 * - agent RSS after start and after 1,000 swaps;
 * - agent CPU while idle (3 s) after start and after the swaps.
 * Bounded: about 20-60 s on a 2-core machine. Figures, not assertions.
 * `AGENT_NODE_FLAGS="--max-semi-space-size=1"` passes V8 flags to the agent.
 */

import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { agentRunArgs } from "../scripts/local/processes.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { emitFigures } from "./figures.ts";

const SWAPS_MEASURED = 200;
const SWAPS_TOTAL = 1_000;
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

async function measureAgent(dir: string, writer: AtomicWriter) {
  const nodeFlags = (process.env["AGENT_NODE_FLAGS"] ?? "").split(" ").filter(Boolean);
  const child = spawn(
    process.execPath,
    [...nodeFlags, ...agentRunArgs(dir, "127.0.0.1:0", "127.0.0.1:0", "--log-level", "warn")],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
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
  for (let n = 2; n <= SWAPS_TOTAL + 1; n++) {
    const { renamedAt } = await writer.write({ "config.yaml": bigConfig(n) });
    const m = await sfu.waitForConfig(
      (x) => (x.config as { limits: { maxRooms: number } }).limits.maxRooms === n,
      10_000,
    );
    const rec = sfu.received.find((r) => r.message === m);
    if (n <= SWAPS_MEASURED + 1 && rec) latencies.push(rec.at - renamedAt);
    sfu.received.length = 0; // keep the fake SFU's memory flat
    if (n <= SWAPS_MEASURED + 1) await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
  }
  await new Promise((r) => setTimeout(r, 2_000));
  const rssAfter = await rssKiB(pid);
  const idleAfter = await idleCpuPercent(pid, 3_000);
  child.kill("SIGTERM");
  await sfu.closed;
  await exited;
  return { latencies, rssStart, rssAfter, idleStart, idleAfter };
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

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "sfu-agent-bench-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": bigConfig(1) });
  const flags = process.env["AGENT_NODE_FLAGS"] ? ` agent node flags: ${process.env["AGENT_NODE_FLAGS"]}` : "";
  console.log(
    `sfu-agent reload benchmark: ${SWAPS_MEASURED} measured swaps, ${SWAPS_TOTAL} swaps total, config ${Buffer.byteLength(bigConfig(1))} bytes, node ${process.version}${flags}`,
  );
  try {
    const t0 = performance.now();
    const agent = await measureAgent(dir, writer);
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
    console.log(
      `  after ${SWAPS_TOTAL} swaps   ${(agent.rssAfter / 1024).toFixed(1)} MiB  (growth ${((agent.rssAfter - agent.rssStart) / 1024).toFixed(1)} MiB)`,
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
      idle_cpu_percent: { value: agent.idleAfter, unit: "%", better: "lower" },
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
