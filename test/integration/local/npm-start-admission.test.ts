/**
 * `npm start -- --admission` (scripts/local/main.ts): an invalid edit of the
 * source config is refused at admission by a real `sfu-agent admission` over
 * HTTPS, with `sfu-agent validate`'s lines in the terminal, and the kubelet
 * stand-in never writes it (the pod keeps mounting the last admitted
 * config); a valid edit then goes through as before.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cli } from "../../helpers/cli-run.ts";
import { until } from "../../helpers/until.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const MAIN = join(ROOT, "scripts", "local", "main.ts");

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "npm-start-admission-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("npm start -- --admission", { timeout: 120_000 }, () => {
  it("refuses an invalid edit at admission, before the kubelet writes it, with validate's lines", async () => {
    const config = join(dir, "config.yaml");
    const original = await readFile(join(ROOT, "k8s", "base", "config.yaml"), "utf8");
    await writeFile(config, original);
    const child = spawn(
      process.execPath,
      [MAIN, "--admission", "--pods", "1", "--kubelet-delay", "300ms", "--config", config],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const killer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    let stdout = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stdout += d;
    });
    const exited = once(child, "exit");
    try {
      await until(
        () => /^sfu-local-0\s+up\s+v1\s+v1\s+sha256:/m.test(stdout) || child.exitCode !== null,
        60_000,
        "v1 applied",
      );
      assert.match(stdout, /admission webhook on https:\/\/127\.0\.0\.1:\d+\/validate/);
      const workDir = /Logs: (\S+)\/\*\.log/.exec(stdout)?.[1];
      assert.ok(workDir, stdout);
      const mounted = join(workDir, "sfu-local-0", "etc-sfu", "config.yaml");
      assert.equal(await readFile(mounted, "utf8"), original);

      const invalid = original
        .replace(/level: info/, "level: loud")
        .replace(/codecs: \[([^\]]*)\]/, "codecs: [$1, h265]");
      assert.notEqual(invalid, original);
      await writeFile(config, invalid);
      await until(() => stdout.includes("refused at admission"), 10_000, "the refusal");
      // Give the kubelet stand-in more than its delay: it must not write the refused file.
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(await readFile(mounted, "utf8"), original, "the kubelet never wrote the refused config");
      assert.doesNotMatch(stdout, /source changed: revision local-1/, "no hook run for it");
      // The same lines as `sfu-agent validate --no-check-files config.yaml` (run from the file's directory).
      const cwd = process.cwd();
      process.chdir(dir);
      const validate = await cli("validate", "--no-check-files", "config.yaml").finally(() => process.chdir(cwd));
      assert.equal(validate.code, 1);
      const refusal = stdout.slice(stdout.indexOf("refused at admission")).split("\n").slice(1);
      const expected = validate.stdout.trimEnd().split("\n");
      assert.ok(expected.length >= 2, validate.stdout);
      assert.deepEqual(
        refusal.slice(0, expected.length).map((l) => l.trim()),
        expected,
      );

      const valid = original.replace(/level: info/, "level: debug");
      await writeFile(config, valid);
      await until(() => stdout.includes("admission: local-2 admitted"), 10_000, "the valid edit admitted");
      await until(async () => (await readFile(mounted, "utf8")) === valid, 10_000, "the valid edit mounted");
    } finally {
      child.kill("SIGINT");
      const [code] = await exited;
      clearTimeout(killer);
      assert.equal(code, 0, stdout.slice(-2000));
    }
  });
});
