/**
 * There is no Docker engine on the build machines, so this test replays each
 * Dockerfile's steps in a temporary directory and proves the image would
 * start: the build stage's COPY and RUN (tsc) on only the files it copies,
 * the deps stage's production-only `npm ci` (from the local npm cache), the
 * runtime stage's COPY instructions, then the exec-form ENTRYPOINT with
 * `--help` (and, for the agent, `validate`, `schema` and SIGTERM handling).
 *
 * Deviations, all outside what the image contains: the build stage's full
 * `npm ci` is replaced by a link to the repository's own install (same
 * lockfile); `npm cache clean` is skipped (it would empty this machine's
 * cache); USER is not switched; `node` is the repository's Node 24.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import {
  IMAGES,
  lastInstruction,
  nodeEntrypoint,
  readDockerfile,
  type Stage,
  stageEnv,
} from "../../../scripts/lib/dockerfile.ts";
import { freePort } from "../../../scripts/local/processes.ts";
import { REPO_ROOT } from "../../unit/k8s/manifests.ts";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
};
/**
 * The devDependencies no production dependency needs: the lockfile marks a
 * package `dev` only when nothing outside the dev tree requires it (e.g.
 * @types/node stays in the image because @kubernetes/client-node depends on it).
 */
const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
  packages: Record<string, { dev?: boolean }>;
};
const devOnly = Object.keys(pkg.devDependencies).filter((d) => lock.packages[`node_modules/${d}`]?.dev === true);

let root: string;
/** Stage results shared by both images: key -> directory standing for the stage's WORKDIR. */
const stageCache = new Map<string, Promise<string>>();

/** Maps an absolute path inside stage `dir` (whose WORKDIR is `workdir`) to the host. */
function inStage(dir: string, workdir: string, path: string): string {
  return join(dir, posix.relative(workdir, posix.resolve(workdir, path)));
}

/**
 * COPY semantics: a directory source copies its contents into the
 * destination; a file source lands at the destination, or inside it when the
 * destination ends with "/" (or names a directory).
 */
async function copyInto(src: string, destText: string, dest: string): Promise<void> {
  const isDir = (await stat(src)).isDirectory();
  const target = !isDir && (destText.endsWith("/") || destText === ".") ? join(dest, basename(src)) : dest;
  await cp(src, target, { recursive: true });
}

/** Runs a shell-form RUN of a stage, command by command (`&&`), with the deviations documented above. */
async function replayRun(text: string, cwd: string, isBuildStage: boolean): Promise<void> {
  for (const command of text.split("&&").map((c) => c.trim())) {
    const argv = command.split(/\s+/);
    if (argv[0] === "npm" && argv[1] === "cache") continue;
    if (argv[0] === "npm" && argv[1] === "ci" && isBuildStage) {
      await symlink(join(REPO_ROOT, "node_modules"), join(cwd, "node_modules"), "dir");
      continue;
    }
    if (argv[0] === "npm" && argv[1] === "ci") {
      await run("npm", [...argv.slice(1), "--prefer-offline", "--loglevel=error"], { cwd, timeout: 120_000 });
      continue;
    }
    if (argv[0] === "node") {
      try {
        await run(process.execPath, argv.slice(1), { cwd, timeout: 120_000 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        assert.fail(`RUN ${command} failed:\n${e.stdout}${e.stderr}`);
      }
      continue;
    }
    assert.fail(`no replay for RUN ${command}`);
  }
}

/** Replays a non-final stage (COPY from the context, RUN) and returns the directory of its WORKDIR. */
function replayStage(stage: Stage): Promise<string> {
  const key = JSON.stringify([stage.from, stage.instructions.map((i) => [i.keyword, i.flags, i.text])]);
  let done = stageCache.get(key);
  if (!done) {
    done = (async () => {
      const dir = await mkdtemp(join(root, `stage-${stage.name}-`));
      const workdir = lastInstruction(stage, "WORKDIR")?.text ?? "/";
      const isBuild = stage.instructions.some((i) => i.keyword === "RUN" && /tsc|npm run build/.test(i.text));
      for (const i of stage.instructions) {
        if (i.keyword === "WORKDIR" || i.keyword === "ENV" || i.keyword === "ARG") continue;
        if (i.keyword === "COPY" && !i.flags.from) {
          const dest = i.args.at(-1) as string;
          for (const src of i.args.slice(0, -1))
            await copyInto(join(REPO_ROOT, src), dest, inStage(dir, workdir, dest));
        } else if (i.keyword === "RUN") await replayRun(i.text, dir, isBuild);
        else assert.fail(`${stage.name}: no replay for ${i.keyword}`);
      }
      return dir;
    })();
    stageCache.set(key, done);
  }
  return done;
}

/** Replays a whole Dockerfile; returns the image's files and how to start its entrypoint. */
async function replayImage(
  file: string,
): Promise<{ app: string; entrypoint: string[]; cmd: string[]; env: NodeJS.ProcessEnv }> {
  const stages = await readDockerfile(join(REPO_ROOT, file));
  const final = stages.at(-1) as Stage;
  const workdir = lastInstruction(final, "WORKDIR")?.text ?? "/";
  const image = await mkdtemp(join(root, "image-"));
  const app = join(image, workdir);
  await mkdir(app, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: process.env["PATH"], HOME: image, ...stageEnv(final) };
  for (const i of final.instructions) {
    if (i.keyword === "COPY") {
      const destText = i.args.at(-1) as string;
      const dest = inStage(image, "/", posix.resolve(workdir, destText));
      for (const src of i.args.slice(0, -1)) {
        if (i.flags.from) {
          const stage = stages.find((s) => s.name === i.flags.from) as Stage;
          const stageDir = await replayStage(stage);
          const from = inStage(stageDir, lastInstruction(stage, "WORKDIR")?.text ?? "/", src);
          if (src.endsWith("node_modules")) await symlink(from, dest, "dir");
          else await cp(from, dest, { recursive: true });
        } else await copyInto(join(REPO_ROOT, src), destText, dest);
      }
    } else if (!["ENV", "WORKDIR", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL"].includes(i.keyword)) {
      assert.fail(`runtime stage: no replay for ${i.keyword}`);
    }
  }
  const { nodeFlags, script, args } = nodeEntrypoint(final);
  const entrypoint = [process.execPath, ...nodeFlags, inStage(image, "/", script), ...args];
  return { app, entrypoint, cmd: lastInstruction(final, "CMD")?.exec ?? [], env };
}

/** Files under `dir` (not following symlinks), relative. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await listFiles(join(dir, e.name), `${prefix}${e.name}/`)));
    else out.push(`${prefix}${e.name}`);
  }
  return out;
}

/** Retries `fn` until it resolves or `ms` passed. */
async function poll<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Starts the image's entrypoint with `args`. `terminate()` sends SIGTERM and
 * asserts the process exited by itself with code 0 (it handles the signal),
 * SIGKILLing it after 20 s as a safety net.
 */
async function startImage(image: Awaited<ReturnType<typeof replayImage>>, args: string[]) {
  const [cmd, ...entry] = image.entrypoint as [string, ...string[]];
  const child = spawn(cmd, [...entry, ...args], { cwd: image.app, env: image.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const firstOutput = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    /** Resolves once the process printed something (or exited). */
    untilOutput: async () => {
      await Promise.race([firstOutput, exited]);
      await new Promise((r) => setTimeout(r, 500));
    },
    terminate: async () => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      try {
        child.kill("SIGTERM");
        const { code, signal } = await exited;
        assert.equal(signal, null, `exited by itself on SIGTERM, not killed by it\n${output}`);
        assert.equal(code, 0, output);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "sfu-docker-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

for (const file of Object.values(IMAGES)) {
  describe(`${file} replayed`, { timeout: 180_000 }, () => {
    let image: Awaited<ReturnType<typeof replayImage>>;
    before(async () => {
      image = await replayImage(file);
    });

    it("starts: the exec-form ENTRYPOINT with --help exits 0", async () => {
      const [cmd, ...args] = image.entrypoint as [string, ...string[]];
      const { stdout } = await run(cmd, [...args, "--help"], { cwd: image.app, env: image.env, timeout: 30_000 });
      assert.match(stdout, /Usage/i);
    });

    it("accepts its default CMD (checked with --help)", async () => {
      const [cmd, ...args] = image.entrypoint as [string, ...string[]];
      await run(cmd, [...args, ...image.cmd, "--help"], { cwd: image.app, env: image.env, timeout: 30_000 });
    });

    it("contains built code, production dependencies and runtime data only", async () => {
      const files = await listFiles(image.app);
      assert.ok(files.includes("package.json"));
      assert.ok(files.some((f) => f.startsWith("dist/")));
      const sources = files.filter((f) => /\.(ts|tsx|mts|cts)$/.test(f) && !f.endsWith(".d.ts"));
      assert.deepEqual(sources, [], "no TypeScript sources");
      assert.ok(!files.some((f) => /^(test|k8s|scripts|bench|\.git)\//.test(f)), "no tests, manifests or scripts");
      assert.ok(devOnly.includes("typescript"), "the lockfile marks dev-only packages");
      for (const dev of devOnly) {
        assert.ok(!existsSync(join(image.app, "node_modules", dev)), `no devDependency ${dev}`);
      }
      assert.ok(existsSync(join(image.app, "node_modules", "ws")), "production dependencies present");
    });

    if (file === "Dockerfile.sfu") {
      it("serves the demo page and health from the image's files, and stops on SIGTERM", async () => {
        const port = await freePort();
        const child = await startImage(image, [
          `--config=${join(REPO_ROOT, "k8s", "base", "config.yaml")}`,
          `--port=${port}`,
          "--host=127.0.0.1",
        ]);
        try {
          const base = `http://127.0.0.1:${port}`;
          const page = await poll(() => fetch(`${base}/`), 20_000);
          assert.equal(page.status, 200);
          assert.match(await page.text(), /<html/i);
          assert.equal((await fetch(`${base}/healthz`)).status, 200);
        } finally {
          await child.terminate();
        }
      });
    }

    if (file === "Dockerfile.agent") {
      it("validates the example config and prints the schema from the image's files", async () => {
        const [cmd, ...args] = image.entrypoint as [string, ...string[]];
        const opts = { cwd: image.app, env: image.env, timeout: 30_000 };
        await run(cmd, [...args, "validate", join(REPO_ROOT, "k8s", "base", "config.yaml")], opts);
        const { stdout } = await run(cmd, [...args, "schema"], opts);
        assert.equal(JSON.parse(stdout).type, "object");
      });

      it("handles SIGTERM itself (exec form: Node is PID 1 and gets the signal)", async () => {
        const configDir = join(root, "agent-config");
        await mkdir(configDir, { recursive: true });
        await writeFile(join(configDir, "config.yaml"), readFileSync(join(REPO_ROOT, "k8s", "base", "config.yaml")));
        const child = await startImage(image, [
          "run",
          `--config-dir=${configDir}`,
          "--listen=127.0.0.1:0",
          "--http=127.0.0.1:0",
        ]);
        await child.untilOutput();
        await child.terminate();
      });
    }
  });
}
