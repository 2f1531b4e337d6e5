/**
 * Command-line flags as data. Each command of `sfu-agent`, `sfu-server` and
 * `npm start` defines its flags once as a {@link FlagSpecs} record: the record
 * is passed to `node:util` `parseArgs` as it is (parseArgs reads `type`,
 * `short`, `default` and ignores the documentation fields), the command's
 * `--help` lists it with {@link formatFlagHelp}, and `npm run docs` writes it
 * into docs/reference/cli.md. So the help text, the parser and the reference
 * cannot disagree.
 *
 * In protocol/ because both the agent and the SFU use it and neither may
 * import the other.
 */

/** One flag: what parseArgs needs, plus its documentation. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
  /** Placeholder of the value in the help text (`FILE`, `N`); none for booleans. */
  arg?: string;
  /** How the help shows the flag when not `--name ARG` (e.g. `--no-check-files`). */
  label?: string;
  /** Help text; `\n` starts a continuation line. */
  help: string;
}

/** The flags of one command, by long name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** The flag as the help text and the reference show it: `-q, --quiet`, `--format text|json`. */
export function flagLabel(name: string, spec: FlagSpec): string {
  if (spec.label !== undefined) return spec.label;
  const long = `--${name}${spec.arg !== undefined ? ` ${spec.arg}` : ""}`;
  return spec.short !== undefined ? `-${spec.short}, ${long}` : long;
}

/**
 * The options block of a help text: each flag indented by two spaces, its help
 * starting at `column` (continuation lines too); a label too long for the
 * column puts the help on the next line. Every line ends with a newline.
 */
export function formatFlagHelp(flags: FlagSpecs, column: number): string {
  const pad = " ".repeat(column);
  let out = "";
  for (const [name, spec] of Object.entries(flags)) {
    const label = `  ${flagLabel(name, spec)}`;
    const [first = "", ...rest] = spec.help.split("\n");
    out += label.length + 2 <= column ? `${label.padEnd(column)}${first}\n` : `${label}\n${pad}${first}\n`;
    for (const line of rest) out += `${pad}${line}\n`;
  }
  return out;
}
