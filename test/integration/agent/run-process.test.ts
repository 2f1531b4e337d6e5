/**
 * The real `node agent/cli.ts run` process: flags and env fallbacks, exit
 * code 2 on bad flags, graceful SIGTERM (an unanswered push gets to finish,
 * exit 0) and a second signal forcing exit 1.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { configText } from "./harness.ts";

const CLI = join(import.meta.dirname, "../../../agent/cli.ts");
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exit: Promise<number | null>;
  push: string;
  http: string;
}

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "sfu-agent-proc-"));
  dirs.push(d);
  await new AtomicWriter(d).write({ "config.yaml": configText(1) });
  return d;
}

function spawnAgent(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [CLI, "run", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return child;
}

async function startAgent(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawnAgent(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", ...args], env);
  const lines: Record<string, unknown>[] = [];
  let err = "";
  child.stderr!.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line["msg"] === "agent started") resolve(line);
      }
    });
    void exit.then((code) => reject(new Error(`agent exited with ${code} before starting: ${err}`)));
  });
  const s = await started;
  return { child, lines, stderr: () => err, exit, push: s["push"] as string, http: s["http"] as string };
}

function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((r) => child.once("exit", (code) => r({ code, stdout, stderr })));
}

describe("sfu-agent run (process)", { timeout: 60_000 }, () => {
  test("bad flags exit 2 with a clear message; --help exits 0", async () => {
    const bad = await collect(spawnAgent(["--ack-timeout", "10", "--listen", "nowhere"]));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--ack-timeout: "10" is not a duration/);
    assert.match(bad.stderr, /--listen: "nowhere" is not host:port/);
    const unknown = await collect(spawnAgent(["--bogus"]));
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /bogus/);
    const envBad = await collect(spawnAgent([], { SFU_AGENT_LOG_LEVEL: "loud" }));
    assert.equal(envBad.code, 2);
    assert.match(envBad.stderr, /SFU_AGENT_LOG_LEVEL: "loud" is not one of/);
    const help = await collect(spawnAgent(["--help"]));
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--config-dir/);
  });

  test("a start-up failure (missing token file) exits 1", async () => {
    const d = await dir();
    const r = await collect(
      spawnAgent([
        "--config-dir",
        d,
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--token-file",
        join(d, "missing"),
      ]),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /token-file/);
  });

  test("SIGTERM lets an unanswered push finish, closes the SFU with 1001 and exits 0 (config dir from env)", async () => {
    const d = await dir();
    const agent = await startAgent([], { SFU_AGENT_CONFIG_DIR: d });
    const status = (await (await fetch(`${agent.http}/status`)).json()) as { desired: { version: number } };
    assert.equal(status.desired.version, 1);
    const sfu = await FakeSfu.connect({ url: agent.push, reply: { kind: "stall" } });
    const m = await sfu.waitForConfig(() => true);
    agent.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(agent.child.exitCode, null, "still draining the unanswered push");
    sfu.ack(m);
    const closed = await sfu.closed;
    assert.equal(closed.code, 1001);
    assert.equal(await agent.exit, 0);
    assert.ok(
      agent.lines.some((l) => l["msg"] === "SFU applied config"),
      "the in-flight push was answered before exit",
    );
    assert.ok(agent.lines.some((l) => l["msg"] === "agent stopped"));
  });

  test("a second signal forces exit 1", async () => {
    const d = await dir();
    const agent = await startAgent(["--config-dir", d]);
    const sfu = await FakeSfu.connect({ url: agent.push, reply: { kind: "stall" } });
    await sfu.waitForConfig(() => true);
    agent.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    agent.child.kill("SIGTERM");
    assert.equal(await agent.exit, 1);
    await sfu.closed;
  });
});
