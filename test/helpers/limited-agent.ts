/**
 * The real agent process as the image runs it (`node --memory-saver-mode`
 * and Dockerfile.agent's ENV) under its container's limits from
 * k8s/base/deployment.yaml (memory and CPU as child cgroups), for the
 * standing hostile-input suite (test/integration/hostile/). When cgroups
 * cannot be created here, the agent runs with `--max-old-space-size` and a
 * watchdog that kills it above the memory limit, and `limitNote` says so
 * (`HOSTILE_TEST_LIMITS=watchdog` forces that mode). Also: a GET that never
 * throws and a /healthz poller recording every poll.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  createLimitCgroup,
  deploymentCpuLimit,
  deploymentMemoryLimit,
  type LimitCgroup,
} from "../../scripts/lib/container-limits.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../../scripts/lib/dockerfile.ts";

const ROOT = join(import.meta.dirname, "../..");
/** The agent's CLI entry point. */
export const CLI = join(ROOT, "agent", "cli.ts");
/** /healthz must answer within this, on every poll. */
export const HEALTHZ_TIMEOUT_MS = 2_000;
const HEALTHZ_EVERY_MS = 250;
/** Log bytes kept (the rest is counted, not kept). */
const LOG_KEEP_BYTES = 8 * 1024 * 1024;

/** Options of {@link startLimitedAgent}. */
export interface LimitedAgentOptions {
  /** More `sfu-agent run` arguments (after --config-dir, --listen and --http). */
  args?: string[];
  /** More environment variables. */
  env?: Record<string, string>;
  /** Pass `--listen 127.0.0.1:0` (default true; false for `--push`, which excludes it). */
  listen?: boolean;
}

export interface HealthPoll {
  at: number;
  ok: boolean;
  ms: number;
  detail: string;
  phase: string;
}

export interface Running {
  child: ChildProcess;
  http: string;
  push: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every log line (stdout and stderr) so far, up to LOG_KEEP_BYTES. */
  log: string[];
  logBytes: () => number;
  longestLogLine: () => number;
  /** The CPU limit applied, in millicores; null when none. */
  cpuMillicores: number | null;
  /** How the memory limit is enforced, for the test output. */
  limitNote: string;
  cgroup: LimitCgroup | null;
  /** Set when the RSS watchdog (no cgroup) killed the agent. */
  watchdogKill: () => string | null;
  peakRssKiB: () => Promise<number>;
  /** CPU time the agent has used so far (user + system), ms. */
  cpuMs: () => Promise<number>;
  stop(): Promise<void>;
}

export async function startLimitedAgent(dir: string, options: LimitedAgentOptions = {}): Promise<Running> {
  const runtime = (await readDockerfile(join(ROOT, "Dockerfile.agent"))).at(-1) as Stage;
  const entry = nodeEntrypoint(runtime);
  const memory = deploymentMemoryLimit("sfu-agent");
  const cpu = deploymentCpuLimit("sfu-agent");
  const cgroup =
    process.env["HOSTILE_TEST_LIMITS"] === "watchdog"
      ? { unavailable: "HOSTILE_TEST_LIMITS=watchdog" }
      : await createLimitCgroup({ memoryBytes: memory.bytes, cpuMillicores: cpu.millicores });
  const flags = [...entry.nodeFlags];
  let limitNote: string;
  if ("unavailable" in cgroup) {
    // Roughly what V8 picks for its old space under a limit of this size.
    flags.push(`--max-old-space-size=${Math.floor(memory.bytes / 2 ** 20 / 2)}`);
    limitNote = `NO cgroup (${cgroup.unavailable}): --max-old-space-size plus an RSS watchdog at ${memory.quantity}, no CPU limit`;
  } else {
    limitNote = `cgroup limits of the sfu-agent container: memory ${memory.quantity}, cpu ${cpu.quantity}`;
  }
  const args = [
    ...flags,
    CLI,
    "run",
    "--config-dir",
    dir,
    ...(options.listen === false ? [] : ["--listen", "127.0.0.1:0"]),
    "--http",
    "127.0.0.1:0",
    ...(options.args ?? []),
  ];
  const [command, argv] = "unavailable" in cgroup ? [process.execPath, args] : cgroup.wrap(process.execPath, args);
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { ...process.env, ...stageEnv(runtime), ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const log: string[] = [];
  let kept = 0;
  let total = 0;
  let longest = 0;
  let resolveStarted: (v: { push: string; http: string }) => void = () => {};
  const started = new Promise<{ push: string; http: string }>((r) => {
    resolveStarted = r;
  });
  const reader = (stream: NodeJS.ReadableStream) => {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const bytes = Buffer.byteLength(line) + 1;
        total += bytes;
        longest = Math.max(longest, bytes);
        if (kept + bytes <= LOG_KEEP_BYTES) {
          kept += bytes;
          log.push(line);
        }
        if (line.includes('"agent started"')) {
          const l = JSON.parse(line) as { push: string; http: string };
          resolveStarted({ push: l.push, http: l.http });
        }
      }
      // A line without a newline still counts (and must not grow without bound).
      if (buf.length > LOG_KEEP_BYTES) {
        total += buf.length;
        longest = Math.max(longest, buf.length);
        buf = "";
      }
    });
  };
  reader(child.stdout as NodeJS.ReadableStream);
  reader(child.stderr as NodeJS.ReadableStream);

  const pid = child.pid as number;
  let killedBy: string | null = null;
  let watchdog: NodeJS.Timeout | undefined;
  if ("unavailable" in cgroup) {
    watchdog = setInterval(() => {
      void readFile(`/proc/${pid}/status`, "utf8")
        .then((s) => {
          const rss = Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0) * 1024;
          if (rss > memory.bytes && killedBy === null) {
            killedBy = `RSS ${(rss / 2 ** 20).toFixed(0)} MiB over the ${memory.quantity} limit`;
            child.kill("SIGKILL");
          }
        })
        .catch(() => {});
    }, 100);
  }
  const s = await Promise.race([
    started,
    exited.then((e) => {
      throw new Error(`agent exited before starting: ${JSON.stringify(e)}\n${log.join("\n")}`);
    }),
  ]);
  return {
    child,
    ...s,
    exited,
    log,
    logBytes: () => total,
    longestLogLine: () => longest,
    limitNote,
    cpuMillicores: "unavailable" in cgroup ? null : cgroup.cpuMillicores,
    cgroup: "unavailable" in cgroup ? null : cgroup,
    watchdogKill: () => killedBy,
    cpuMs: async () => {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, 100 Hz ticks
    },
    peakRssKiB: async () =>
      Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8").catch(() => ""))?.[1] ?? NaN),
    stop: async () => {
      clearInterval(watchdog);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
      if (!("unavailable" in cgroup)) await cgroup.remove();
    },
  };
}

/** GET with a timeout; never throws. */
export async function get(
  url: string,
  timeoutMs = HEALTHZ_TIMEOUT_MS,
): Promise<{ status: number; text: string } | string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return (err as Error).name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err as Error).message;
  }
}

/** Polls /healthz every 250 ms until stopped; every poll is recorded. */
export function healthPoller(url: string) {
  const polls: HealthPoll[] = [];
  let phase = "start";
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const r = await get(`${url}/healthz`);
      const ms = performance.now() - t0;
      const ok = typeof r !== "string" && r.status === 200;
      polls.push({ at: t0, ok, ms, phase, detail: typeof r === "string" ? r : `HTTP ${r.status}` });
      await new Promise((res) => setTimeout(res, Math.max(0, HEALTHZ_EVERY_MS - ms)));
    }
  })();
  return {
    polls,
    setPhase: (p: string) => {
      phase = p;
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
