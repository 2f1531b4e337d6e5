/**
 * The sidecar never loads `@kubernetes/client-node` (docs/propagation.md):
 * only the hook's commands import it, dynamically, when they are given
 * `--expect-deployment`. Checked on the real processes with a module load
 * hook (`module.registerHooks`, preloaded with `--import`) that records every
 * module file Node loads: `sfu-agent run` started, serving `/status`, then
 * stopped, loads none of the client's files; `sfu-agent notify
 * --expect-deployment` does (the control: the hook sees the client when it is
 * loaded), and `notify --expect N` does not.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { configText } from "../../helpers/config-text.ts";

const CLI = join(import.meta.dirname, "../../../agent/cli.ts");
const CLIENT = "/node_modules/@kubernetes/client-node/";

let dir = "";
let hooks = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "no-kube-"));
  hooks = join(dir, "record-loads.mjs");
  // Appends each loaded module URL to $LOADS_FILE (synchronously: nothing is lost at exit).
  await writeFile(
    hooks,
    `import { registerHooks } from "node:module";
import { appendFileSync } from "node:fs";
registerHooks({ load(url, context, next) { appendFileSync(process.env.LOADS_FILE, url + "\\n"); return next(url, context); } });
`,
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spawnCli(args: string[], loads: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--import", pathToFileURL(hooks).href, CLI, ...args], {
    env: { ...process.env, LOADS_FILE: loads, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function loaded(loads: string): Promise<string[]> {
  return (await readFile(loads, "utf8").catch(() => "")).split("\n").filter((l) => l.length > 0);
}

function exited(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((r) => child.once("exit", (code) => r({ code, stdout, stderr })));
}

describe("only the hook's commands load @kubernetes/client-node", { timeout: 60_000 }, () => {
  it("sfu-agent run (started, /status served, stopped) loads none of it", async () => {
    const configDir = join(dir, "config");
    await new AtomicWriter(configDir).write({ "config.yaml": configText(1) });
    const loads = join(dir, "run.loads");
    const child = spawnCli(
      ["run", "--config-dir", configDir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
      loads,
    );
    const done = exited(child);
    const http = await new Promise<string>((resolve, reject) => {
      let buf = "";
      child.stdout?.on("data", (c: Buffer) => {
        buf += c.toString();
        const m = buf.match(/"http":"(http:\/\/[^"]+)"/);
        if (m?.[1] && buf.includes('"agent started"')) resolve(m[1]);
      });
      void done.then((r) => reject(new Error(`agent exited ${r.code}: ${r.stderr}`)));
    });
    const status = (await (await fetch(`${http}/status`)).json()) as { desired?: { version?: number } };
    assert.equal(status.desired?.version, 1);
    child.kill("SIGTERM");
    assert.equal((await done).code, 0);
    const urls = await loaded(loads);
    assert.ok(
      urls.some((u) => u.endsWith("/agent/commands/run.ts")),
      "the hook recorded the agent's modules",
    );
    assert.deepEqual(
      urls.filter((u) => u.includes(CLIENT) || u.includes("/agent/hook/")),
      [],
    );
  });

  it("sfu-agent notify loads it with --expect-deployment, and not with --expect N", async () => {
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "http://127.0.0.1:1", "insecure-skip-tls-verify": true } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const common = [
      "notify",
      "--topic-arn",
      "arn:aws:sns:us-east-1:000000000000:t",
      "--config",
      join(dir, "none.yaml"),
    ];
    await writeFile(join(dir, "none.yaml"), configText(1));
    const withLoads = join(dir, "notify-deploy.loads");
    const r = await exited(
      spawnCli([...common, "--expect-deployment", "sfu/sfu-server"], withLoads, { KUBECONFIG: kubeconfig }),
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /API_UNREACHABLE\); nothing published/);
    assert.ok(
      (await loaded(withLoads)).some((u) => u.includes(CLIENT)),
      "the hook loads the client",
    );
    const noLoads = join(dir, "notify-n.loads");
    // --expect N without --wait is a usage error (exit 2) after the flags are parsed: the modules are loaded by then.
    const n = await exited(spawnCli([...common, "--expect", "3"], noLoads));
    assert.equal(n.code, 2);
    const urls = await loaded(noLoads);
    assert.ok(urls.some((u) => u.endsWith("/agent/commands/notify.ts")));
    assert.deepEqual(
      urls.filter((u) => u.includes(CLIENT)),
      [],
    );
  });
});
