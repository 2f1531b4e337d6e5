/**
 * Hostile browser signalling frames (`/ws`) against the real `sfu-server`
 * process as the image runs it (Dockerfile.sfu's node flags and ENV) under
 * the `sfu` container's limits from k8s/base/deployment.yaml (memory and CPU
 * as child cgroups; without cgroups, `--max-old-space-size` and the test says
 * so), standalone on a good config: frames nested deep, key and value
 * floods, over the frame limit, bad UTF-8, binary, a flood of 20,000 bad
 * frames on one socket, and 50 sockets each sending a deep 256 KiB frame.
 *
 * For each: the process stays alive (no OOM kill), every /healthz poll
 * answers within 2 s, the config stays applied, the client is told what is
 * wrong (an `error` frame BAD_MESSAGE saying which limit, or the library's
 * close code), and a well-formed join afterwards is answered `joined`.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { loadConfigFile } from "../../../protocol/config-loader.ts";
import { MAX_SIGNAL_FRAME_BYTES } from "../../../sfu/signal-messages.ts";
import { get, healthPoller } from "../../helpers/limited-agent.ts";
import { type LimitedSfu, startLimitedSfu } from "../../helpers/limited-sfu.ts";

const _ROOT = join(import.meta.dirname, "../../..");
const CONFIG =
  "schemaVersion: 1\nserver: { port: 8080 }\nwebrtc:\n  icePortRange: [43000, 43099]\n  codecs: [vp8, opus]\n  listenIp: 127.0.0.1\nlogging: { level: info }\n";

type Reply = { type: string; code?: string; message?: string };

describe("sfu-server under the container's limits vs hostile signalling frames", { timeout: 3 * 60_000 }, () => {
  let dir: string;
  let sfu: LimitedSfu;
  let base: string;
  let hash: string;
  let health: ReturnType<typeof healthPoller>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-hostile-signalling-"));
    const file = join(dir, "config.yaml");
    await writeFile(file, CONFIG);
    const loaded = await loadConfigFile(file);
    assert.ok(loaded.ok);
    hash = loaded.hash;
    sfu = await startLimitedSfu(["--config", file]);
    base = sfu.base;
    health = healthPoller(base);
  });

  after(async () => {
    await health?.stop();
    await sfu?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const alive = (what: string) => sfu.alive(what);

  /** Opens /ws, sends `frames`, collects replies until `count` error replies or a close. */
  const exchange = (
    frames: (string | Buffer)[],
    count: number,
  ): Promise<{ errors: Reply[]; replies: Reply[]; closed: number | null }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base.replace("http", "ws")}/ws`, { perMessageDeflate: false });
      const replies: Reply[] = [];
      const errors: Reply[] = [];
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no ${count} replies within 60 s (got ${errors.length} errors, ${replies.length} replies)`));
      }, 60_000);
      const done = (closed: number | null) => {
        clearTimeout(timer);
        resolve({ errors, replies, closed });
      };
      ws.on("error", () => {});
      ws.on("open", () => {
        for (const f of frames) ws.send(f, { binary: false });
      });
      ws.on("message", (d) => {
        const m = JSON.parse(String(d)) as Reply;
        replies.push(m);
        if (m.type === "error" || m.type === "joined") errors.push(m);
        if (errors.length >= count) {
          ws.close();
          done(null);
        }
      });
      ws.on("close", (code) => done(code));
    });

  test("each hostile frame is answered BAD_MESSAGE naming the limit, or closed by the library", async () => {
    health.setPhase("frames");
    const deep = `{"type":"join","x":${"[".repeat(MAX_SIGNAL_FRAME_BYTES / 2 - 16)}${"]".repeat(MAX_SIGNAL_FRAME_BYTES / 2 - 16)}}`;
    const cases: [string, string, RegExp][] = [
      ["deep", deep, /^frame: nested more than 8 levels deep$/],
      [
        "key flood",
        `{"type":"join",${Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(",")}}`,
        /more than 256 object keys/,
      ],
      ["value flood", `{"type":"join","v":[${"0,".repeat(100_000)}0]}`, /more than 1000 values/],
      ["not JSON", `{"type":"join","room":"r" ${"x".repeat(1000)}`, /^frame is not JSON$/],
    ];
    for (const [name, frame, message] of cases) {
      const { errors } = await exchange([frame], 1);
      assert.equal(errors[0]?.code, "BAD_MESSAGE", name);
      assert.match(errors[0]?.message ?? "", message, name);
      await alive(name);
    }
    const over = await exchange([`{"type":"answer","sdp":"${"x".repeat(MAX_SIGNAL_FRAME_BYTES)}"}`], 1);
    assert.equal(over.closed, 1009, "over the frame limit: closed 1009 by the library");
    const utf8 = await exchange([Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])], 1);
    assert.equal(utf8.closed, 1007, "bad UTF-8: closed 1007 by the library");
    await alive("library limits");
    assert.deepEqual(
      health.polls.filter((p) => p.phase === "frames" && !p.ok).map((p) => p.detail),
      [],
    );
  });

  test("floods: 20,000 bad frames on one socket, 50 sockets with a deep 256 KiB frame; then a join is answered", async () => {
    health.setPhase("floods");
    const small = `{"type":"join","x":${"[".repeat(20)}${"]".repeat(20)}}`;
    const t0 = performance.now();
    const one = await exchange(
      Array.from({ length: 20_000 }, () => small),
      20_000,
    );
    const floodMs = performance.now() - t0;
    assert.equal(one.errors.length, 20_000);
    assert.ok(one.errors.every((e) => e.code === "BAD_MESSAGE"));
    const deep = `{"type":"join","x":${"[".repeat(MAX_SIGNAL_FRAME_BYTES / 2 - 16)}${"]".repeat(MAX_SIGNAL_FRAME_BYTES / 2 - 16)}}`;
    const t1 = performance.now();
    const many = await Promise.all(Array.from({ length: 50 }, () => exchange([deep], 1)));
    assert.ok(many.every((r) => r.errors[0]?.code === "BAD_MESSAGE"));
    const socketsMs = performance.now() - t1;
    await alive("floods");
    const joined = await exchange([JSON.stringify({ type: "join", room: "r", name: "ann", publish: {} })], 1);
    assert.equal(joined.errors[0]?.type, "joined", `a join after the floods: ${JSON.stringify(joined.errors[0])}`);
    const status = await get(`${base}/status`, 5_000);
    assert.ok(typeof status !== "string" && status.status === 200);
    assert.equal(
      (JSON.parse(status.text) as { applied: { hash: string } }).applied.hash,
      hash,
      "the config stays applied",
    );
    await health.stop();
    const failed = health.polls.filter((p) => !p.ok).map((p) => `${p.phase}: ${p.detail}`);
    const peak = Number(
      /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${sfu.child.pid}/status`, "utf8").catch(() => ""))?.[1],
    );
    console.log(
      `# 20,000 bad frames in ${(floodMs / 1000).toFixed(1)} s; 50 deep 256 KiB frames in ${(socketsMs / 1000).toFixed(1)} s; /healthz slowest ${Math.max(...health.polls.map((p) => p.ms)).toFixed(0)} ms; peak RSS ${(peak / 1024).toFixed(0)} MiB; cgroup ${JSON.stringify(await sfu.cgroup?.memoryStats())}`,
    );
    assert.deepEqual(failed, [], "every /healthz poll answered within 2 s");
  });
});
