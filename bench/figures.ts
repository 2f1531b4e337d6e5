/**
 * The machine-readable side of every benchmark script: after printing its
 * human-readable report, a script calls {@link emitFigures} once, which
 * prints one `BENCH_FIGURES {json}` line. `npm run bench` (bench/run-all.ts)
 * runs each script several times, collects these lines and writes
 * BENCHMARKS.md with the median and spread of every figure.
 */

/** One measured figure. */
export interface Figure {
  value: number;
  /** Unit as shown in the report, e.g. "ms", "MiB", "pkt/s", "x". */
  unit: string;
  /** Which direction is better, for the reader. */
  better?: "lower" | "higher";
}

/** Prefix of the line {@link emitFigures} prints. */
export const FIGURES_PREFIX = "BENCH_FIGURES ";

/** Prints the figures of one run of a benchmark as a single machine-readable line. */
export function emitFigures(bench: string, figures: Record<string, Figure>): void {
  for (const [name, f] of Object.entries(figures)) {
    if (!Number.isFinite(f.value)) throw new Error(`${bench}: figure ${name} is not a finite number`);
  }
  process.stdout.write(`${FIGURES_PREFIX}${JSON.stringify({ bench, figures })}\n`);
}
