/**
 * `npm run bench`: runs every benchmark script of the project `--runs` times
 * (default 3), collects the figures each run prints (bench/figures.ts) and
 * writes their sections of BENCHMARKS.md: for each figure the median and the
 * spread (min..max) over the runs, with the run's date, machine and Node
 * version; the sections of scripts not run (`--only`, or measured by scripts
 * of their own) are kept. Scripts run one at a time so they do not compete
 * for the two cores.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { FIGURES_PREFIX, type Figure } from "./figures.ts";
import { type DocSection, mergeSections } from "./lib/benchmarks-doc.ts";

const ROOT = resolve(import.meta.dirname, "..");

/** The benchmark scripts, in the order they run, with what each measures. */
const BENCHES: ReadonlyArray<{ script: string; title: string }> = [
  {
    script: "bench/agent-reload.ts",
    title: "Agent: file swap -> config pushed, side by side with configmap-reload; memory and idle CPU",
  },
  {
    script: "bench/agent-memory.ts",
    title: "Agent memory in per-pod queue mode (as the image runs it): RSS, private, anonymous",
  },
  { script: "bench/sfu-forwarding.ts", title: "SFU: forwarding capacity and config-apply stall" },
  { script: "bench/queue-fanout.ts", title: "SNS/SQS: publish -> all pods applied, idle request rate" },
  { script: "bench/restart-vs-reload.ts", title: "Media interruption: rolling restart vs hot reload" },
  { script: "bench/hostile-configs.ts", title: "Hostile configs: validate time and peak RSS, worst case" },
  {
    script: "bench/event-burst.ts",
    title: "Event burst: 10,000 reload events for hashes that never arrive, then one change (agent under its limits)",
  },
  {
    script: "bench/rollout.ts",
    title: "Progressive rollout: time added per step beyond bake, requests per pod per rollout",
  },
  { script: "bench/admission.ts", title: "Admission webhook: review latency, shipped and 16 KiB config" },
];

interface RunResult {
  figures: Record<string, Figure>;
  seconds: number;
}

function runOnce(script: string): Promise<RunResult> {
  const started = performance.now();
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(ROOT, script)], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d);
    });
    child.on("error", rej);
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith(FIGURES_PREFIX));
      if (code !== 0) return rej(new Error(`${script} exited with code ${code}`));
      if (!line) return rej(new Error(`${script} printed no ${FIGURES_PREFIX.trim()} line`));
      const parsed = JSON.parse(line.slice(FIGURES_PREFIX.length)) as { figures: Record<string, Figure> };
      res({ figures: parsed.figures, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** Median of a non-empty list. */
function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function fmt(n: number): string {
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  return abs >= 100 ? n.toFixed(0) : abs >= 10 ? n.toFixed(1) : abs >= 1 ? n.toFixed(2) : n.toPrecision(2);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { runs: { type: "string" }, only: { type: "string" }, out: { type: "string" } },
    strict: true,
  });
  const runs = Number(values.runs ?? 3);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
    process.stderr.write("bench: --runs must be an integer 1..20\n");
    return 2;
  }
  const selected = BENCHES.filter((b) => !values.only || b.script.includes(values.only));
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const ranOn = `${new Date().toISOString().slice(0, 10)}, ${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node.js ${process.version}`;
  const sections: DocSection[] = [];
  let failed = 0;
  for (const bench of selected) {
    const results: RunResult[] = [];
    const errors: string[] = [];
    for (let i = 0; i < runs; i++) {
      process.stdout.write(`\n=== ${bench.script} run ${i + 1}/${runs} ===\n`);
      try {
        results.push(await runOnce(bench.script));
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0) failed += 1;
    const names = [...new Set(results.flatMap((r) => Object.keys(r.figures)))];
    const rows = names.map((name) => {
      const vals = results.map((r) => r.figures[name]?.value).filter((v): v is number => v !== undefined);
      const meta = results.find((r) => r.figures[name])?.figures[name] as Figure;
      const better = meta.better ? ` (${meta.better} is better)` : "";
      return `| ${name}${better} | ${fmt(median(vals))} ${meta.unit} | ${fmt(Math.min(...vals))} .. ${fmt(Math.max(...vals))} | ${vals.length} |`;
    });
    const took = results.length ? median(results.map((r) => r.seconds)) : 0;
    sections.push({
      title: bench.title,
      text: [
        `## ${bench.title}`,
        "",
        `Script: \`${bench.script}\`; ${results.length} of ${runs} runs succeeded; median run time ${took.toFixed(0)} s (${ranOn}).`,
        "",
        ...(rows.length > 0 ? ["| figure | median | spread (min .. max) | runs |", "|---|---|---|---|", ...rows] : []),
        ...errors.map((e) => `\n**Failed run:** ${e}`),
      ].join("\n"),
    });
  }
  const preamble = [
    "# Benchmarks",
    "",
    "Sections of `npm run bench` (bench/run-all.ts) are regenerated by it: `npm run bench -- --only NAME`",
    "rewrites that script's section and keeps the others; each says when and on what it ran. Figures",
    "are the median and the min..max spread over the runs. Sections of scripts with their own npm",
    "script (`soak:faults`, `bench:propagation`) are written from their output and kept as they are.",
  ].join("\n");
  const out = resolve(ROOT, values.out ?? "BENCHMARKS.md");
  const existing = await readFile(out, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw err;
  });
  await writeFile(out, mergeSections(existing, preamble, sections));
  process.stdout.write(`\nwrote ${out}\n`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
