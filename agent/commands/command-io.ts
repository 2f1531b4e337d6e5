/**
 * The standard streams a `sfu-agent` subcommand writes to. In its own module
 * so that the subcommands (agent/commands/*) and the dispatcher
 * (agent/cli.ts, which loads them) both import it without importing each
 * other.
 */

/** Standard streams a command writes to; injectable for tests. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}
