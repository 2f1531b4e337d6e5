/**
 * Every command the docs show (and the hint `npm start` prints) works when
 * pasted into a shell whose system Node is older than 24: the docs run the
 * CLIs through npm scripts (`npm run agent -- ...`, `npm run sfu -- ...`,
 * `npm exec -- node ...`), which put the pinned Node 24 of node_modules/.bin
 * first on PATH. A bare `node agent/cli.ts` or `node --test` runs the
 * system Node (ERR_UNKNOWN_FILE_EXTENSION ".ts" on v20), and `npx sfu-agent`
 * finds nothing (npm never links a package's own bins into itself).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { delimiter, join, relative } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SKIP_DIRS = new Set(["node_modules", ".git", "dist", ".tmp", "test-results"]);

/** Every Markdown file of the repository. */
function markdownFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && !SKIP_DIRS.has(entry.name)) out.push(...markdownFiles(join(dir, entry.name)));
    else if (entry.isFile() && entry.name.endsWith(".md")) out.push(join(dir, entry.name));
  }
  return out;
}

/** A command found in a doc: its file:line and text. */
interface DocCommand {
  where: string;
  text: string;
}

/** Lines of fenced code blocks, and inline code spans, of `file`. */
function docCommands(file: string): DocCommand[] {
  const out: DocCommand[] = [];
  let inFence = false;
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((line, i) => {
      const where = `${relative(ROOT, file)}:${i + 1}`;
      if (/^\s*```/.test(line)) {
        inFence = !inFence;
        return;
      }
      if (inFence) out.push({ where, text: line.trim() });
      else for (const m of line.matchAll(/`([^`]+)`/g)) out.push({ where, text: m[1]! });
    });
  return out;
}

/** A command that the system Node (or npx) runs instead of the pinned Node 24. */
const SYSTEM_NODE =
  /^(?:\$\s*)?(?:node\s+(?:--test\b|\S+\.ts\b)|npx\s+sfu-(?:agent|server)\b)|[;&|]\s*node\s+\S+\.ts\b/;

const SCRIPTS = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> })
  .scripts;

describe("commands in the docs run on any system Node", () => {
  const commands = markdownFiles().flatMap(docCommands);

  it("finds the docs' commands", () => {
    assert.ok(markdownFiles().length >= 5);
    assert.ok(commands.some((c) => c.text.startsWith("npm run agent -- validate")));
  });

  it("no doc runs `node agent/cli.ts`-style commands, `node --test` or `npx sfu-agent`", () => {
    const bad = commands.filter((c) => SYSTEM_NODE.test(c.text)).map((c) => `${c.where}: ${c.text}`);
    assert.deepEqual(bad, []);
  });

  it("every `npm run NAME` in the docs names a package.json script", () => {
    const bad: string[] = [];
    for (const c of commands) {
      for (const m of c.text.matchAll(/\bnpm run(?:\s+-s)?\s+([a-z][\w:.-]*)/g)) {
        if (!(m[1]! in SCRIPTS)) bad.push(`${c.where}: ${m[1]}`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it("a CLI whose output is redirected or piped runs with `npm run -s` (npm's banner goes to stdout)", () => {
    const bad = commands
      .filter((c) => {
        // Options in [brackets] are a synopsis (`[--agent URL | --config FILE]`), not a pipe.
        const command = c.text.split("#")[0]!.replace(/\[[^\]]*\]/g, "");
        return /^npm run (?:agent|sfu)\b/.test(command) && /\s(?:>|\|)\s/.test(command);
      })
      .map((c) => `${c.where}: ${c.text}`);
    assert.deepEqual(bad, []);
  });

  it("the hint `npm start` prints uses the npm script", () => {
    const main = readFileSync(join(ROOT, "scripts", "local", "main.ts"), "utf8");
    assert.match(main, /Fleet status any time: npm run agent -- status /);
    assert.doesNotMatch(main, /node agent\/cli\.ts/);
    assert.equal(SCRIPTS.agent, "node agent/cli.ts");
    assert.equal(SCRIPTS.sfu, "node sfu/cli.ts");
  });
});

describe("a README command through the system npm", () => {
  it("`npm run -s agent -- validate k8s/base/config.yaml` works without the pinned Node on PATH", () => {
    // The PATH of a fresh shell: whatever npm put first (node_modules/.bin) removed.
    const path = (process.env.PATH ?? "")
      .split(delimiter)
      .filter((p) => !p.includes("node_modules"))
      .join(delimiter);
    const r = spawnSync("npm", ["run", "-s", "agent", "--", "validate", "k8s/base/config.yaml"], {
      cwd: ROOT,
      env: { ...process.env, PATH: path },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.error, undefined, "the system npm runs");
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^k8s\/base\/config\.yaml: ok sha256:[0-9a-f]{64}\n$/);
  });
});
