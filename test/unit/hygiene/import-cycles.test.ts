/**
 * No import cycles among the project's modules: the `sfu-agent` dispatcher
 * (agent/cli.ts) loads its subcommands, and the subcommands take what they
 * share (CommandIo) from agent/shared/command-io.ts, never from the
 * dispatcher. Static `import ... from "./x.ts"` and `export ... from` edges
 * between relative .ts files are followed; `import type` counts too (a type
 * cycle still ties the modules together for readers and refactors).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const DIRS = ["agent", "sfu", "protocol", "scripts"];

/** Every .ts file under the given directories. */
function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith(".ts")) out.push(join(dir, e.name));
    }
  };
  for (const d of DIRS) walk(join(ROOT, d));
  return out;
}

/** Relative imports of `file`, resolved to absolute paths. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+\.ts)"/gm))
    out.push(resolve(dirname(file), m[1]!));
  return out;
}

/** One cycle in the graph, as a list of paths relative to the repository, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, "open");
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === "open") return [...stack.slice(stack.indexOf(m)), m].map((p) => relative(ROOT, p));
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, "done");
    return null;
  };
  for (const n of graph.keys()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

describe("module imports", () => {
  const graph = new Map(sources().map((f) => [f, imports(f)]));

  it("the subcommands never import the dispatcher", () => {
    const cli = join(ROOT, "agent", "cli.ts");
    const offenders = [...graph].filter(([f, deps]) => f.includes("/agent/commands/") && deps.includes(cli));
    assert.deepEqual(
      offenders.map(([f]) => relative(ROOT, f)),
      [],
    );
    assert.ok(
      graph.get(join(ROOT, "agent", "commands", "run.ts"))?.includes(join(ROOT, "agent", "shared", "command-io.ts")),
    );
  });

  it("has no cycle in agent/, sfu/, protocol/, scripts/", () => {
    assert.equal(findCycle(graph)?.join(" -> ") ?? null, null);
  });

  it("the cycle finder finds a cycle when there is one", () => {
    assert.deepEqual(
      findCycle(
        new Map([
          ["/r/a.ts", ["/r/b.ts"]],
          ["/r/b.ts", ["/r/a.ts"]],
        ]),
      )?.length,
      3,
    );
  });
});
