/**
 * Benchmark of the agent's reload path, run with `npm run bench:agent`.
 *
 * Builds and spawns the compiled agent the image runs (`node <flags>
 * dist/agent/cli.js run`) with the node flags of Dockerfile.agent's
 * ENTRYPOINT and the ENV of its runtime stage, under the memory limit of its
 * container in k8s/base/deployment.yaml when this machine lets us create a
 * memory cgroup (see scripts/lib/container-limits.ts: Node sizes the V8 heap
 * from that limit). The agent watches a temp ConfigMap directory (updated
 * like the kubelet does, by scripts/local/atomic-writer.ts) and pushes to a
 * scripted fake SFU that acks every config. Prints:
 * - file swap (rename of ..data) -> config pushed (received by the SFU):
 *   p50/p90/p99/max over 200 swaps of the SHIPPED config
 *   (k8s/base/config.yaml, `limits.maxRooms` changed each time), 100 ms
 *   apart, after 20 unmeasured ones; the target is a p99 within 1.5x of
 *   configmap-reload's;
 * - side by side, for configmap-reload (the usual ConfigMap reloader
 *   sidecar: it watches the directory and, on the ..data event, POSTs to a
 *   webhook and waits for the answer): swap -> webhook request received.
 *   It watches a directory of its own; the bench swaps the agent's and its
 *   directory in turn, so both are measured over the same minute. The real binary when `CONFIGMAP_RELOAD_BIN` names one
 *   (`CONFIGMAP_RELOAD_VERSION` labels it), else a stand-in child process
 *   doing the same (fs.watch of the directory, POST on the ..data rename,
 *   wait for the 200); the output and the figure names say which;
 * - the same swap -> pushed figures for a 16 KiB config (reported, no target);
 * - agent RSS after start, after 1,000 swaps and after 4,000 more (the
 *   second difference is the leak check: the first includes V8's one-time
 *   warm-up, mostly optimised code);
 * - agent CPU while idle (3 s) after start and after the swaps.
 * Bounded: about 2 minutes on a 2-core machine. Figures, not assertions.
 * `AGENT_NODE_FLAGS="--max-semi-space-size=1"` passes V8 flags to the agent;
 * `AGENT_MEMORY_LIMIT=none` runs it without the container's memory limit.
 */

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MemoryCgroup } from "../scripts/lib/container-limits.ts";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { FakeSfu } from "../test/helpers/fake-sfu.ts";
import { emitFigures } from "./figures.ts";
import { agentMemoryLimit, buildImageAgent, COMPILED_CLI } from "./lib/compiled-agent.ts";

const ROOT = join(import.meta.dirname, "..");

const SWAPS_MEASURED = 200;
/**
 * Unmeasured swaps before each measured series, for the agent and for
 * configmap-reload alike: the first reloads of a fresh node process run
 * unoptimised code and the first of any process fault its pages in.
 */
const WARMUP_SWAPS = 20;
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
/** How much slower than configmap-reload's p99 the agent's p99 on the shipped config may be. */
const TARGET_RATIO = 1.5;

const SHIPPED_TEXT = readFileSync(join(ROOT, "k8s", "base", "config.yaml"), "utf8");

/** The shipped config (k8s/base/config.yaml) with `limits.maxRooms: n`, so each swap has a new hash. */
function shippedConfig(n: number): string {
  if (!/^\s*maxRooms:\s*\d+/m.test(SHIPPED_TEXT))
    throw new Error("k8s/base/config.yaml has no limits.maxRooms to vary");
  return SHIPPED_TEXT.replace(/^(\s*maxRooms:\s*)\d+/m, `$1${n}`);
}

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
  reloader: RunningReloader,
) {
  const nodeFlags = [...image.nodeFlags, ...(process.env["AGENT_NODE_FLAGS"] ?? "").split(" ").filter(Boolean)];
  const args = [...nodeFlags, COMPILED_CLI, "run", "--config-dir", dir];
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

  // Every swap gets a new maxRooms, so a new hash: n counts the swaps.
  let n = 1;
  const swap = async (text: (n: number) => string): Promise<number> => {
    n += 1;
    const { renamedAt } = await writer.write({ "config.yaml": text(n) });
    const want = n;
    const m = await sfu.waitForConfig(
      (x) => (x.config as { limits: { maxRooms: number } }).limits.maxRooms === want,
      10_000,
    );
    const rec = sfu.received.find((r) => r.message === m);
    sfu.received.length = 0; // keep the fake SFU's memory flat
    return (rec?.at ?? Number.NaN) - renamedAt;
  };
  const measured = async (text: (n: number) => string): Promise<number[]> => {
    for (let i = 0; i < WARMUP_SWAPS; i++) await swap(text);
    const out: number[] = [];
    for (let i = 0; i < SWAPS_MEASURED; i++) {
      out.push(await swap(text));
      await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
    }
    return out;
  };
  // The shipped config, side by side with configmap-reload: one swap each in
  // turn (each in its own directory, so only one watcher reacts to a swap),
  // so both see the same machine over the same minute.
  const shipped: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < WARMUP_SWAPS + SWAPS_MEASURED; i++) {
    const a = await swap(shippedConfig);
    await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
    const b = await reloader.swap(shippedConfig(1 + (i % 1000)));
    await new Promise((r) => setTimeout(r, SWAP_GAP_MS));
    if (i >= WARMUP_SWAPS) {
      shipped.push(a);
      baseline.push(b);
    }
  }
  const big = await measured(bigConfig);
  const settledRss = async () => {
    await new Promise((r) => setTimeout(r, 2_000));
    return rssKiB(pid);
  };
  while (n <= SWAPS_TOTAL) await swap(bigConfig);
  const rssAfter = await settledRss();
  while (n <= SWAPS_TOTAL + SWAPS_STEADY) await swap(bigConfig);
  const rssSteady = await settledRss();
  const idleAfter = await idleCpuPercent(pid, 3_000);
  child.kill("SIGTERM");
  await sfu.closed;
  await exited;
  return { shipped, baseline, big, rssStart, rssAfter, rssSteady, idleStart, idleAfter };
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

/** Which configmap-reload the baseline runs. */
interface Reloader {
  /** For the output, e.g. "configmap-reload v0.15.0 (/usr/local/bin/configmap-reload)". */
  label: string;
  /** Prefix of the baseline's figure names: says whether it was the real program. */
  figure: "configmap_reload" | "configmap_reload_standin";
  command: string;
  args: (dir: string, webhook: string) => string[];
}

/**
 * The stand-in for configmap-reload when its binary is not available: what
 * configmap-reload's watch loop does, in a small node process. It watches the
 * directory; on an event for `..data` (the kubelet's rename of `..data_tmp`
 * over it) it POSTs to the webhook and waits for the response, one request
 * at a time, as configmap-reload does.
 */
const STAND_IN = `
  const fs = require("node:fs");
  const http = require("node:http");
  const [dir, webhook] = process.argv.slice(1);
  let busy = Promise.resolve();
  const post = () => new Promise((resolve) => {
    const req = http.request(webhook, { method: "POST" }, (res) => { res.resume(); res.on("end", resolve); });
    req.on("error", (e) => { process.stderr.write("error: " + e.message + "\\n"); resolve(); });
    req.end();
  });
  fs.watch(dir, (event, name) => { if (name === "..data") busy = busy.then(post); });
  process.stderr.write("Watching directory: " + JSON.stringify(dir) + "\\n");`;

function reloader(): Reloader {
  const bin = process.env["CONFIGMAP_RELOAD_BIN"];
  if (bin) {
    const version = process.env["CONFIGMAP_RELOAD_VERSION"] ?? "(version not given: set CONFIGMAP_RELOAD_VERSION)";
    return {
      label: `configmap-reload ${version} (${bin})`,
      figure: "configmap_reload",
      command: bin,
      args: (dir, webhook) => [`--volume-dir=${dir}`, `--webhook-url=${webhook}`, "--web.listen-address=127.0.0.1:0"],
    };
  }
  return {
    label:
      "stand-in for configmap-reload (node: fs.watch of the directory, POST to the webhook on the ..data rename, wait for the 200; set CONFIGMAP_RELOAD_BIN to run the real one)",
    figure: "configmap_reload_standin",
    command: process.execPath,
    args: (dir, webhook) => ["-e", STAND_IN, dir, webhook],
  };
}

/** A running configmap-reload (or stand-in) watching its own directory, with the bench as its webhook. */
interface RunningReloader {
  /** Swaps `text` into the reloader's directory; resolves with rename of ..data -> webhook request received, ms. */
  swap(text: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts configmap-reload (or the stand-in) on a directory of its own and
 * serves its webhook (200 at once); ready once a first swap reaches the
 * webhook.
 */
async function startReloader(r: Reloader): Promise<RunningReloader> {
  const dir = await mkdtemp(join(tmpdir(), "sfu-cmr-bench-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": shippedConfig(1) });
  let hit: (at: number) => void = () => {};
  const server = createServer((req, res) => {
    const at = performance.now();
    req.resume();
    req.on("end", () => {
      res.writeHead(200).end();
      hit(at);
    });
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const { port } = server.address() as { port: number };
  const child = spawn(r.command, r.args(dir, `http://127.0.0.1:${port}/-/reload`), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString();
  });
  const exited = new Promise((res) => child.once("exit", res));
  const next = (timeoutMs: number) =>
    new Promise<number>((res, rej) => {
      const t = setTimeout(
        () => rej(new Error(`${r.label}: no webhook request within ${timeoutMs} ms\n${stderr}`)),
        timeoutMs,
      );
      hit = (at) => {
        clearTimeout(t);
        hit = () => {};
        res(at);
      };
    });
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
    server.closeAllConnections();
    await new Promise((res) => server.close(res));
    await rm(dir, { recursive: true, force: true });
  };
  const swap = async (text: string) => {
    const got = next(5_000);
    const { renamedAt } = await writer.write({ "config.yaml": text });
    return (await got) - renamedAt;
  };
  try {
    for (let i = 0; i < 100 && !stderr.includes("Watching directory"); i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    await new Promise((res) => setTimeout(res, 200));
    await swap(shippedConfig(2));
  } catch (err) {
    await stop();
    throw err;
  }
  return { swap, stop };
}

async function main(): Promise<void> {
  // The image runs the compiled agent; so does the benchmark.
  const image = await buildImageAgent();
  const dir = await mkdtemp(join(tmpdir(), "sfu-agent-bench-"));
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": bigConfig(1) });
  const flags = process.env["AGENT_NODE_FLAGS"] ? ` agent node flags: ${process.env["AGENT_NODE_FLAGS"]}` : "";
  const limit = await agentMemoryLimit();
  const envText = Object.entries(image.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const baseline = reloader();
  console.log(
    `sfu-agent reload benchmark: ${SWAPS_MEASURED} measured swaps each of the shipped config (${Buffer.byteLength(shippedConfig(1))} bytes) and of a ${Buffer.byteLength(bigConfig(1))}-byte config, ${SWAPS_TOTAL + SWAPS_STEADY} swaps total, node ${process.version}${flags}`,
  );
  console.log(
    `agent: node ${image.nodeFlags.join(" ")} dist/agent/cli.js with Dockerfile.agent's ENTRYPOINT flags and ENV (${envText}), ${limit.line}`,
  );
  console.log(`baseline: ${baseline.label}, no limits`);
  try {
    const t0 = performance.now();
    const running = await startReloader(baseline);
    const agent = await measureAgent(dir, writer, limit.cgroup, image, running).finally(() => running.stop());
    const base = summary(agent.baseline);
    const shipped = summary(agent.shipped);
    const big = summary(agent.big);
    const row = (x: ReturnType<typeof summary>) =>
      `p50 ${fmt(x.p50)}  p90 ${fmt(x.p90)}  p99 ${fmt(x.p99)}  max ${fmt(x.max)}`;
    const ratio = shipped.p99 / base.p99;
    console.log("\nswap (rename of ..data) -> delivered, shipped config (k8s/base/config.yaml)");
    console.log(`  agent             ${row(shipped)}  (config received by the SFU)`);
    console.log(
      `  configmap-reload  ${row(base)}  (webhook request received; ${baseline.figure === "configmap_reload" ? "real binary" : "stand-in"})`,
    );
    console.log(
      `  ratio             p50 x${(shipped.p50 / base.p50).toFixed(2)}  p99 x${ratio.toFixed(2)}  (target: p99 at most x${TARGET_RATIO}: ${ratio <= TARGET_RATIO ? "met" : "NOT met"})`,
    );
    console.log(
      `\nswap -> config received by the SFU, ${Buffer.byteLength(bigConfig(1))}-byte config (reported, no target)`,
    );
    console.log(`  agent             ${row(big)}`);
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
    const b = baseline.figure;
    emitFigures("agent-reload", {
      shipped_swap_to_push_p50_ms: { value: shipped.p50, unit: "ms", better: "lower" },
      shipped_swap_to_push_p99_ms: { value: shipped.p99, unit: "ms", better: "lower" },
      [`${b}_swap_to_webhook_p50_ms`]: { value: base.p50, unit: "ms" },
      [`${b}_swap_to_webhook_p99_ms`]: { value: base.p99, unit: "ms" },
      [`shipped_p99_vs_${b}_p99_ratio`]: { value: ratio, unit: "x (target <= 1.5)", better: "lower" },
      swap_to_push_16kib_p50_ms: { value: big.p50, unit: "ms", better: "lower" },
      swap_to_push_16kib_p99_ms: { value: big.p99, unit: "ms", better: "lower" },
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
