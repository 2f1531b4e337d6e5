/**
 * Prints the shape of agent/ (`npm run shape`): lines and modules, the
 * folders ("rooms") with their lines, the import depth ("floors": the longest
 * chain of relative imports between agent/ modules, a module importing
 * nothing of agent/ being floor 1) and the largest module. Figures for the
 * reader of a refactor, not a check.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const AGENT = join(ROOT, "agent");

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

const files = modules(AGENT);
const text = new Map(files.map((f) => [f, readFileSync(f, "utf8")]));
const lines = (f: string) => text.get(f)!.split("\n").length - (text.get(f)!.endsWith("\n") ? 1 : 0);

const imports = new Map(
  files.map((f) => [
    f,
    [...text.get(f)!.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+\.ts)"/gm)]
      .map((m) => resolve(dirname(f), m[1]!))
      .filter((t) => text.has(t)),
  ]),
);
const depth = new Map<string, number>();
const floor = (f: string): number => {
  const known = depth.get(f);
  if (known !== undefined) return known;
  depth.set(f, 1); // a cycle (the import-cycles test forbids them) counts once
  const d = 1 + Math.max(0, ...imports.get(f)!.map(floor));
  depth.set(f, d);
  return d;
};
for (const f of files) floor(f);

const rooms = new Map<string, { modules: number; lines: number }>();
for (const f of files) {
  const room = relative(ROOT, dirname(f));
  const r = rooms.get(room) ?? { modules: 0, lines: 0 };
  r.modules += 1;
  r.lines += lines(f);
  rooms.set(room, r);
}
const total = files.reduce((n, f) => n + lines(f), 0);
const largest = [...files].sort((a, b) => lines(b) - lines(a))[0]!;
const deepest = [...files].sort((a, b) => depth.get(b)! - depth.get(a)!)[0]!;

console.log(`agent/: ${total} lines in ${files.length} modules, ${rooms.size} folders`);
for (const [room, r] of [...rooms].sort()) console.log(`  ${room}/: ${r.modules} modules, ${r.lines} lines`);
const chain = [deepest];
for (let f = deepest; depth.get(f)! > 1; ) {
  f = imports.get(f)!.find((t) => depth.get(t) === depth.get(f)! - 1)!;
  chain.push(f);
}
console.log(`import depth (floors): ${depth.get(deepest)} (${chain.map((f) => relative(AGENT, f)).join(" -> ")})`);
console.log(`largest module: ${relative(ROOT, largest)} (${lines(largest)} lines)`);
