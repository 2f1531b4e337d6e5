/**
 * The README's first command: `npm start` (scripts/local/main.ts) brings the
 * loop up, prints the demo pages and the fleet table, and `--once` stops it
 * after every pod applied the config, removing its temporary directory.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const MAIN = join(import.meta.dirname, "..", "..", "..", "scripts", "local", "main.ts");

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return once(child, "exit").then(([code]) => {
    clearTimeout(timer);
    return { code: code as number | null, stdout, stderr };
  });
}

describe("npm start", { timeout: 90_000 }, () => {
  it("runs the loop, prints demo pages and the fleet table, and cleans up", async () => {
    const { code, stdout, stderr } = await run(["--once", "--pods", "2"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /sfu-local-0: http:\/\/127\.0\.0\.1:\d+\/\?room=demo&autojoin=1/);
    assert.match(stdout, /sfu-local-1: http:\/\/127\.0\.0\.1:\d+\/\?room=demo&autojoin=1/);
    assert.match(stdout, /^sfu-local-0\s+up\s+v1\s+v1\s+sha256:[0-9a-f]{12}/m);
    assert.match(stdout, /every pod applied the config; stopped/);
    const workDir = /Logs: (\S+)\/\*\.log/.exec(stdout)?.[1];
    assert.ok(workDir, "prints where its logs are");
    assert.equal(existsSync(workDir), false, "temporary directory removed");
  });

  it("rejects bad options with exit 2 and the usage text", async () => {
    const { code, stderr } = await run(["--pods", "0"]);
    assert.equal(code, 2);
    assert.match(stderr, /--pods must be an integer 1\.\.50/);
    assert.match(stderr, /Usage: npm start/);
  });
});
