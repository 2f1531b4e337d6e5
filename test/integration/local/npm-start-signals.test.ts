/**
 * `npm start` (scripts/local/main.ts): SIGHUP (the terminal closed) stops
 * every agent and SFU and removes the temporary files, as Ctrl-C does; and
 * `--turn-credential FILE` mounts a TURN Secret in every pod as the
 * Deployment does (`secrets/turn-credential`, mode 0440), which a config
 * naming it passes the agent's credentialFile check with.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const MAIN = join(ROOT, "scripts", "local", "main.ts");

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "npm-start-signals-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("npm start and signals", { timeout: 120_000 }, () => {
  for (const signal of ["SIGHUP", "SIGINT"] as const) {
    it(`${signal} stops every process and removes the temporary files (with a TURN Secret mounted)`, async () => {
      const config = join(dir, `config-${signal}.yaml`);
      const example = await readFile(join(ROOT, "k8s", "base", "config.yaml"), "utf8");
      const withTurn = example.replace(
        /turnServers: \[\]/,
        'turnServers:\n    - urls: ["turn:turn.example.com:3478"]\n      username: sfu\n      credentialFile: etc-sfu/secrets/turn-credential',
      );
      assert.notEqual(withTurn, example);
      await writeFile(config, withTurn);
      const secret = join(dir, "turn-credential");
      await writeFile(secret, "s3cret-for-tests");

      const child = spawn(
        process.execPath,
        [MAIN, "--pods", "1", "--kubelet-delay", "200ms", "--config", config, "--turn-credential", secret],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const killer = setTimeout(() => child.kill("SIGKILL"), 90_000);
      let stdout = "";
      let stderr = "";
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const applied = new Promise<void>((resolve) => {
        child.stdout.on("data", (d) => {
          stdout += d;
          if (/^sfu-local-0\s+up\s+v1\s+v1\s+sha256:/m.test(stdout)) resolve();
        });
      });
      const exited = once(child, "exit");
      await Promise.race([applied, exited.then(() => assert.fail(`exited early: ${stdout}${stderr}`))]);
      const workDir = /Logs: (\S+)\/\*\.log/.exec(stdout)?.[1];
      assert.ok(workDir, stdout);
      const agentUrl = /npm run agent -- status (\S+)/.exec(stdout)?.[1];
      assert.ok(agentUrl, stdout);
      // The Secret is mounted like the projected volume's item.
      const mounted = join(workDir, "sfu-local-0", "etc-sfu", "secrets", "turn-credential");
      assert.equal(await readFile(mounted, "utf8"), "s3cret-for-tests");

      child.kill(signal);
      const [code] = await exited;
      clearTimeout(killer);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /stopped; temporary files removed/);
      assert.equal(existsSync(workDir), false, "temporary directory removed");
      await assert.rejects(fetch(`${agentUrl}/healthz`), "the agent is gone");
    });
  }
});
