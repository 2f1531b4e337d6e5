/**
 * `npm start -- --rollout`: the progressive-rollout demo on the local stack.
 *
 * Three pods (agent + SFU processes) with a rollout policy in their mounts
 * (one canary pod, then everyone; short bakes) and the rollout state in the
 * embedded S3. Synthetic callers (werift clients) keep one long call up on
 * every pod and make a short call on every pod every couple of seconds, so
 * the SFUs have call health to report. Then, as Git changes would:
 *
 * 1. a bad change: `webrtc.listenIp` set to an address no host has
 *    (203.0.113.7), so every new call on a pod running it fails ICE. The
 *    canary applies it, its ICE failures halt the rollout, it reverts to the
 *    previous config; the other pods never move; no long call drops;
 * 2. a good change (`limits.maxRooms`) walks through the steps to 100 %.
 *
 * Every step is printed as it happens (hook output, fleet table with the
 * STAGE column); the long calls are checked at the end.
 */
import { readFile, writeFile } from "node:fs/promises";
import { WeriftTestClient } from "../../test/helpers/werift-client.ts";
import type { LocalStack } from "./local-stack.ts";

/** The demo policy: one canary pod of three, 15 s bake, then everyone. */
export const DEMO_POLICY = `# The local demo's rollout policy (npm start -- --rollout).
schemaVersion: 1
steps:
  - { percent: 30, bake: 15s }
  - { percent: 100, bake: 5s }
halt:
  health:
    minJoins: 4
    maxJoinFailureRate: 0.2
    maxIceFailureRate: 0.2
    maxRatioToBaseline: 3
  noTraffic: wait
`;

/** A listen address no host has: every new peer connection fails ICE (calls up before are untouched). */
export const UNREACHABLE_LISTEN_IP = "203.0.113.7";

/** The base config with media on loopback (what the demo's source file starts with). */
export function demoConfig(base: string): string {
  return base.replace(/listenIp: .*/, "listenIp: 127.0.0.1");
}

/** Runs the scripted demo; `say` prints a line. Returns true when both changes ended as they should. */
export async function runRolloutDemo(
  stack: LocalStack,
  configFile: string,
  say: (line: string) => void,
  signal: AbortSignal,
): Promise<boolean> {
  const wsUrl = (sfuUrl: string) => `${sfuUrl.replace(/^http/, "ws")}/ws`;
  const longCalls: Array<{ pod: string; client: WeriftTestClient }> = [];
  const join = (url: string, room: string, name: string) =>
    WeriftTestClient.join({ url: wsUrl(url), room, name, publish: { audio: true, video: false }, timeoutMs: 4_000 });

  say("demo: the first hook run records the current config as the stable one");
  await stack.syncNow();
  for (const p of stack.pods) {
    const client = await join(p.sfuUrl, `long-${p.name}`, "long-call");
    await client.waitConnected();
    longCalls.push({ pod: p.name, client });
  }
  say(`demo: one long call up on each of ${stack.pods.length} pods; short calls every 2 s on every pod`);
  let i = 0;
  let stopped = false;
  const churn = (async () => {
    while (!signal.aborted && !stopped) {
      const n = i++;
      await Promise.all(
        stack.pods.map(async (p) => {
          try {
            const c = await join(p.sfuUrl, `short-${p.name}-${n}`, `short-${n}`);
            await c.waitConnected().catch(() => {});
            await c.close().catch(() => {});
          } catch {
            // a failed join is counted by the SFU
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 2_000));
    }
  })();

  const change = async (what: string, edit: (text: string) => string) => {
    const before = stack.lastHook();
    const text = await readFile(configFile, "utf8");
    const next = edit(text);
    if (next === text) throw new Error(`demo: the config has no field to change for ${what}`);
    say(`demo: committing ${what}`);
    await writeFile(configFile, next);
    // The source watch starts the hook and the kubelet swap.
    const deadline = Date.now() + 10_000;
    while (stack.lastHook() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const run = stack.lastHook();
    if (!run || run === before) throw new Error("demo: the hook did not start");
    return run;
  };

  try {
    const bad = await change(`a bad change (webrtc.listenIp: ${UNREACHABLE_LISTEN_IP}: new calls fail ICE)`, (t) =>
      t.replace(/listenIp: .*/, `listenIp: ${UNREACHABLE_LISTEN_IP}`),
    );
    const badRun = await bad;
    say(`demo: the bad change's hook exited ${badRun.code} (1 = halted, the sync would fail)`);
    say(
      badRun.log
        .split("\n")
        .filter((l) => /halt|reverted|step|: (canary|held|applied|reverted) /.test(l))
        .join("\n"),
    );
    // Back to a good source, as the operator's fix commit.
    const good = await change("a good change (limits.maxRooms + 1) with the listen address fixed", (t) =>
      demoConfig(t).replace(/maxRooms: (\d+)/, (_m, n: string) => `maxRooms: ${Number(n) + 1}`),
    );
    const goodRun = await good;
    say(`demo: the good change's hook exited ${goodRun.code} (0 = rolled out to every pod)`);
    say(
      goodRun.log
        .split("\n")
        .filter((l) => /^(STEP|\d+ )|rolled out/.test(l))
        .join("\n"),
    );
    const dropped = longCalls.filter((c) => c.client.pc.connectionState !== "connected");
    say(
      dropped.length === 0
        ? `demo: all ${longCalls.length} long calls stayed connected through both rollouts`
        : `demo: DROPPED calls: ${dropped.map((c) => c.pod).join(", ")}`,
    );
    return badRun.code === 1 && goodRun.code === 0 && dropped.length === 0;
  } finally {
    stopped = true;
    await churn.catch(() => {});
    for (const c of longCalls) await c.client.close().catch(() => {});
  }
}
