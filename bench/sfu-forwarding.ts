/**
 * Forwarding benchmark of the SFU (`npm run bench:sfu`). Prints figures; asserts nothing.
 *
 * Part 1 - capacity: the SFU runs in a child process (`sfu/cli.ts`, dialing a
 * scripted agent for its config); one werift publisher sends ~1.5 Mbit/s
 * (150 packets/s x 1250 bytes) and N werift subscribers (in this process)
 * receive it. N grows until loss exceeds 1% (or N reaches MAX_N). Per step:
 * packets/s out of the SFU and the SFU's CPU time per forwarded packet
 * (from /proc/<pid>/stat over the measurement window).
 *
 * Part 2 - apply stall: an in-process SFU forwarding to 5 subscribers gets
 * 20 config versions; the longest event-loop delay (perf_hooks
 * monitorEventLoopDelay, 1 ms resolution) in a 300 ms window around each
 * apply is compared with equally long windows without one.
 */

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { pino } from "pino";
import { SfuServer } from "../sfu/server.ts";
import { FakeAgent } from "../test/helpers/fake-agent.ts";
import { WeriftTestClient } from "../test/helpers/werift-client.ts";
import { emitFigures } from "./figures.ts";

const MAX_N = Number(process.env.BENCH_MAX_N ?? 40);
const STEPS = [1, 5, 10, 15, 20, 25, 30, 35, 40].filter((n) => n <= MAX_N);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 4000);
const PPS = 150;
const PAYLOAD = 1250 - 12;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = 100;
const STALL_SUBS = 5;

function config(patch: { codecs?: string[]; level?: string; range?: [number, number] } = {}) {
  return {
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: {
      icePortRange: patch.range ?? [44000, 45999],
      codecs: patch.codecs ?? ["vp8", "opus"],
      listenIp: "127.0.0.1",
    },
    logging: { level: patch.level ?? "warn" },
    limits: { maxParticipantsPerRoom: 100 },
  };
}

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

async function forwarded(httpUrl: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const m = /^sfu_rtp_packets_forwarded_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function capacity(): Promise<{ n: number; packetsOut: number; cpuUsPerPacket: number }> {
  const agent = await FakeAgent.start();
  const child = spawn(process.execPath, ["sfu/cli.ts", "--agent", agent.url, "--port", "0", "--host", "127.0.0.1"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (line) => {
      try {
        const j = JSON.parse(line) as { msg?: string; port?: number };
        if (j.msg === "SFU listening" && j.port) resolve(j.port);
      } catch {}
    });
    child.once("exit", (code) => reject(new Error(`SFU exited with ${code}`)));
  });
  await agent.waitForHello(0);
  await agent.pushAndWait(config());
  const wsUrl = `ws://127.0.0.1:${port}/ws`;
  const httpUrl = `http://127.0.0.1:${port}`;
  const pub = await WeriftTestClient.join({
    url: wsUrl,
    room: "bench",
    name: "pub",
    publish: { audio: false, video: true },
  });
  await pub.waitPublishReady("video");
  const publishing = pub.startPublishing({ packetsPerSecond: PPS, payloadBytes: PAYLOAD });
  const subs: WeriftTestClient[] = [];
  console.log(
    `\nPart 1: 1 publisher (${PPS} packets/s, ${((PPS * 1250 * 8) / 1e6).toFixed(2)} Mbit/s) -> N subscribers; SFU in its own process`,
  );
  console.log("   N  packets/s out  loss %   SFU CPU %  CPU us/forwarded packet  marginal us/packet");
  let best = 0;
  let bestRow = { n: 0, packetsOut: 0, cpuUsPerPacket: 0 };
  let prev: { cpuRate: number; fwdRate: number } | null = null;
  try {
    for (const n of STEPS) {
      let tracks: Awaited<ReturnType<WeriftTestClient["waitForTracks"]>>[number][];
      try {
        while (subs.length < n) {
          subs.push(
            await WeriftTestClient.join({
              url: wsUrl,
              room: "bench",
              name: `s${subs.length}`,
              publish: { audio: false, video: false },
              timeoutMs: 20_000,
            }),
          );
        }
        tracks = await Promise.all(subs.map(async (s) => (await s.waitForTracks(1, "video"))[0]!));
        await Promise.all(subs.map((s, i) => s.waitFor(() => tracks[i]!.packets > 20, "flowing", 20_000)));
      } catch (err) {
        console.log(`stopped at N = ${n}: the benchmark's own clients could not keep up (${(err as Error).message})`);
        break;
      }
      await sleep(500);
      const sent0 = publishing.sent;
      const got0 = tracks.map((t) => t.seqs.size);
      const cpu0 = cpuSeconds(child.pid!);
      const fwd0 = await forwarded(httpUrl);
      const t0 = performance.now();
      await sleep(WINDOW_MS);
      const sent = publishing.sent - sent0;
      const cpu = cpuSeconds(child.pid!) - cpu0;
      const fwd = (await forwarded(httpUrl)) - fwd0;
      const secs = (performance.now() - t0) / 1000;
      await sleep(300); // in-flight packets of the window
      const got = tracks.reduce((a, t, i) => a + (t.seqs.size - got0[i]!), 0);
      const loss = Math.max(0, 1 - got / (sent * n)) * 100;
      const cur = { cpuRate: cpu / secs, fwdRate: fwd / secs };
      // CPU added per extra forwarded packet between this step and the previous one.
      const marginal =
        prev && cur.fwdRate > prev.fwdRate
          ? ((cur.cpuRate - prev.cpuRate) / (cur.fwdRate - prev.fwdRate)) * 1e6
          : Number.NaN;
      prev = cur;
      console.log(
        `${String(n).padStart(4)}  ${cur.fwdRate.toFixed(0).padStart(13)}  ${loss.toFixed(2).padStart(6)}  ${(cur.cpuRate * 100).toFixed(1).padStart(10)}  ${((cpu / Math.max(fwd, 1)) * 1e6).toFixed(1).padStart(23)}  ${Number.isNaN(marginal) ? "-".padStart(18) : marginal.toFixed(1).padStart(18)}`,
      );
      if (loss > 1) {
        console.log(`loss exceeded 1% at N = ${n}`);
        break;
      }
      best = n;
      bestRow = { n, packetsOut: cur.fwdRate, cpuUsPerPacket: (cpu / Math.max(fwd, 1)) * 1e6 };
    }
    console.log(`largest N with <= 1% loss: ${best}${best === STEPS.at(-1) ? " (cap reached)" : ""}`);
  } finally {
    publishing.stop();
    for (const s of subs) await s.close();
    await pub.close();
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await agent.stop();
  }
  return bestRow;
}

async function applyStall(): Promise<{
  applyMaxMs: number;
  stallWithApplyMedianMs: number;
  stallWithoutApplyMedianMs: number;
}> {
  const agent = await FakeAgent.start();
  const server = new SfuServer({
    logger: pino({ level: "warn" }, pino.destination("/dev/null")),
    agentUrl: agent.url,
    port: 0,
    host: "127.0.0.1",
  });
  await server.start();
  await agent.waitForHello(0);
  await agent.pushAndWait(config());
  const wsUrl = `ws://127.0.0.1:${server.port}/ws`;
  const pub = await WeriftTestClient.join({
    url: wsUrl,
    room: "stall",
    name: "pub",
    publish: { audio: false, video: true },
  });
  await pub.waitPublishReady("video");
  const publishing = pub.startPublishing({ packetsPerSecond: PPS, payloadBytes: PAYLOAD });
  const subs: WeriftTestClient[] = [];
  for (let i = 0; i < STALL_SUBS; i++)
    subs.push(
      await WeriftTestClient.join({
        url: wsUrl,
        room: "stall",
        name: `s${i}`,
        publish: { audio: false, video: false },
      }),
    );
  await Promise.all(
    subs.map(async (s) => {
      const [t] = await s.waitForTracks(1, "video");
      await s.waitFor(() => t!.packets > 20, "flowing");
    }),
  );
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const applyMax: number[] = [];
  const baseMax: number[] = [];
  const applyMs: number[] = [];
  const ackMs: number[] = [];
  // Time the applier itself (validation, credential reads, snapshot swap, level change).
  const apply = server.applier.apply.bind(server.applier);
  server.applier.apply = async (input) => {
    const t0 = performance.now();
    const out = await apply(input);
    applyMs.push(performance.now() - t0);
    return out;
  };
  const codecSets = [
    ["vp8", "opus"],
    ["vp8", "vp9", "opus"],
    ["h264", "vp8", "opus", "pcmu"],
  ];
  const WINDOW = 300;
  try {
    for (let i = 0; i < 40; i++) {
      await sleep(100);
      h.reset();
      const t0 = performance.now();
      if (i % 2 === 1) {
        const reply = await agent.pushAndWait(
          config({
            codecs: codecSets[i % 3]!,
            level: i % 4 === 1 ? "info" : "warn",
            range: [44000 + (i % 4) * 100, 44099 + (i % 4) * 100],
          }),
        );
        ackMs.push(performance.now() - t0);
        if (reply.type !== "ack") throw new Error(`apply ${i} refused: ${JSON.stringify(reply)}`);
      }
      await sleep(Math.max(0, WINDOW - (performance.now() - t0)));
      (i % 2 === 1 ? applyMax : baseMax).push(h.max / 1e6);
    }
  } finally {
    h.disable();
    publishing.stop();
    for (const s of subs) await s.close();
    await pub.close();
    await server.stop();
    await agent.stop();
  }
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return `median ${s[Math.floor(s.length / 2)]!.toFixed(2)} ms, max ${s.at(-1)!.toFixed(2)} ms`;
  };
  console.log(
    `\nPart 2: 20 config applies while forwarding 1 -> ${STALL_SUBS} (SFU, agent and clients in one process; ${WINDOW} ms windows)`,
  );
  console.log(`  longest event-loop delay, windows with an apply:    ${stats(applyMax)}`);
  console.log(`  longest event-loop delay, windows without an apply: ${stats(baseMax)}`);
  console.log(`  ConfigApplier.apply() duration:                     ${stats(applyMs)}`);
  console.log(`  push -> ack round trip at the agent:                ${stats(ackMs)}`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  return {
    applyMaxMs: Math.max(...applyMs),
    stallWithApplyMedianMs: median(applyMax),
    stallWithoutApplyMedianMs: median(baseMax),
  };
}

const which = process.argv[2] ?? "all";
const cap = which === "all" || which === "capacity" ? await capacity() : null;
const stall = which === "all" || which === "stall" ? await applyStall() : null;
emitFigures("sfu-forwarding", {
  ...(cap && {
    max_subscribers_under_1pct_loss: { value: cap.n, unit: "subscribers", better: "higher" as const },
    packets_out_per_s_at_max: { value: cap.packetsOut, unit: "pkt/s" },
    cpu_us_per_forwarded_packet_at_max: { value: cap.cpuUsPerPacket, unit: "µs", better: "lower" as const },
  }),
  ...(stall && {
    config_apply_max_ms: { value: stall.applyMaxMs, unit: "ms", better: "lower" as const },
    loop_delay_with_apply_median_ms: { value: stall.stallWithApplyMedianMs, unit: "ms", better: "lower" as const },
    loop_delay_without_apply_median_ms: { value: stall.stallWithoutApplyMedianMs, unit: "ms" },
  }),
});
