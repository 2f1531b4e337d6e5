/**
 * Updates a directory exactly as the kubelet's AtomicWriter updates a
 * ConfigMap volume (pkg/volume/util/atomic_writer.go):
 *
 * 1. write every file into a new hidden timestamped directory
 *    `..2026_11_26_21_00_00.123456789`, with its mode (the volume's
 *    `defaultMode` or the item's `mode`; 0644 when neither is given);
 *    nested keys (`secrets/turn-credential`, a projected Secret item's
 *    `path`) get their directories;
 * 2. create the symlink `..data_tmp` -> that directory (relative);
 * 3. rename `..data_tmp` over `..data` (the one atomic step);
 * 4. make sure each user-visible symlink of a key's first path element
 *    (`config.yaml -> ..data/config.yaml`, `secrets -> ..data/secrets`)
 *    exists, and remove the ones no longer in the payload;
 * 5. remove the previous timestamped directory.
 *
 * Keys are checked as the kubelet checks them: relative, no `..` element, no
 * empty element, not starting with `..`, and no key inside another key.
 *
 * The kubelet simulator of the local stack (`npm start`); also used by the
 * agent and SNS/SQS tests and the benchmarks.
 *
 * @example
 * const w = new AtomicWriter(dir);
 * await w.write({ "config.yaml": yamlText });      // first write creates the layout
 * const { renamedAt } = await w.write({ "config.yaml": other }); // a swap
 * // A projected volume: ConfigMap key + Secret item, defaultMode 0440.
 * await w.write({ "config.yaml": yamlText, "secrets/turn-credential": { content: "s3cret" } }, { defaultMode: 0o440 });
 */
import { chmod, mkdir, readdir, readlink, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

/** What one {@link AtomicWriter.write} did. */
export interface AtomicWriteResult {
  /** Name of the new timestamped directory (e.g. `..2026_11_26_21_00_00.123456789`). */
  dataDir: string;
  /** `performance.now()` right after the rename of `..data_tmp` over `..data`. */
  renamedAt: number;
}

/** One file of a payload: its content, and optionally its own mode (a volume item's `mode`). */
export interface FileProjection {
  content: string | Uint8Array;
  mode?: number;
}

/** What a payload maps each key (a relative path) to. */
export type PayloadEntry = string | Uint8Array | FileProjection;

/** Options of {@link AtomicWriter.write}. */
export interface AtomicWriteOptions {
  /** Mode of files without their own (the volume's `defaultMode`); default 0o644, as the kubelet's. */
  defaultMode?: number;
}

/** A payload key the kubelet would refuse; `code` is `BAD_PAYLOAD_PATH`. */
export class BadPayloadPathError extends TypeError {
  readonly code = "BAD_PAYLOAD_PATH";
  constructor(key: string, why: string) {
    super(`AtomicWriter: bad key ${JSON.stringify(key)}: ${why}`);
    this.name = "BadPayloadPathError";
  }
}

/** Throws {@link BadPayloadPathError} for a key the kubelet's AtomicWriter would refuse. */
export function validatePayloadPath(key: string): void {
  if (key === "") throw new BadPayloadPathError(key, "must not be empty");
  if (key.startsWith("/")) throw new BadPayloadPathError(key, "must be a relative path");
  if (key.length > 4096) throw new BadPayloadPathError(key, "longer than 4096 characters");
  const items = key.split("/");
  for (const item of items) {
    if (item === "") throw new BadPayloadPathError(key, "must not contain an empty path element");
    if (item === ".." || item === ".") throw new BadPayloadPathError(key, `must not contain '${item}'`);
    if (item.length > 255) throw new BadPayloadPathError(key, "a path element is longer than 255 characters");
  }
  if (items[0]!.startsWith("..")) throw new BadPayloadPathError(key, "must not start with '..'");
}

function isProjection(v: PayloadEntry): v is FileProjection {
  return typeof v === "object" && !(v instanceof Uint8Array);
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
   * Replaces the whole payload with `files` (relative path -> content, or
   * content and mode) in one atomic swap. Resolves once the old timestamped
   * directory is removed. Throws {@link BadPayloadPathError} before touching
   * anything when a key is one the kubelet would refuse.
   */
  async write(files: Record<string, PayloadEntry>, options: AtomicWriteOptions = {}): Promise<AtomicWriteResult> {
    const keys = Object.keys(files);
    for (const key of keys) validatePayloadPath(key);
    for (const key of keys) {
      const inside = keys.find((other) => other.startsWith(`${key}/`));
      if (inside !== undefined)
        throw new BadPayloadPathError(inside, `${JSON.stringify(key)} is a file, not a directory`);
    }
    const defaultMode = options.defaultMode ?? 0o644;
    await mkdir(this.dir, { recursive: true });
    const oldDataDir = await this.#currentDataDir();
    const dataDir = timestampedName();
    const full = join(this.dir, dataDir);
    await mkdir(full, { mode: 0o755 });
    for (const [key, entry] of Object.entries(files)) {
      const path = join(full, key);
      const content = isProjection(entry) ? entry.content : entry;
      const mode = (isProjection(entry) ? entry.mode : undefined) ?? defaultMode;
      if (key.includes("/")) await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, content, { mode });
      // As the kubelet does: the mode exactly, whatever the umask.
      await chmod(path, mode);
    }
    const tmp = join(this.dir, "..data_tmp");
    await rm(tmp, { force: true });
    await symlink(dataDir, tmp);
    await rename(tmp, join(this.dir, "..data"));
    const renamedAt = performance.now();
    // User-visible names: the first path element of each key.
    const visible = new Set(keys.map((k) => k.split("/")[0]!));
    for (const name of visible) {
      try {
        await symlink(join("..data", name), join(this.dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith("..") || visible.has(entry)) continue;
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
