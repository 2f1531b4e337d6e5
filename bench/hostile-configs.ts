/**
 * Benchmark of the config loader on hostile input, run with
 * `npm run bench:hostile`: for every file of the hostile family
 * (test/helpers/hostile-configs.ts: deep nesting, alias expansion, floods of
 * unknown keys and bad values, an undeliverable frame, secrets, escapes,
 * directives, tags, a lone surrogate; all under the 1 MiB file limit):
 *
 * - validate time in-process: `loadConfigText` of the file, in a fresh child
 *   process after a warm-up on a good config (median of 3 when a run takes
 *   under a second);
 * - peak RSS of that child process (`VmHWM` of /proc/self/status), next to
 *   the same figure for a good config. The child runs with the agent
 *   container's memory limit (a memory cgroup, scripts/lib/container-limits.ts)
 *   when this machine allows, because V8 sizes its heap from that limit:
 *   without it the figure shows how lazily V8 collects on a big machine, not
 *   what the agent needs; the output says which;
 * - `sfu-agent validate` as users run it: wall time of the CLI process
 *   (`node agent/cli.ts validate --no-check-files FILE`, start-up included)
 *   and the size of what it prints.
 *
 * Each child is killed after CHILD_TIMEOUT_MS, so one unbounded case cannot
 * stall the benchmark; it is then reported as over the timeout. Figures, not
 * assertions: the worst case of each goes to BENCHMARKS.md.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatProblem, loadConfigText } from "../protocol/config-loader.ts";
import { createMemoryCgroup, deploymentMemoryLimit, type MemoryCgroup } from "../scripts/lib/container-limits.ts";
import { goodConfig, type HostileConfig, hostileConfigs } from "../test/helpers/hostile-configs.ts";
import { emitFigures } from "./figures.ts";

const ROOT = join(import.meta.dirname, "..");
const CLI = join(ROOT, "agent", "cli.ts");
/** Longest a child (one file) may run. */
const CHILD_TIMEOUT_MS = 120_000;
/** Runs after which the median is taken, when one run is quick enough to repeat. */
const REPEATS = 3;
const REPEAT_UNDER_MS = 1_000;

/** What the `--child FILE` mode prints as its last line. */
interface ChildReport {
  ms: number;
  ok: boolean;
  problems: number;
  first: string;
  hwmKiB: number;
}

async function hwmKiB(): Promise<number> {
  const m = /VmHWM:\s+(\d+) kB/.exec(await readFile("/proc/self/status", "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

/** `--child FILE`: warm up on a good config, then time loadConfigText of FILE and report the peak RSS. */
async function child(file: string): Promise<void> {
  await loadConfigText(goodConfig(), { source: "config.yaml", checkFiles: false });
  const text = await readFile(file, "utf8");
  const times: number[] = [];
  let report: Omit<ChildReport, "ms" | "hwmKiB"> = { ok: false, problems: 0, first: "" };
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    const r = await loadConfigText(text, { source: "config.yaml", checkFiles: false });
    const lines = r.ok ? [`config.yaml: ok ${r.hash}`] : r.problems.map((p) => formatProblem("config.yaml", p));
    times.push(performance.now() - t0);
    report = { ok: r.ok, problems: r.ok ? 0 : r.problems.length, first: (lines[0] ?? "").slice(0, 160) };
    if ((times[0] as number) >= REPEAT_UNDER_MS) break;
  }
  times.sort((a, b) => a - b);
  const out: ChildReport = { ...report, ms: times[Math.floor(times.length / 2)] as number, hwmKiB: await hwmKiB() };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

interface Spawned {
  code: number | null;
  signal: string | null;
  ms: number;
  stdout: string;
  stdoutBytes: number;
  timedOut: boolean;
}

/** Runs a node child to its end (or the timeout), in `cgroup` when given; keeps the first MiB of its stdout. */
function run(args: string[], cgroup: MemoryCgroup | null = null): Promise<Spawned> {
  const t0 = performance.now();
  const [command, argv] = cgroup ? cgroup.wrap(process.execPath, args) : [process.execPath, args];
  const c = spawn(command, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] });
  let stdout = "";
  let stdoutBytes = 0;
  c.stdout.on("data", (d: Buffer) => {
    stdoutBytes += d.length;
    if (stdout.length < 2 ** 20) stdout += d.toString("utf8");
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    c.kill("SIGKILL");
  }, CHILD_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    c.once("error", reject);
    c.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ms: performance.now() - t0, stdout, stdoutBytes, timedOut });
    });
  });
}

interface Row {
  name: string;
  bytes: number;
  ms: number;
  hwmMiB: number;
  cliMs: number;
  cliBytes: number;
  verdict: string;
  note: string;
}

async function measure(
  dir: string,
  c: Pick<HostileConfig, "name" | "text" | "bytes">,
  cgroup: MemoryCgroup | null,
): Promise<Row> {
  const file = join(dir, `${c.name}.yaml`);
  await writeFile(file, c.text);
  const inProc = await run([import.meta.filename, "--child", file], cgroup);
  let report: ChildReport | null = null;
  const last = inProc.stdout.trim().split("\n").at(-1) ?? "";
  if (inProc.code === 0 && last.startsWith("{")) report = JSON.parse(last) as ChildReport;
  const cli = await run([CLI, "validate", "--no-check-files", file]);
  await rm(file);
  const failed = (s: Spawned) =>
    s.timedOut ? `killed after ${CHILD_TIMEOUT_MS / 1000} s` : `exit ${s.code ?? s.signal}`;
  return {
    name: c.name,
    bytes: c.bytes,
    ms: report?.ms ?? (inProc.timedOut ? CHILD_TIMEOUT_MS : Number.NaN),
    hwmMiB: report ? report.hwmKiB / 1024 : Number.NaN,
    cliMs: cli.timedOut ? CHILD_TIMEOUT_MS : cli.ms,
    cliBytes: cli.stdoutBytes,
    verdict: report ? (report.ok ? "VALID" : `invalid, ${report.problems} problem(s)`) : failed(inProc),
    note: report ? report.first : "",
  };
}

async function main(): Promise<void> {
  const family = hostileConfigs();
  const dir = await mkdtemp(join(tmpdir(), "sfu-hostile-bench-"));
  const limit = deploymentMemoryLimit("sfu-agent");
  const made = await createMemoryCgroup(limit.bytes);
  const cgroup = "unavailable" in made ? null : made;
  const where =
    "unavailable" in made
      ? `NOT under the agent container's ${limit.quantity} memory limit (${made.unavailable}): V8 sizes its heap for the whole machine`
      : `under the agent container's memory limit, ${limit.quantity}`;
  console.log(
    `hostile config benchmark: ${family.length} files, node ${process.version}; in-process loadConfigText in a fresh child (median of up to ${REPEATS}) and its peak RSS, ${where}; the sfu-agent validate CLI process as users run it`,
  );
  try {
    const good = { name: "good-config", text: goodConfig(), bytes: Buffer.byteLength(goodConfig()) };
    const base = await measure(dir, good, cgroup);
    const rows: Row[] = [];
    for (const c of family) {
      const r = await measure(dir, c, cgroup);
      rows.push(r);
      console.log(
        `  ${r.name.padEnd(22)} ${String(r.bytes).padStart(9)} B  validate ${r.ms.toFixed(1).padStart(8)} ms  peak RSS ${r.hwmMiB.toFixed(1).padStart(6)} MiB  CLI ${r.cliMs.toFixed(0).padStart(6)} ms, ${String(r.cliBytes).padStart(7)} B out  ${r.verdict}`,
      );
      if (r.note) console.log(`  ${"".padEnd(22)} ${r.note}`);
    }
    console.log(
      `  ${"good config".padEnd(22)} ${String(base.bytes).padStart(9)} B  validate ${base.ms.toFixed(1).padStart(8)} ms  peak RSS ${base.hwmMiB.toFixed(1).padStart(6)} MiB  CLI ${base.cliMs.toFixed(0).padStart(6)} ms  (baseline)`,
    );
    const worst = (key: "ms" | "hwmMiB" | "cliMs" | "cliBytes") => {
      const measured = rows.filter((r) => Number.isFinite(r[key]));
      if (measured.length === 0) throw new Error(`no case was measured for ${key}`);
      return measured.reduce((a, b) => (b[key] > a[key] ? b : a));
    };
    const w = { ms: worst("ms"), rss: worst("hwmMiB"), cli: worst("cliMs"), out: worst("cliBytes") };
    const valid = rows.filter((r) => r.verdict === "VALID").map((r) => r.name);
    const broken = rows.filter((r) => !r.verdict.startsWith("invalid") && r.verdict !== "VALID");
    console.log("\nworst case");
    console.log(`  validate (in-process)  ${w.ms.ms.toFixed(1)} ms  (${w.ms.name})`);
    console.log(
      `  peak RSS               ${w.rss.hwmMiB.toFixed(1)} MiB  (${w.rss.name}; good config ${base.hwmMiB.toFixed(1)} MiB)`,
    );
    console.log(
      `  validate CLI           ${w.cli.cliMs.toFixed(0)} ms  (${w.cli.name}; good config ${base.cliMs.toFixed(0)} ms)`,
    );
    console.log(`  validate CLI output    ${w.out.cliBytes} bytes  (${w.out.name})`);
    if (valid.length > 0) console.log(`  accepted as VALID (should be refused): ${valid.join(", ")}`);
    for (const b of broken) console.log(`  ${b.name}: the child did not finish (${b.verdict})`);
    emitFigures("hostile-configs", {
      hostile_validate_worst_ms: { value: w.ms.ms, unit: "ms", better: "lower" },
      hostile_peak_rss_worst_mib: { value: w.rss.hwmMiB, unit: "MiB", better: "lower" },
      good_config_peak_rss_mib: { value: base.hwmMiB, unit: "MiB" },
      hostile_cli_validate_worst_ms: { value: w.cli.cliMs, unit: "ms", better: "lower" },
      good_config_cli_validate_ms: { value: base.cliMs, unit: "ms" },
      hostile_cli_output_worst_bytes: { value: w.out.cliBytes, unit: "bytes", better: "lower" },
      hostile_files_accepted: { value: valid.length, unit: `of ${rows.length} files`, better: "lower" },
    });
  } finally {
    await cgroup?.remove();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--child") await child(process.argv[3] as string);
else await main();
