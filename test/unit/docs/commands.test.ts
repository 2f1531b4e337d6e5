/**
 * Every command in a fenced shell block of README.md and docs/ runs, or is
 * marked as an example for a cluster (a block whose first line is
 * `# example for a cluster`): npm lines name package.json scripts;
 * `npm run agent -- validate|schema ...` lines that name only existing files
 * run as written; other `npm run agent -- ...`, `npm run sfu -- ...` and
 * `npm start -- ...` lines take input (placeholders, servers, URLs) and are
 * parsed by the commands' own parsers with `--help` appended (every flag must
 * exist; nothing is started); `npm exec -- node --test` names existing test
 * files. Fast: nothing here starts the stack or the test suite.
 */
import assert from "node:assert/strict";
import { globSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { parseArgs } from "node:util";
import { SCHEMA_FLAGS } from "../../../agent/commands/schema.ts";
import { VALIDATE_FLAGS } from "../../../agent/commands/validate.ts";
import type { FlagSpecs } from "../../../protocol/cli-flags.ts";
import { START_FLAGS } from "../../../scripts/local/start-flags.ts";
import { parseCliArgs } from "../../../sfu/cli.ts";
import { cli } from "../../helpers/cli-run.ts";
import { fencedBlocks, markdownFiles, ROOT } from "../../helpers/markdown.ts";

/** The marker that exempts a block: its commands need a real cluster, an AWS account or Docker. */
const CLUSTER_MARKER = /^# example for a cluster\b/;
const SHELL = new Set(["sh", "bash", "shell", "console"]);
const SCRIPTS = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> })
  .scripts;

/** A command of a doc: file:line and its words. */
interface DocCommand {
  where: string;
  words: string[];
}

/** The shell commands of the unmarked shell blocks of README.md and docs/. */
function docCommands(): { commands: DocCommand[]; marked: number } {
  const files = [join(ROOT, "README.md"), ...markdownFiles(join(ROOT, "docs"))];
  const commands: DocCommand[] = [];
  let marked = 0;
  for (const file of files) {
    for (const block of fencedBlocks(readFileSync(file, "utf8"))) {
      if (!SHELL.has(block.lang)) continue;
      const first = block.lines.find((l) => l.trim() !== "") ?? "";
      if (CLUSTER_MARKER.test(first.trim())) {
        marked++;
        continue;
      }
      let pending = "";
      block.lines.forEach((raw, i) => {
        const line = pending + raw;
        if (line.endsWith("\\")) {
          pending = `${line.slice(0, -1)} `;
          return;
        }
        pending = "";
        const text = line
          .replace(/(^|\s)#.*$/, "") // a comment
          .replace(/\[[^\]]*\]/g, "") // a synopsis's [optional parts]
          .replace(/\s\d?>\s*\S+/g, "") // a redirection
          .replace(/\s&\s*$/, "") // run in the background
          .trim();
        if (text === "") return;
        for (const part of text.split(/\s*(?:&&|;)\s*/)) {
          commands.push({ where: `${relative(ROOT, file)}:${block.line + i}`, words: part.split(/\s+/) });
        }
      });
    }
  }
  return { commands, marked };
}

/** The subcommands that only read their input and print: run for real when every file they name exists. */
const RUN_FOR_REAL: Record<string, FlagSpecs> = { validate: VALIDATE_FLAGS, schema: SCHEMA_FLAGS };

/** True when `args` of a read-and-print subcommand name only files that exist (no placeholders). */
function concrete(flags: FlagSpecs, args: string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("-")) {
      const spec = flags[a.replace(/^--?/, "").split("=")[0]!];
      if (spec?.type === "string" && !a.includes("=")) i++; // its value
      continue;
    }
    if (!globSync(a, { cwd: ROOT }).length) return false;
  }
  return true;
}

/** Why a command does not run as written, or null when it does. */
async function check(words: string[]): Promise<string | null> {
  if (words[0] !== "npm")
    return "not an npm command: mark the block `# example for a cluster`, or make it one that runs";
  const [, verb, ...rest] = words;
  if (verb === "ci") return rest.length === 0 ? null : "npm ci takes no arguments here";
  if (verb === "test") return "test" in SCRIPTS ? null : "no test script";
  if (verb === "start") {
    const args = rest[0] === "--" ? rest.slice(1) : rest;
    try {
      parseArgs({ args: [...args, "--help"], options: START_FLAGS, strict: true });
      return null;
    } catch (err) {
      return `npm start: ${(err as Error).message}`;
    }
  }
  if (verb === "exec") {
    if (rest[0] !== "--" || rest[1] !== "node" || rest[2] !== "--test")
      return "npm exec: only `npm exec -- node --test FILES`";
    const patterns = rest.slice(3);
    if (patterns.length === 0) return "npm exec -- node --test: no files";
    const empty = patterns.filter((p) => globSync(p, { cwd: ROOT }).length === 0);
    return empty.length === 0 ? null : `no test file matches ${empty.join(", ")}`;
  }
  if (verb === "run") {
    const args = rest[0] === "-s" ? rest.slice(1) : rest;
    const [name, dashes, ...cliArgs] = args;
    if (name === undefined || !(name in SCRIPTS)) return `no package.json script ${JSON.stringify(name)}`;
    if (dashes !== undefined && dashes !== "--") return `arguments of npm run ${name} must follow --`;
    if (name === "agent") {
      // `validate FILE` and `schema` run as written; a line that takes input (a placeholder, a file
      // of the reader's, a server or a URL to read) is parsed by the command with --help appended.
      const flags = RUN_FOR_REAL[cliArgs[0] ?? ""];
      const real = flags !== undefined && concrete(flags, cliArgs.slice(1));
      const argv = real ? cliArgs : [...cliArgs, "--help"];
      const r = await cli(...argv);
      return r.code === 0 ? null : `sfu-agent ${argv.join(" ")} exits ${r.code}: ${r.stderr.trim()}`;
    }
    if (name === "sfu") {
      const r = parseCliArgs([...cliArgs, "--help"]);
      return r.ok && r.help ? null : `sfu-server: ${r.ok ? "no help" : r.error}`;
    }
    return null;
  }
  return `npm ${verb}: not a command the docs check knows`;
}

describe("commands in the README's and docs' shell blocks run", () => {
  it("finds the commands, and the marked cluster examples", () => {
    const { commands, marked } = docCommands();
    assert.ok(commands.some((c) => c.words.join(" ") === "npm ci"));
    assert.ok(commands.some((c) => c.words.slice(0, 4).join(" ") === "npm run agent --"));
    assert.ok(marked >= 3, `${marked} marked blocks`);
  });

  it("every unmarked command runs (CLI lines parse with --help; scripts and test files exist)", async () => {
    const bad: string[] = [];
    for (const c of docCommands().commands) {
      const why = await check(c.words);
      if (why) bad.push(`${c.where}: ${c.words.join(" ")}: ${why}`);
    }
    assert.deepEqual(bad, []);
  });

  it("the check refuses what would not run", async () => {
    assert.match((await check(["kubectl", "get", "pods"])) ?? "", /example for a cluster/);
    assert.match((await check(["npm", "run", "agent", "--", "validate", "--no-such-flag"])) ?? "", /exits 2/);
    assert.match((await check(["npm", "run", "sfu", "--", "--bogus"])) ?? "", /sfu-server/);
    assert.match((await check(["npm", "start", "--", "--podz", "3"])) ?? "", /npm start/);
    assert.match((await check(["npm", "run", "no-such-script"])) ?? "", /no package.json script/);
    assert.match(
      (await check(["npm", "exec", "--", "node", "--test", "test/unit/nope/*.test.ts"])) ?? "",
      /no test file/,
    );
    assert.equal(await check(["npm", "run", "agent", "--", "validate", "k8s/base/config.yaml"]), null);
    // Run as written: an invalid file fails the line (it would not print "ok").
    assert.match(
      (await check(["npm", "run", "agent", "--", "validate", "package.json"])) ?? "",
      /validate package.json exits 1/,
    );
    // Takes input: parsed with --help, so a missing file is no failure but a bad flag is.
    assert.equal(await check(["npm", "run", "agent", "--", "validate", "--no-check-files", "config.yaml"]), null);
  });
});
