/**
 * Updates a directory exactly as the kubelet's AtomicWriter updates a
 * ConfigMap volume (pkg/volume/util/atomic_writer.go):
 *
 * 1. write every file into a new hidden timestamped directory
 *    `..2026_11_26_21_00_00.123456789`;
 * 2. create the symlink `..data_tmp` -> that directory (relative);
 * 3. rename `..data_tmp` over `..data` (the one atomic step);
 * 4. make sure each user-visible `KEY -> ..data/KEY` symlink exists, and
 *    remove the ones of keys no longer in the payload;
 * 5. remove the previous timestamped directory.
 *
 * The kubelet simulator of the local stack (`npm start`); also used by the
 * agent and SNS/SQS tests and the benchmarks.
 *
 * @example
 * const w = new AtomicWriter(dir);
 * await w.write({ "config.yaml": yamlText });      // first write creates the layout
 * const { renamedAt } = await w.write({ "config.yaml": other }); // a swap
 */
import { mkdir, readdir, readlink, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** What one {@link AtomicWriter.write} did. */
export interface AtomicWriteResult {
  /** Name of the new timestamped directory (e.g. `..2026_11_26_21_00_00.123456789`). */
  dataDir: string;
  /** `performance.now()` right after the rename of `..data_tmp` over `..data`. */
  renamedAt: number;
}

let sequence = 0;

/** Writes payloads into one directory the way the kubelet does. Not safe for concurrent writes to the same directory. */
export class AtomicWriter {
  /** The target directory (the volume mount point). */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Replaces the whole payload with `files` (file name -> content) in one
   * atomic swap. Resolves once the old timestamped directory is removed.
   */
  async write(files: Record<string, string | Uint8Array>): Promise<AtomicWriteResult> {
    for (const name of Object.keys(files)) {
      if (name.includes("/") || name.startsWith(".."))
        throw new TypeError(`AtomicWriter: bad key ${JSON.stringify(name)}`);
    }
    await mkdir(this.dir, { recursive: true });
    const oldDataDir = await this.#currentDataDir();
    const dataDir = timestampedName();
    const full = join(this.dir, dataDir);
    await mkdir(full, { mode: 0o755 });
    for (const [name, content] of Object.entries(files)) await writeFile(join(full, name), content, { mode: 0o644 });
    const tmp = join(this.dir, "..data_tmp");
    await rm(tmp, { force: true });
    await symlink(dataDir, tmp);
    await rename(tmp, join(this.dir, "..data"));
    const renamedAt = performance.now();
    const keys = new Set(Object.keys(files));
    for (const name of keys) {
      try {
        await symlink(join("..data", name), join(this.dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith("..") || keys.has(entry)) continue;
      const target = await readlink(join(this.dir, entry)).catch(() => null);
      if (target?.startsWith("..data/")) await unlink(join(this.dir, entry));
    }
    if (oldDataDir !== null && oldDataDir !== dataDir)
      await rm(join(this.dir, oldDataDir), { recursive: true, force: true });
    return { dataDir, renamedAt };
  }

  async #currentDataDir(): Promise<string | null> {
    try {
      return await readlink(join(this.dir, "..data"));
    } catch {
      return null;
    }
  }
}

/** `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` in UTC, unique within the process. */
function timestampedName(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const nanos = (d.getUTCMilliseconds() * 1_000_000 + (sequence++ % 1_000_000)).toString().padStart(9, "0");
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${nanos}`;
}
