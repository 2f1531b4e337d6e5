/**
 * `npm run test:integration`: every test/integration file, in two lanes run
 * at once. The fault suite (test/integration/faults/) spends its time waiting
 * out outages, bakes and timeouts, not computing, so it runs beside the other
 * files instead of after them; within a lane files run one at a time, as
 * before. The fault lane's lines are prefixed `[faults]`. Exits non-zero when
 * either lane fails. Extra arguments go to both `node --test` runs.
 */
import { spawn } from "node:child_process";
import { globSync } from "node:fs";
import { createInterface } from "node:readline";

const FAULTS = "test/integration/faults/";

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
const faults = all.filter((f) => f.startsWith(FAULTS));
const rest = all.filter((f) => !f.startsWith(FAULTS));
const extra = process.argv.slice(2);
const codes = await Promise.all([lane(rest, "", extra), lane(faults, "[faults] ", extra)]);
process.stdout.write(
  `\ntest:integration: ${rest.length} files ${codes[0] === 0 ? "passed" : "FAILED"}; fault suite, ${faults.length} files, ${codes[1] === 0 ? "passed" : "FAILED"}\n`,
);
process.exitCode = codes.some((c) => c !== 0) ? 1 : 0;
