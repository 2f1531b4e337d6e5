/**
 * A small Dockerfile reader for the tests and the benchmarks (the agent
 * benchmark runs the agent with Dockerfile.agent's ENTRYPOINT flags and ENV):
 * splits a Dockerfile into stages and
 * instructions (line continuations, comments and parser directives handled)
 * and tells exec-form (JSON array) arguments from shell form. Enough for the
 * instructions this project's Dockerfiles use; not a full BuildKit parser.
 */
import { readFile } from "node:fs/promises";

/** One instruction, e.g. `{ keyword: "COPY", flags: { from: "build" }, args: ["dist", "./dist"] }`. */
export interface Instruction {
  keyword: string;
  /** `--name=value` options before the arguments (COPY --from, --chown, ...). */
  flags: Record<string, string>;
  /** The raw text after the keyword (and flags). */
  text: string;
  /** Exec-form JSON array, or null when the instruction is in shell form. */
  exec: string[] | null;
  /** Whitespace-split arguments (shell form) or the exec-form array. */
  args: string[];
  line: number;
}

/** A build stage: its base image, optional name and instructions. */
export interface Stage {
  from: string;
  name: string | null;
  instructions: Instruction[];
}

/** Parses Dockerfile text into stages. Throws on an instruction before the first FROM. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split("\n");
  let buffer = "";
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const trimmed = raw.trim();
    if (buffer === "" && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (buffer !== "" && trimmed.startsWith("#")) continue;
    if (buffer === "") startLine = i + 1;
    if (trimmed.endsWith("\\")) {
      buffer += `${trimmed.slice(0, -1)} `;
      continue;
    }
    buffer += trimmed;
    const instruction = parseInstruction(buffer, startLine);
    buffer = "";
    if (instruction.keyword === "FROM") {
      const [image, as, name] = instruction.args;
      stages.push({
        from: image as string,
        name: as?.toUpperCase() === "AS" ? (name ?? null) : null,
        instructions: [],
      });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`line ${startLine}: ${instruction.keyword} before FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

function parseInstruction(source: string, line: number): Instruction {
  const m = /^(\S+)\s*(.*)$/s.exec(source);
  const keyword = (m?.[1] ?? "").toUpperCase();
  let rest = m?.[2] ?? "";
  const flags: Record<string, string> = {};
  for (let f = /^--([\w-]+)=(\S+)\s+/.exec(rest); f; f = /^--([\w-]+)=(\S+)\s+/.exec(rest)) {
    flags[f[1] as string] = f[2] as string;
    rest = rest.slice(f[0].length);
  }
  let exec: string[] | null = null;
  if (rest.startsWith("[")) {
    try {
      const parsed: unknown = JSON.parse(rest);
      if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string")) exec = parsed;
    } catch {
      exec = null;
    }
  }
  return { keyword, flags, text: rest, exec, args: exec ?? rest.split(/\s+/).filter(Boolean), line };
}

/** Reads and parses a Dockerfile. */
export async function readDockerfile(path: string): Promise<Stage[]> {
  return parseDockerfile(await readFile(path, "utf8"));
}

/** The last instruction of `keyword` in a stage, or undefined. */
export function lastInstruction(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}

/**
 * The environment a stage's ENV instructions set, in order: `ENV K=v K2=v2`
 * (values may be double-quoted) and the legacy `ENV K v`.
 */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions) {
    if (i.keyword !== "ENV") continue;
    if (!/^[\w.-]+=/.test(i.text)) {
      const m = /^(\S+)\s+(.*)$/.exec(i.text);
      if (!m) throw new Error(`line ${i.line}: ENV without a value`);
      env[m[1] as string] = m[2] as string;
      continue;
    }
    for (const pair of i.text.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
      const value = pair[2] as string;
      env[pair[1] as string] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
    }
  }
  return env;
}

/** What an exec-form `ENTRYPOINT ["node", ...flags, script, ...args]` runs. */
export interface NodeEntrypoint {
  /** Node and V8 options before the script (`--memory-saver-mode`). */
  nodeFlags: string[];
  script: string;
  args: string[];
}

/** The stage's last ENTRYPOINT read as a `node` command line; throws unless it is one, in exec form. */
export function nodeEntrypoint(stage: Stage): NodeEntrypoint {
  const entry = lastInstruction(stage, "ENTRYPOINT");
  const [node, ...rest] = entry?.exec ?? [];
  if (node !== "node") throw new Error(`ENTRYPOINT is not an exec-form node command: ${entry?.text ?? "(none)"}`);
  const at = rest.findIndex((a) => !a.startsWith("-"));
  if (at < 0) throw new Error(`ENTRYPOINT names no script: ${entry?.text}`);
  return { nodeFlags: rest.slice(0, at), script: rest[at] as string, args: rest.slice(at + 1) };
}

/** The project's images: image name in the manifests -> Dockerfile. */
export const IMAGES = { "sfu-config/agent": "Dockerfile.agent", "sfu-config/sfu": "Dockerfile.sfu" } as const;
