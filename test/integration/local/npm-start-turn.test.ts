/**
 * `npm start -- --turn` end to end with real processes (agent, SFU, coturn):
 * the SFU's ephemeral credentials allocate on the local coturn; editing the
 * auth secret file rotates it without restarting any agent or SFU (coturn
 * restarted with both secrets, the kubelet stand-in swaps the mounted
 * Secret, the agent sends secrets-reload, the SFU acks) and new joiners get
 * credentials of the new secret, which coturn accepts, as it still accepts
 * the old ones. Then the scan: the distinctive secrets appear nowhere in the
 * agent's and the SFU's logs, /status, /metrics, or the signalling messages
 * a client received. Without coturn, `--turn` fails at once saying how to
 * install it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort } from "../../../scripts/local/processes.ts";
import { coturnDependency } from "../../helpers/coturn.ts";
import { requireSystemDependency } from "../../helpers/system-deps.ts";
import { tryAllocate } from "../../helpers/turn-client.ts";
import { until } from "../../helpers/until.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const MAIN = join(ROOT, "scripts", "local", "main.ts");
const OLD = "Zebra-OLD-0c4e7f1a-distinctive";
const NEW = "Zebra-NEW-9b2d5e83-distinctive";

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "npm-start-turn-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const signedBy = (secret: string, s: { username: string; credential: string }) =>
  createHmac("sha1", secret).update(s.username).digest("base64") === s.credential;

describe("npm start --turn", { timeout: 150_000 }, () => {
  it("--turn without coturn fails at once with the install command", async () => {
    const child = spawn(process.execPath, [MAIN, "--turn", "--once"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SFU_TEST_TURNSERVER: join(dir, "no-turnserver") },
    });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [code] = await once(child, "exit");
    clearTimeout(killer);
    assert.equal(code, 1);
    assert.match(stderr, /apt-get install -y coturn/);
  });

  it("relays with minted credentials, rotates without restarts, and leaks no secret", async () => {
    requireSystemDependency(coturnDependency());
    const turnPort = await freePort();
    const template = await readFile(join(ROOT, "scripts", "local", "config-turn.yaml"), "utf8");
    const config = join(dir, "config.yaml");
    await writeFile(config, template.replace("turn:127.0.0.1:3478", `turn:127.0.0.1:${turnPort}`));
    const secretFile = join(dir, "auth-secret");
    await writeFile(secretFile, `${OLD}\n`);
    const child = spawn(
      process.execPath,
      [
        MAIN,
        ...["--pods", "1", "--kubelet-delay", "300ms", "--config", config],
        ...["--turn", "--turn-port", String(turnPort), "--turn-auth-secret", secretFile],
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const killer = setTimeout(() => child.kill("SIGKILL"), 140_000);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = once(child, "exit");
    const clients: WeriftTestClient[] = [];
    try {
      await Promise.race([
        until(() => /^sfu-local-0\s+up\s+v1\s+v1\s+sha256:/m.test(stdout), 90_000, "the pod to apply the config", 100),
        exited.then(() => assert.fail(`exited early: ${stdout}${stderr}`)),
      ]);
      const workDir = /Logs: (\S+)\/\*\.log/.exec(stdout)?.[1];
      const agentUrl = /npm run agent -- status (\S+)/.exec(stdout)?.[1];
      const sfuUrl = /sfu-local-0: (http:\/\/127\.0\.0\.1:\d+)\/\?room=demo&autojoin=1&relay=1/.exec(stdout)?.[1];
      assert.ok(workDir && agentUrl && sfuUrl, stdout);
      const wsUrl = `${sfuUrl.replace("http:", "ws:")}/ws`;
      const joinRoom = async (name: string) => {
        const c = await WeriftTestClient.join({
          url: wsUrl,
          room: "demo",
          name,
          publish: { audio: false, video: false },
        });
        clients.push(c);
        return c.joined.iceServers[0] as { urls: string[]; username: string; credential: string };
      };

      const first = await joinRoom("before");
      assert.deepEqual(first.urls, [`turn:127.0.0.1:${turnPort}?transport=udp`]);
      assert.ok(signedBy(OLD, first));
      assert.equal((await tryAllocate(turnPort, first.username, first.credential)).ok, true, "coturn accepts it");

      const pidsBefore = await processIds(agentUrl, sfuUrl);
      await writeFile(secretFile, `${NEW}\n`);
      const status = await until(
        async () => {
          const s = (await (await fetch(`${agentUrl}/status`)).json()) as {
            secrets?: { generation: number; applied: number | null };
          };
          return s.secrets && s.secrets.generation > 1 && s.secrets.applied === s.secrets.generation ? s : null;
        },
        30_000,
        "the agent to report the rotation applied",
        200,
      );
      assert.ok(status.secrets);
      const second = await joinRoom("after");
      assert.ok(signedBy(NEW, second), "credentials of the new secret after the rotation");
      assert.equal((await tryAllocate(turnPort, second.username, second.credential)).ok, true, "new credential");
      assert.equal((await tryAllocate(turnPort, first.username, first.credential)).ok, true, "old one in the overlap");
      assert.deepEqual(await processIds(agentUrl, sfuUrl), pidsBefore, "no agent or SFU restarted");
      assert.match(
        await (await fetch(`${agentUrl}/metrics`)).text(),
        /sfu_agent_secret_rotations_total\{[^}]*outcome="ack"[^}]*\} 1/,
      );

      // The scan: everything outside the SFU process that a secret could reach.
      const texts: [string, string][] = [];
      for (const url of [agentUrl, sfuUrl]) {
        for (const path of ["/status", "/metrics"])
          texts.push([`${url}${path}`, await (await fetch(`${url}${path}`)).text()]);
      }
      for (const f of await readdir(workDir)) {
        if (f.endsWith(".log")) texts.push([f, await readFile(join(workDir, f), "utf8")]);
      }
      for (const c of clients) texts.push(["signalling", JSON.stringify(c.messages)]);
      texts.push(["npm start output", stdout + stderr]);
      for (const [where, text] of texts) {
        for (const secret of [OLD, NEW]) assert.ok(!text.includes(secret), `${where} contains a TURN auth secret`);
      }
      const sfuLog = texts.find(([w]) => w.endsWith("-sfu.log"))?.[1] ?? "";
      assert.match(sfuLog, /secrets reloaded/, "the scanned SFU log is the one that saw the rotation");
      assert.ok(texts.some(([w]) => w.endsWith("-agent.log")));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      child.kill("SIGINT");
      await exited;
      clearTimeout(killer);
    }
  });
});

/** The pid the agent and the SFU report in their process metrics (a restart changes it). */
async function processIds(agentUrl: string, sfuUrl: string): Promise<string[]> {
  const out: string[] = [];
  for (const [url, prefix] of [
    [agentUrl, "sfu_agent_"],
    [sfuUrl, "sfu_"],
  ] as const) {
    const text = await (await fetch(`${url}/metrics`)).text();
    out.push(new RegExp(`^${prefix}process_start_time_seconds (\\S+)$`, "m").exec(text)?.[1] ?? "missing");
  }
  return out;
}
