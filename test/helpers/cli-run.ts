/** In-process runs of `sfu-agent` commands with their output captured. */
import { type CommandIo, runCli } from "../../agent/cli.ts";

/** Exit code and output of one command run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Calls `run` with a {@link CommandIo} that collects stdout and stderr; resolves with the exit code and both texts. */
export async function captureRun(run: (io: CommandIo) => Promise<number>): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const code = await run({
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  return { code, stdout, stderr };
}

/** Runs `sfu-agent ...args` in-process ({@link runCli}). */
export function cli(...args: string[]): Promise<CliRun> {
  return captureRun((io) => runCli(args, io));
}
