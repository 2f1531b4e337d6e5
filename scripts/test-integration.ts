/**
 * `npm run test:integration`: every test/integration file, one at a time
 * within a lane. First, alone, the files that measure what CPU contention
 * would change (media forwarding rates, the hostile-input suite's processes
 * under their cgroup CPU limit); then two lanes at once: the fault suite
 * (test/integration/faults/), which spends its time waiting out outages,
 * bakes and timeouts, beside every other file. The fault lane's lines are
 * prefixed `[faults]`. Exits non-zero when any run fails. Extra arguments go
 * to every `node --test` run.
 */
import { spawn } from "node:child_process";
import { globSync } from "node:fs";
import { createInterface } from "node:readline";

const FAULTS = "test/integration/faults/";
/** Files run with nothing beside them: what they assert depends on having the CPU. */
const ALONE = ["test/integration/hostile/", "test/integration/sfu/forwarding.test.ts"];

/** One `node --test` over `files`, its output lines written with `prefix`; resolves to the exit code. */
function lane(files: readonly string[], prefix: string, extra: readonly string[]): Promise<number> {
  const child = spawn(
    process.execPath,
    ["--test", "--test-reporter=spec", "--test-concurrency=1", ...extra, ...files],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  for (const stream of [child.stdout, child.stderr]) {
    const out = stream === child.stdout ? process.stdout : process.stderr;
    createInterface({ input: stream }).on("line", (line) => out.write(`${prefix}${line}\n`));
  }
  return new Promise((resolve) => {
    child.on("close", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const all = globSync("test/integration/**/*.test.ts").sort();
const alone = all.filter((f) => ALONE.some((a) => f.startsWith(a)));
const faults = all.filter((f) => f.startsWith(FAULTS));
const rest = all.filter((f) => !f.startsWith(FAULTS) && !alone.includes(f));
const extra = process.argv.slice(2);
const first = await lane(alone, "", extra);
const [second, third] = await Promise.all([lane(rest, "", extra), lane(faults, "[faults] ", extra)]);
const said = (code: number) => (code === 0 ? "passed" : "FAILED");
process.stdout.write(
  `\ntest:integration: ${alone.length} files alone ${said(first)}; ${rest.length} files ${said(second)}; beside them the fault suite, ${faults.length} files, ${said(third)}\n`,
);
process.exitCode = [first, second, third].some((c) => c !== 0) ? 1 : 0;
