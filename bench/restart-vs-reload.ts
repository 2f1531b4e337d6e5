/**
 * Media interruption per config change: this project's hot reload against a
 * rolling restart of the SFU, in one run on the same machine
 * (`node bench/restart-vs-reload.ts`; part of `npm run bench`).
 *
 * Set-up (everything on 127.0.0.1, config `listenIp: 127.0.0.1`): one werift
 * publisher streams synthetic VP8 RTP (150 packets/s) through the SFU to two
 * werift subscribers in the same room. Each client is a
 * {@link ReconnectingClient}: if its signalling socket closes it re-joins at
 * once, then every 250 ms, and re-publishes / re-subscribes.
 *
 * 1. Hot reload: the real agent (`agent/cli.ts run`, watch-only) and the real
 *    SFU (`sfu/cli.ts --agent`) as two processes. Each change (codec list,
 *    log level and TURN list) is an AtomicWriter `..data` swap of the
 *    agent's config directory; the change counts as done when the agent's
 *    `/status` shows the new hash applied (acked by the SFU). The gap is the
 *    longest interval without a video packet at a subscriber in a window
 *    from 500 ms before the swap to 700 ms after the ack. The same window
 *    without a change gives the baseline jitter.
 * 2. Rolling restart (the approach this project replaces): the SFU runs
 *    standalone (`sfu/cli.ts --config FILE`); each change writes the file,
 *    starts a new SFU process with it on a new port and, once it is ready,
 *    points the "Service" at it and SIGTERMs the old one. This models a
 *    Deployment rollout with maxSurge 1 / maxUnavailable 0, i.e. the best
 *    case for restarts: the new pod's start-up is not part of the gap (it is
 *    printed separately). The gap is measured at each subscriber from the
 *    last packet of the old session to the first packet of the new one.
 * 3. Restart on the same port (a Recreate rollout, or one replica): SIGTERM
 *    the SFU, then start the new process on the same port. As with a
 *    Kubernetes Service, there is no endpoint from the SIGTERM until the new
 *    process answers /readyz (polled every 50 ms, far more often than a
 *    kubelet readiness probe), so the clients' retries fail until then and
 *    start-up is part of the gap.
 *
 * Reported per change: the worst subscriber's gap (median and max over K
 * changes), sessions dropped, and the ratio restart gap (surge, the best
 * case) / hot-reload gap (medians), then the figures (bench/figures.ts).
 * About 50 s; bounded by a watchdog. Stops every process it started and
 * removes its temp directory; exits 0, or 1 with a message on a failure.
 *
 * Env: BENCH_CHANGES (K, default 5), BENCH_WATCHDOG_MS (default 110000),
 * BENCH_KEEP_LOGS=1 (keep the temp directory with every process's log).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { loadConfigText } from "../protocol/index.ts";
import { AtomicWriter } from "../scripts/local/atomic-writer.ts";
import { agentRunArgs, freePort, type NodeProcess, ProcessGroup, SFU_CLI } from "../scripts/local/processes.ts";
import { emitFigures, type Figure } from "./figures.ts";
import { ReconnectingClient } from "./lib/reconnecting-client.ts";

const K = Number(process.env["BENCH_CHANGES"] ?? 5);
const PPS = 150;
const SUBSCRIBERS = 2;
const RETRY_MS = 250;
const BEFORE_MS = 500;
const AFTER_MS = 700;
const READY_TIMEOUT_MS = 20_000;
const WATCHDOG_MS = Number(process.env["BENCH_WATCHDOG_MS"] ?? 110_000);
const ROOM = "bench";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Config number `i`: codecs, log level and TURN list all differ from `i - 1`. */
function configYaml(i: number): string {
  const codecs = i % 2 === 0 ? "[vp8, opus]" : "[vp8, h264, opus]";
  const level = i % 2 === 0 ? "warn" : "error";
  return `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [30000, 39999]
  codecs: ${codecs}
  listenIp: 127.0.0.1
  turnServers:
    - urls: ["stun:stun-${i}.example.net:3478"]
logging:
  level: ${level}
`;
}

async function hashOf(yaml: string): Promise<string> {
  const r = await loadConfigText(yaml, { source: "bench-config.yaml" });
  if (!r.ok) throw new Error(`bench config ${yaml} is invalid: ${JSON.stringify(r.problems)}`);
  return r.hash;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** The publisher and subscribers of one phase. */
class Call {
  readonly publisher: ReconnectingClient;
  readonly subscribers: ReconnectingClient[];

  constructor(url: () => string | null, tag: string) {
    const base = { url, room: ROOM, retryMs: RETRY_MS, packetsPerSecond: PPS };
    this.publisher = new ReconnectingClient({ ...base, name: `${tag}-pub`, role: "publisher" });
    this.subscribers = Array.from(
      { length: SUBSCRIBERS },
      (_, i) => new ReconnectingClient({ ...base, name: `${tag}-sub${i}`, role: "subscriber" }),
    );
  }

  get all(): ReconnectingClient[] {
    return [this.publisher, ...this.subscribers];
  }

  get drops(): number {
    return this.all.reduce((n, c) => n + c.drops, 0);
  }

  /** Joins everybody and waits until every subscriber receives video; then 1 s of warm-up. */
  async start(): Promise<void> {
    await this.publisher.start();
    for (const s of this.subscribers) await s.start();
    const t = performance.now();
    await Promise.all(this.subscribers.map((s) => s.waitVideoAfter(t, 15_000)));
    await sleep(1_000);
  }

  mark(): number {
    let t = 0;
    for (const s of this.subscribers) t = s.markWindow();
    return t;
  }

  /** The worst subscriber's gap in [from, to]. */
  gap(from: number, to: number): number {
    return Math.max(...this.subscribers.map((s) => s.gapInWindow(from, to)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.all.map((c) => c.stop()));
  }
}

interface PhaseResult {
  gaps: number[];
  drops: number;
  /** Hot reload: swap -> applied; restart: spawn -> ready. */
  prepMs: number[];
  baselineGaps: number[];
}

async function hotReloadPhase(procs: ProcessGroup, work: string, calls: Call[]): Promise<PhaseResult> {
  const configDir = join(work, "etc-sfu");
  const writer = new AtomicWriter(configDir);
  await writer.write({ "config.yaml": configYaml(0) });
  const [listen, http, sfuPort] = [await freePort(), await freePort(), await freePort()];
  const agent = procs.spawn(
    "agent",
    agentRunArgs(configDir, `127.0.0.1:${listen}`, `127.0.0.1:${http}`, "--pod-name", "bench", "--log-level", "warn"),
  );
  const agentUrl = `http://127.0.0.1:${http}`;
  await agent.waitHttpOk(`${agentUrl}/readyz`, READY_TIMEOUT_MS);
  const sfu = procs.spawn("sfu-hot", [
    SFU_CLI,
    "--agent",
    `ws://127.0.0.1:${listen}`,
    "--port",
    String(sfuPort),
    "--host",
    "127.0.0.1",
    "--log-level",
    "warn",
  ]);
  await sfu.waitHttpOk(`http://127.0.0.1:${sfuPort}/readyz`, READY_TIMEOUT_MS);

  const call = new Call(() => `ws://127.0.0.1:${sfuPort}/ws`, "hot");
  calls.push(call);
  await call.start();
  const result: PhaseResult = { gaps: [], drops: 0, prepMs: [], baselineGaps: [] };
  console.log(`\n1. Hot reload (agent + SFU processes, AtomicWriter swap, ack seen on agent /status)`);
  for (let i = 1; i <= K; i++) {
    const yaml = configYaml(i);
    const hash = await hashOf(yaml);
    const from = call.mark();
    await sleep(BEFORE_MS);
    const { renamedAt } = await writer.write({ "config.yaml": yaml });
    const ackMs = await waitApplied(agentUrl, hash, agent, sfu);
    const ackAt = performance.now();
    await sleep(AFTER_MS);
    const gap = call.gap(from, performance.now());
    const windowMs = performance.now() - from;
    // The same window length without a change: normal jitter at 150 packets/s.
    const bFrom = call.mark();
    await sleep(windowMs);
    const baseline = call.gap(bFrom, performance.now());
    result.gaps.push(gap);
    result.prepMs.push(ackAt - renamedAt);
    result.baselineGaps.push(baseline);
    console.log(
      `   change ${i}/${K}: swap -> applied ${ms(ackMs)}; longest gap ${ms(gap)} (same window, no change: ${ms(baseline)})`,
    );
  }
  const status = await getJson<{ participants: number }>(`http://127.0.0.1:${sfuPort}/status`);
  result.drops = call.drops;
  if (status.participants !== 1 + SUBSCRIBERS || call.drops > 0) {
    console.log(`   note: ${call.drops} session(s) dropped; SFU reports ${status.participants} participants`);
  }
  await call.stop();
  await sfu.stop();
  await agent.stop();
  return result;
}

/** Polls the agent's /status every 10 ms until `hash` is applied; returns the time taken. */
async function waitApplied(agentUrl: string, hash: string, ...watch: NodeProcess[]): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const s = await getJson<{
      applied: { hash: string } | null;
      lastError: { code: string; message: string } | null;
    }>(`${agentUrl}/status`);
    if (s.applied?.hash === hash) return performance.now() - t0;
    for (const p of watch) if (!p.running) throw new Error(`${p.name} exited during a reload:\n${await p.logTail()}`);
    if (performance.now() - t0 > 10_000) {
      throw new Error(`config ${hash} not applied within 10 s; agent lastError: ${JSON.stringify(s.lastError)}`);
    }
    await sleep(10);
  }
}

/**
 * How the restart is rolled out: `surge` starts the new process (new port)
 * and waits until it is ready before SIGTERMing the old one (maxSurge 1,
 * maxUnavailable 0: the best case for restarts); `same-port` SIGTERMs the old
 * process, then starts the new one on the same port (Recreate, or a single
 * replica): the clients' retries meet a closed port until it is up.
 */
type RolloutMode = "surge" | "same-port";

interface RestartResult extends PhaseResult {
  /** Per change: SIGTERM -> every client re-joined. */
  rejoinMs: number[];
  failedAttempts: number;
}

async function restartPhase(
  procs: ProcessGroup,
  work: string,
  calls: Call[],
  mode: RolloutMode,
): Promise<RestartResult> {
  const file = join(work, `sfu-config-${mode}.yaml`);
  await writeFile(file, configYaml(0));
  let n = 0;
  const startSfu = async (port: number): Promise<{ proc: NodeProcess; port: number; readyMs: number }> => {
    const proc = procs.spawn(`sfu-${mode}-${n++}`, [
      SFU_CLI,
      "--config",
      file,
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
    ]);
    await proc.waitHttpOk(`http://127.0.0.1:${port}/readyz`, READY_TIMEOUT_MS);
    return { proc, port, readyMs: performance.now() - proc.spawnedAt };
  };
  let sfu = await startSfu(await freePort());
  /**
   * The "Service": the ready endpoint clients (re)connect to, or null. As in
   * Kubernetes, a terminating pod is no endpoint, so nobody re-joins the
   * process being stopped.
   */
  let servicePort: number | null = sfu.port;
  const call = new Call(() => (servicePort === null ? null : `ws://127.0.0.1:${servicePort}/ws`), mode);
  calls.push(call);
  await call.start();
  const result: RestartResult = { gaps: [], drops: 0, prepMs: [], baselineGaps: [], rejoinMs: [], failedAttempts: 0 };
  console.log(
    mode === "surge"
      ? `\n2. Rolling restart, surge: new SFU process with the new config ready first (new port), then SIGTERM the old one`
      : `\n3. Restart on the same port: SIGTERM the SFU, then start the new process on its port`,
  );
  console.log(`   clients re-join at once, then every ${RETRY_MS} ms`);
  const failedBefore = call.all.reduce((k, c) => k + c.failedAttempts, 0);
  for (let i = 1; i <= K; i++) {
    const yaml = configYaml(i);
    const hash = await hashOf(yaml);
    await writeFile(file, yaml);
    const dropsBefore = call.drops;
    let from: number;
    let killedAt: number;
    let next: typeof sfu;
    if (mode === "surge") {
      next = await startSfu(await freePort());
      from = call.mark();
      servicePort = next.port;
      killedAt = performance.now();
      await sfu.proc.stop();
    } else {
      from = call.mark();
      servicePort = null;
      killedAt = performance.now();
      await sfu.proc.stop();
      next = await startSfu(sfu.port);
      servicePort = next.port;
    }
    const oldExit = await sfu.proc.exited;
    const stopMs = sfu.proc.exitedAt! - killedAt;
    await Promise.all(call.all.map((c) => c.waitRejoined(killedAt, 15_000)));
    const rejoinedAt = performance.now();
    await Promise.all(call.subscribers.map((s) => s.waitVideoAfter(killedAt, 15_000)));
    const flowingAt = performance.now();
    await sleep(AFTER_MS);
    const gap = call.gap(from, performance.now());
    const applied = await getJson<{ applied: { hash: string } | null }>(`http://127.0.0.1:${next.port}/status`);
    if (applied.applied?.hash !== hash)
      throw new Error(`restarted SFU runs ${applied.applied?.hash}, expected ${hash}`);
    const dropped = call.drops - dropsBefore;
    result.gaps.push(gap);
    result.drops += dropped;
    result.prepMs.push(next.readyMs);
    result.rejoinMs.push(rejoinedAt - killedAt);
    console.log(
      `   change ${i}/${K}: old SFU exited (${oldExit}) in ${ms(stopMs)}, new SFU ready in ${ms(next.readyMs)}; ${dropped} sessions dropped; all re-joined ${ms(rejoinedAt - killedAt)} and media back ${ms(flowingAt - killedAt)} after SIGTERM; longest gap ${ms(gap)}`,
    );
    sfu = next;
  }
  result.failedAttempts = call.all.reduce((k, c) => k + c.failedAttempts, 0) - failedBefore;
  await call.stop();
  await sfu.proc.stop();
  return result;
}

async function main(): Promise<void> {
  if (!Number.isInteger(K) || K < 1 || K > 20) throw new Error(`BENCH_CHANGES must be an integer 1..20, got ${K}`);
  const work = await mkdtemp(join(tmpdir(), "sfu-bench-restart-"));
  const procs = new ProcessGroup(work);
  const calls: Call[] = [];
  let watchdog: NodeJS.Timeout | undefined;
  console.log(
    `Media interruption per config change: hot reload vs rolling restart. ${K} changes each; 1 publisher (${PPS} video packets/s, one every ${(1000 / PPS).toFixed(1)} ms) -> ${SUBSCRIBERS} subscribers; node ${process.version}`,
  );
  try {
    const run = async () => {
      const hot = await hotReloadPhase(procs, work, calls);
      const restart = await restartPhase(procs, work, calls, "surge");
      const samePort = await restartPhase(procs, work, calls, "same-port");
      return { hot, restart, samePort };
    };
    const { hot, restart, samePort } = await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        watchdog = setTimeout(
          () => reject(new Error(`watchdog: not done within ${WATCHDOG_MS / 1000} s`)),
          WATCHDOG_MS,
        );
      }),
    ]);
    report(hot, restart, samePort);
  } finally {
    clearTimeout(watchdog);
    await Promise.all(calls.map((c) => c.stop().catch(() => undefined)));
    await procs.stopAll();
    if (process.env["BENCH_KEEP_LOGS"]) console.log(`logs kept in ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

function report(hot: PhaseResult, restart: RestartResult, samePort: RestartResult): void {
  const sessions = 1 + SUBSCRIBERS;
  const hotMed = median(hot.gaps);
  const hotMax = Math.max(...hot.gaps);
  const baseMax = Math.max(...hot.baselineGaps);
  const rMed = median(restart.gaps);
  const rMax = Math.max(...restart.gaps);
  const sMed = median(samePort.gaps);
  const sMax = Math.max(...samePort.gaps);
  const ratio = rMed / hotMed;
  const row = (label: string, gaps: number[], extra: string) =>
    console.log(
      `   ${label.padEnd(26)} median ${ms(median(gaps)).padStart(9)}  max ${ms(Math.max(...gaps)).padStart(9)}  ${extra}`,
    );
  console.log(`\nLongest media gap at a subscriber per config change (${K} changes each, ${sessions} sessions):`);
  row("no change (same windows)", hot.baselineGaps, "(normal jitter on this machine)");
  row("hot reload", hot.gaps, `sessions dropped ${hot.drops} of ${sessions * K}`);
  row("rolling restart (surge)", restart.gaps, `sessions dropped ${restart.drops} of ${sessions * K}`);
  row("restart on the same port", samePort.gaps, `sessions dropped ${samePort.drops} of ${sessions * K}`);
  console.log(
    `   restart / hot reload, medians: x${ratio.toFixed(1)} (surge), x${(sMed / hotMed).toFixed(1)} (same port)`,
  );
  console.log(
    `   hot reload: swap -> applied median ${ms(median(hot.prepMs))}. Restart: a new SFU process is ready in ${ms(median(restart.prepMs))} (median);` +
      ` SIGTERM -> all re-joined ${ms(median(restart.rejoinMs))} (surge), ${ms(median(samePort.rejoinMs))} (same port, ${samePort.failedAttempts} refused attempts)`,
  );
  const f = (value: number, unit: string, better?: "lower" | "higher"): Figure =>
    better ? { value: Number(value.toFixed(2)), unit, better } : { value: Number(value.toFixed(2)), unit };
  emitFigures("restart-vs-reload", {
    hot_reload_gap_median_ms: f(hotMed, "ms", "lower"),
    hot_reload_gap_max_ms: f(hotMax, "ms", "lower"),
    no_change_gap_max_ms: f(baseMax, "ms", "lower"),
    restart_gap_median_ms: f(rMed, "ms", "lower"),
    restart_gap_max_ms: f(rMax, "ms", "lower"),
    restart_same_port_gap_median_ms: f(sMed, "ms", "lower"),
    restart_same_port_gap_max_ms: f(sMax, "ms", "lower"),
    restart_vs_reload_gap_ratio: f(ratio, "x"),
    sessions_dropped_by_reload: f(hot.drops / K, `sessions per change (of ${sessions})`, "lower"),
    sessions_dropped_by_restart: f(restart.drops / K, `sessions per change (of ${sessions})`, "lower"),
    hot_reload_applied_median_ms: f(median(hot.prepMs), "ms", "lower"),
    restart_new_sfu_ready_median_ms: f(median(restart.prepMs), "ms", "lower"),
  });
}

let code = 0;
try {
  await main();
} catch (err) {
  code = 1;
  process.stderr.write(`restart-vs-reload: ${err instanceof Error ? err.message : String(err)}\n`);
}
// werift may keep timers alive after close(); everything of ours is stopped above.
process.exit(code);
