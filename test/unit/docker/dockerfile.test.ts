/**
 * Static checks of Dockerfile.agent and Dockerfile.sfu: multi-stage, Node 24
 * base, production dependencies only in the runtime stage, no dev files,
 * numeric non-root user, exec-form entrypoint that is a package `bin`, and a
 * build context (.dockerignore) that lets every COPY source through.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { describe, it } from "node:test";
import {
  IMAGES,
  lastInstruction,
  nodeEntrypoint,
  parseDockerfile,
  readDockerfile,
  type Stage,
  stageEnv,
} from "../../../scripts/lib/dockerfile.ts";
import { REPO_ROOT } from "../k8s/manifests.ts";

const pkg = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, "utf8")) as {
  bin: Record<string, string>;
  files: string[];
};

/** Patterns of .dockerignore, in order: `{ negate, pattern }`. */
function dockerignore(): { negate: boolean; pattern: string }[] {
  return readFileSync(`${REPO_ROOT}/.dockerignore`, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => (l.startsWith("!") ? { negate: true, pattern: l.slice(1) } : { negate: false, pattern: l }));
}

/** Whether `path` (relative to the context) reaches the build, per the .dockerignore allow-list. */
function inContext(path: string): boolean {
  let included = true;
  for (const { negate, pattern } of dockerignore()) {
    const p = pattern.replace(/\/\*\*$/, "");
    const matches = p === "**" || path === p || path.startsWith(`${p}/`);
    if (matches) included = negate;
  }
  return included;
}

describe("Dockerfile parser", () => {
  it("reads stages, continuations, flags and exec form", () => {
    const stages = parseDockerfile(
      '# c\nFROM node:24-slim AS build\nRUN npm ci \\\n  --omit=dev\nCOPY --from=build /src/dist ./dist\nENTRYPOINT ["node", "x.js"]\nCMD run\n',
    );
    assert.equal(stages.length, 1);
    const [stage] = stages as [Stage];
    assert.equal(stage.name, "build");
    assert.deepEqual(stage.instructions[0]?.args, ["npm", "ci", "--omit=dev"]);
    assert.deepEqual(stage.instructions[1]?.flags, { from: "build" });
    assert.deepEqual(stage.instructions[2]?.exec, ["node", "x.js"]);
    assert.equal(stage.instructions[3]?.exec, null);
  });

  it("reads ENV in both forms, several pairs and quoted values", () => {
    const [stage] = parseDockerfile(
      'FROM node:24-slim\nENV A=1 B="two words" C=\nENV LEGACY some value\nENV A=3\n',
    ) as [Stage];
    assert.deepEqual(stageEnv(stage), { A: "3", B: "two words", C: "", LEGACY: "some value" });
  });

  it("reads a node ENTRYPOINT as node flags, script and arguments, and refuses any other", () => {
    const entry = (text: string) => parseDockerfile(`FROM node:24-slim\nENTRYPOINT ${text}\n`)[0] as Stage;
    assert.deepEqual(nodeEntrypoint(entry('["node", "--memory-saver-mode", "/app/cli.js", "run"]')), {
      nodeFlags: ["--memory-saver-mode"],
      script: "/app/cli.js",
      args: ["run"],
    });
    assert.deepEqual(nodeEntrypoint(entry('["node", "x.js"]')), { nodeFlags: [], script: "x.js", args: [] });
    assert.throws(() => nodeEntrypoint(entry("node x.js")), /not an exec-form node command/);
    assert.throws(() => nodeEntrypoint(entry('["python3", "x.py"]')), /not an exec-form node command/);
    assert.throws(() => nodeEntrypoint(entry('["node", "--inspect"]')), /names no script/);
  });
});

for (const [image, file] of Object.entries(IMAGES)) {
  describe(file, async () => {
    const stages = await readDockerfile(`${REPO_ROOT}/${file}`);
    const final = stages.at(-1) as Stage;
    const byName = (name: string) => stages.find((s) => s.name === name);

    it("is multi-stage on Node 24 (slim or distroless)", () => {
      assert.ok(stages.length >= 2);
      for (const s of stages)
        assert.match(s.from, /^(node:24(\.\d+)*-slim|gcr\.io\/distroless\/nodejs24[\w.-]*)(@sha256:[0-9a-f]{64})?$/);
    });

    it("pins every FROM by digest (or names an earlier stage) and says how to bump it", () => {
      const names = new Set<string>();
      for (const s of stages) {
        if (!names.has(s.from)) assert.match(s.from, /^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$/, `FROM ${s.from}`);
        if (s.name) names.add(s.name);
      }
      const text = readFileSync(`${REPO_ROOT}/${file}`, "utf8");
      assert.match(text, /docker buildx imagetools inspect node:24-slim/);
    });

    it("builds with npm ci and tsc in a build stage", () => {
      const runs = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === "RUN").map((i) => i.text));
      assert.ok(runs.some((r) => /^npm ci\b/.test(r) && !r.includes("--omit=dev")));
      assert.ok(runs.some((r) => /typescript\/bin\/tsc -p tsconfig\.build\.json|npm run build/.test(r)));
    });

    it("takes node_modules from a stage that installs production dependencies only", () => {
      const copy = final.instructions.find(
        (i) => i.keyword === "COPY" && i.args.some((a) => a.endsWith("node_modules")),
      );
      assert.ok(copy?.flags.from, "node_modules comes from another stage");
      const deps = byName(copy.flags.from) as Stage;
      const install = deps.instructions.find((i) => i.keyword === "RUN" && /npm ci/.test(i.text));
      assert.match(install?.text ?? "", /npm ci --omit=dev/);
      assert.match(install?.text ?? "", /npm cache clean --force/);
    });

    it("copies only built code, production dependencies and runtime data into the runtime stage", () => {
      assert.equal(
        final.instructions.filter((i) => i.keyword === "RUN").length,
        0,
        "nothing is installed or built in the runtime stage",
      );
      for (const i of final.instructions.filter((x) => x.keyword === "COPY" || x.keyword === "ADD")) {
        assert.equal(i.keyword, "COPY");
        const sources = i.args.slice(0, -1);
        if (i.flags.from) {
          for (const s of sources) assert.match(s, /\/(node_modules|dist)$/, `${file}:${i.line}`);
          continue;
        }
        for (const s of sources) {
          const allowed = s === "package.json" || pkg.files.includes(s);
          assert.ok(allowed, `${file}:${i.line}: ${s} is package.json or in package.json "files"`);
        }
      }
    });

    it("runs as a numeric non-root user", () => {
      const user = lastInstruction(final, "USER");
      assert.match(user?.text ?? "", /^[1-9]\d*(:[1-9]\d*)?$/, "numeric so runAsNonRoot can verify it");
    });

    it("starts a package bin with an exec-form ENTRYPOINT", () => {
      assert.ok(lastInstruction(final, "ENTRYPOINT")?.exec, "exec form: Node is PID 1 and receives SIGTERM");
      const { script } = nodeEntrypoint(final);
      const workdir = lastInstruction(final, "WORKDIR")?.text ?? "/";
      const rel = posix.relative(workdir, script);
      const bin = Object.entries(pkg.bin).find(([, path]) => path === rel);
      assert.ok(bin, `${rel} is a package bin`);
      assert.equal(bin[0], image === "sfu-config/agent" ? "sfu-agent" : "sfu-server");
      const cmd = lastInstruction(final, "CMD");
      assert.ok(cmd === undefined || cmd.exec !== null, "CMD in exec form too");
    });

    it("copies sources that exist and that .dockerignore lets into the context", () => {
      for (const s of stages) {
        for (const i of s.instructions.filter((x) => x.keyword === "COPY" && !x.flags.from)) {
          for (const src of i.args.slice(0, -1)) {
            assert.ok(existsSync(`${REPO_ROOT}/${src}`), `${file}:${i.line}: ${src} exists`);
            assert.ok(inContext(src), `${file}:${i.line}: ${src} is not excluded by .dockerignore`);
          }
        }
      }
      assert.ok(!inContext("node_modules") && !inContext("test") && !inContext(".git") && !inContext("dist"));
    });
  });
}

describe("base images", () => {
  it("both Dockerfiles build on the same node:24-slim digest", async () => {
    const pins = new Set<string>();
    for (const file of Object.values(IMAGES)) {
      for (const s of await readDockerfile(`${REPO_ROOT}/${file}`)) if (s.from.startsWith("node:")) pins.add(s.from);
    }
    assert.equal(pins.size, 1, [...pins].join(", "));
    assert.match([...pins][0]!, /^node:24-slim@sha256:[0-9a-f]{64}$/);
  });

  it("the pin check fails on an unpinned FROM", () => {
    const [stage] = parseDockerfile("FROM node:24-slim\n");
    assert.doesNotMatch(stage!.from, /@sha256:[0-9a-f]{64}$/);
  });
});
