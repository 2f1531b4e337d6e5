/**
 * `sfu-server` as a process: standalone `--config FILE`, HTTP endpoints,
 * SIGTERM, a refused config file, and TURN secret files read only under
 * `--secrets-dir` / SFU_SECRETS_DIR.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { configHash, loadConfigFile } from "../../../protocol/index.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";

const CLI = new URL("../../../sfu/cli.ts", import.meta.url).pathname;

function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { child: ChildProcess; port: Promise<number>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const port = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const j = JSON.parse(line) as { msg?: string; port?: number };
        if (j.msg === "SFU listening" && j.port) resolve(j.port);
      } catch {}
    });
    child.once("exit", (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  port.catch(() => {}); // awaited only by tests that expect the server to start
  return { child, port, stderr: () => err };
}

describe("sfu-server CLI", { timeout: 30_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-cli-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs standalone from --config, serves the demo page and endpoints, exits 0 on SIGTERM", async () => {
    const file = join(dir, "config.yaml");
    await writeFile(
      file,
      "schemaVersion: 1\nserver: { port: 8080 }\nwebrtc:\n  icePortRange: [42000, 42999]\n  codecs: [vp8, opus]\n  listenIp: 127.0.0.1\nlogging: { level: info }\n",
    );
    const loaded = await loadConfigFile(file);
    assert.ok(loaded.ok);
    const { child, port } = startCli(["--config", file, "--port", "0", "--host", "127.0.0.1"]);
    try {
      const base = `http://127.0.0.1:${await port}`;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      const status = (await (await fetch(`${base}/status`)).json()) as { health: { since: string } | null };
      assert.deepEqual(status, {
        applied: { version: 1, hash: loaded.hash },
        rooms: 0,
        participants: 0,
        agent: null,
        health: {
          hash: loaded.hash,
          since: status.health?.since,
          joins: 0,
          joinFailures: 0,
          iceConnected: 0,
          iceFailures: 0,
        },
      });
      assert.ok(!Number.isNaN(Date.parse(status.health?.since ?? "")));
      assert.equal(loaded.hash, configHash(loaded.config));
      const page = await (await fetch(`${base}/`)).text();
      assert.match(page, /<script src="\/app.js">/);
      assert.match(await (await fetch(`${base}/app.js`)).text(), /autojoin/);
      assert.match(await (await fetch(`${base}/metrics`)).text(), /^sfu_config_version 1$/m);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
    } finally {
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
    }
  });

  it("refuses an invalid config file with FILE:LINE:COL problems and exit code 1; usage errors exit 2", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      "schemaVersion: 1\nserver: { port: 8080 }\nwebrtc:\n  icePortRange: [42000, 42999]\n  codecs: [vp8]\n",
    );
    const { child, stderr } = startCli(["--config", file, "--port", "0"]);
    const [code] = await once(child, "exit");
    assert.equal(code, 1);
    assert.match(stderr(), /bad\.yaml:5:\d+: \/webrtc\/codecs: needs at least one audio codec/);
    const usage = spawn(process.execPath, [CLI, "--port", "x"], { stdio: "ignore" });
    const [ucode] = await once(usage, "exit");
    assert.equal(ucode, 2);
  });

  it("reads TURN secret files only under SFU_SECRETS_DIR / --secrets-dir: minted credentials from there, /etc/passwd refused", async () => {
    const secrets = join(dir, "secrets");
    await mkdir(secrets, { recursive: true });
    await writeFile(join(secrets, "auth"), "cli-auth-secret\n");
    const v2 = (turn: string) =>
      `schemaVersion: 2\nserver: { port: 8080 }\nwebrtc:\n  icePortRange: [42000, 42999]\n  codecs: [vp8, opus]\n  listenIp: 127.0.0.1\n  turnServers:\n    - ${turn}\nlogging: { level: info }\n`;
    const good = join(dir, "v2.yaml");
    await writeFile(
      good,
      v2(`{ urls: ["turn:127.0.0.1:3478"], authSecretFile: ${join(secrets, "auth")}, credentialTtl: 120 }`),
    );
    const { child, port } = startCli(["--config", good, "--port", "0", "--host", "127.0.0.1"], {
      ...process.env,
      SFU_SECRETS_DIR: secrets,
    });
    try {
      const client = await WeriftTestClient.join({
        url: `ws://127.0.0.1:${await port}/ws`,
        room: "r",
        name: "n",
        publish: { audio: false, video: false },
      });
      const [server] = client.joined.iceServers as { username: string; credential: string }[];
      await client.close();
      assert.ok(server);
      assert.equal(server.credential, createHmac("sha1", "cli-auth-secret").update(server.username).digest("base64"));
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }

    const bad = join(dir, "passwd.yaml");
    await writeFile(bad, v2(`{ urls: ["turn:127.0.0.1:3478"], username: u, credentialFile: /etc/passwd }`));
    const refused = startCli(["--config", bad, "--port", "0", "--secrets-dir", secrets]);
    const [code] = await once(refused.child, "exit");
    assert.equal(code, 1);
    assert.match(
      refused.stderr(),
      /\/webrtc\/turnServers\/0\/credentialFile: \/etc\/passwd: is outside the secrets directory/,
    );
    assert.doesNotMatch(refused.stderr(), /root:/);
  });
});
