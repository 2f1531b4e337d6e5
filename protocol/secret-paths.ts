/**
 * Secret files (a TURN server's `credentialFile` and `authSecretFile`) may
 * only be read from one secrets directory (default {@link DEFAULT_SECRETS_DIR},
 * flag `--secrets-dir` of both binaries). A config names a file; without this
 * rule any readable file (`/etc/passwd`, a service-account token) could be
 * named, read and handed to browsers as a TURN credential.
 *
 * Two checks, shared by the agent (`validate`, `run`) and the SFU:
 * - {@link checkSecretPathShape}: the path as written, without touching the
 *   disk: no `..` segment, and it resolves (against the working directory
 *   when relative) to a file strictly under the directory;
 * - {@link resolveSecretFile}: the file as it is on disk: every symlink
 *   resolved (`realpath`), the target must still lie under the directory's
 *   own real path. The kubelet's projected volumes are symlinks *inside* the
 *   directory (`turn -> ..data/turn`, `..data -> ..2026_…`), so they pass; a
 *   symlink pointing out of it does not.
 * {@link readSecretFile} adds the read itself: a regular file, at most
 * {@link MAX_SECRET_BYTES}. Messages name the path, never the content.
 *
 * The check and the read are one step: the resolved path is opened with
 * `O_NOFOLLOW`, and the *opened descriptor* is checked, not the path again:
 * on Linux its own path (`/proc/self/fd/N`, what the kernel opened) must lie
 * under the directory's real path. A swapper renaming a directory or file
 * inside the secrets directory for a symlink out between the check and the
 * open thus gets a refusal (`SYMLINK_ESCAPES`), never a read of the file
 * outside. Without procfs (not Linux; Node has no `openat`) the path is
 * resolved once more after the open and its file identity (dev, ino) must be
 * the descriptor's: this narrows the window but cannot close it against a
 * swapper that swaps back in between (the race test reads the outside file
 * a few times in a thousand there), so production runs on Linux.
 *
 * Expected failures are returned values; nothing here throws for bad input.
 */
import { constants as fsConstants } from "node:fs";
import { open, readlink, realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";

/** Default secrets directory of both binaries. */
export const DEFAULT_SECRETS_DIR = "/etc/sfu/secrets";

/** Largest secret file read, in bytes (a TURN secret is tens of bytes; the bound keeps a wrong file from filling memory). */
export const MAX_SECRET_BYTES = 64 * 1024;

/** A secret file named by a config: its JSON pointer and path as written. */
export interface SecretFileRef {
  /** e.g. `/webrtc/turnServers/0/authSecretFile`. */
  pointer: string;
  /** The path as written in the config. */
  path: string;
  /** Which field names it. */
  kind: "credentialFile" | "authSecretFile";
}

/** Why a secret file was refused or could not be read. */
export type SecretFileErrorCode =
  /** The path as written is not under the directory (or has a `..` segment). */
  | "OUTSIDE_SECRETS_DIR"
  /** A symlink on the way leads out of the directory. */
  | "SYMLINK_ESCAPES"
  | "NOT_FOUND"
  | "NOT_READABLE"
  | "NOT_A_FILE"
  | "TOO_LARGE"
  /** Nothing but whitespace in it: no credential, no secret to mint from. */
  | "EMPTY"
  | "READ_FAILED";

/** A failed secret-file check: a code and a message naming the path (never its content). */
export interface SecretFileError {
  ok: false;
  code: SecretFileErrorCode;
  message: string;
}

/**
 * Checks the path as written, without touching the disk. Returns null when it
 * names a file strictly under `secretsDir`, else the reason.
 */
export function checkSecretPathShape(path: string, secretsDir: string = DEFAULT_SECRETS_DIR): string | null {
  if (path.split(/[/\\]/).includes("..")) {
    return `${path}: has a ".." segment; name the file by a plain path under the secrets directory ${secretsDir}`;
  }
  const dir = resolve(secretsDir);
  const rel = relative(dir, resolve(path));
  if (rel === "") return `${path}: is the secrets directory itself; name a file under it`;
  if (rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    return `${path}: is outside the secrets directory ${secretsDir}; secret files must live under it (--secrets-dir)`;
  }
  return null;
}

/**
 * Resolves `path` on disk: the shape check, then every symlink resolved; the
 * real path must lie under the real path of `secretsDir`. Returns the real
 * path to open, or why not.
 */
export async function resolveSecretFile(
  path: string,
  secretsDir: string = DEFAULT_SECRETS_DIR,
): Promise<{ ok: true; realPath: string } | SecretFileError> {
  const shape = checkSecretPathShape(path, secretsDir);
  if (shape !== null) return { ok: false, code: "OUTSIDE_SECRETS_DIR", message: shape };
  // When the directory is itself a symlink into a kubelet `..data` (a Secret
  // projected into another volume), a swap between the two realpath calls
  // puts them in different timestamped directories: resolve once more.
  const first = await resolveOnce(path, secretsDir);
  return !first.ok && first.code === "SYMLINK_ESCAPES" ? resolveOnce(path, secretsDir) : first;
}

async function resolveOnce(
  path: string,
  secretsDir: string,
): Promise<{ ok: true; realPath: string } | SecretFileError> {
  let realDir: string;
  try {
    realDir = await realpath(resolve(secretsDir));
  } catch (err) {
    return fsError(path, err, `the secrets directory ${secretsDir}`);
  }
  let real: string;
  try {
    real = await realpath(resolve(path));
  } catch (err) {
    return fsError(path, err, "secret file");
  }
  if (!isUnder(realDir, real)) return escapes(path, secretsDir);
  return { ok: true, realPath: real };
}

function escapes(path: string, secretsDir: string): SecretFileError {
  return {
    ok: false,
    code: "SYMLINK_ESCAPES",
    message: `${path}: is a symlink leading outside the secrets directory ${secretsDir}; secret files must live under it`,
  };
}

/**
 * Checks that `path` is a readable regular file under `secretsDir` (what
 * `sfu-agent validate` and the agent's loader check) without keeping its
 * content. Returns null when it is, else the reason.
 */
export async function checkSecretFile(
  path: string,
  secretsDir: string = DEFAULT_SECRETS_DIR,
): Promise<SecretFileError | null> {
  const r = await readSecretFile(path, secretsDir);
  if (!r.ok) return r;
  const empty = emptySecret(path, r.value);
  r.value.fill(0);
  return empty;
}

/**
 * The refusal of a secret file's content that is empty or only whitespace
 * (the SFU trims both a credential and an auth secret; nothing would be
 * left), else null. The one rule `validate`, the agent's loader and the SFU
 * share.
 */
export function emptySecret(path: string, value: Buffer): SecretFileError | null {
  // The SFU's own rule: the UTF-8 text, trimmed.
  if (value.toString("utf8").trim() !== "") return null;
  return { ok: false, code: "EMPTY", message: `${path}: secret file is empty (or only whitespace)` };
}

/**
 * Reads a secret file under `secretsDir` (symlinks resolved and checked, a
 * regular file, at most {@link MAX_SECRET_BYTES}). The caller owns the
 * returned bytes; never log them.
 */
export async function readSecretFile(
  path: string,
  secretsDir: string = DEFAULT_SECRETS_DIR,
  options: SecretReadOptions = {},
): Promise<{ ok: true; value: Buffer } | SecretFileError> {
  // A kubelet swap of `..data` (or of a directory holding the secrets dir)
  // between the resolve and the open makes the descriptor check fail once
  // for a legitimate file: try once more before refusing.
  const procfs = options.procfs ?? true;
  const first = await readOnce(path, secretsDir, procfs);
  return !first.ok && first.code === "SYMLINK_ESCAPES" ? readOnce(path, secretsDir, procfs) : first;
}

/** Options of {@link readSecretFile}. */
export interface SecretReadOptions {
  /**
   * Check the opened descriptor through `/proc/self/fd` (default true; where
   * there is no procfs the identity check is used either way). False forces
   * the identity check, for tests of the non-Linux path.
   */
  procfs?: boolean;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** True when the file `handle` has open lies under `realDir` (see the module header). */
async function openedInside(handle: FileHandle, realPath: string, realDir: string, procfs: boolean): Promise<boolean> {
  let opened: string | null = null;
  try {
    opened = procfs ? await readlink(`/proc/self/fd/${handle.fd}`) : null;
  } catch {
    opened = null; // no procfs (not Linux): fall back to the identity check
  }
  if (opened !== null) return isUnder(realDir, opened);
  try {
    const again = await realpath(realPath);
    if (!isUnder(realDir, again)) return false;
    const [a, b] = await Promise.all([handle.stat(), stat(again)]);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

function isUnder(realDir: string, real: string): boolean {
  const rel = relative(realDir, real);
  return !(rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel));
}

async function readOnce(
  path: string,
  secretsDir: string,
  procfs: boolean,
): Promise<{ ok: true; value: Buffer } | SecretFileError> {
  const resolved = await resolveSecretFile(path, secretsDir);
  if (!resolved.ok) return resolved;
  let realDir: string;
  try {
    realDir = await realpath(resolve(secretsDir));
  } catch (err) {
    return fsError(path, err, `the secrets directory ${secretsDir}`);
  }
  let handle: FileHandle | undefined;
  try {
    // O_NONBLOCK: a FIFO must not block the open; the stat below refuses it.
    // O_NOFOLLOW: the resolved path ends in no symlink; one swapped in since is refused (ELOOP).
    try {
      handle = await open(resolved.realPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOOP") return escapes(path, secretsDir);
      throw err;
    }
    if (!(await openedInside(handle, resolved.realPath, realDir, procfs))) return escapes(path, secretsDir);
    return await readOpened(handle, path);
  } catch (err) {
    return fsError(path, err, "secret file");
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Reads an opened secret file: a regular file of at most {@link MAX_SECRET_BYTES}. Throws only what the fs throws. */
async function readOpened(handle: FileHandle, path: string): Promise<{ ok: true; value: Buffer } | SecretFileError> {
  const stat = await handle.stat();
  if (stat.isDirectory()) return { ok: false, code: "NOT_A_FILE", message: `${path}: is a directory` };
  if (!stat.isFile()) return { ok: false, code: "NOT_A_FILE", message: `${path}: secret file is not a regular file` };
  if (stat.size > MAX_SECRET_BYTES) {
    return {
      ok: false,
      code: "TOO_LARGE",
      message: `${path}: secret file is ${stat.size} bytes; the limit is ${MAX_SECRET_BYTES}`,
    };
  }
  const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
  let length = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
    length += bytesRead;
    if (bytesRead === 0 || length === buf.length) break;
  }
  if (length > MAX_SECRET_BYTES) {
    buf.fill(0);
    return { ok: false, code: "TOO_LARGE", message: `${path}: secret file exceeds ${MAX_SECRET_BYTES} bytes` };
  }
  const value = Buffer.from(buf.subarray(0, length));
  buf.fill(0);
  return { ok: true, value };
}

/**
 * Reads a shared token file (`--token-file` of both binaries): named by the
 * operator on the command line, so not confined to the secrets directory,
 * but read with the same bounds as a secret file (a regular file, at most
 * {@link MAX_SECRET_BYTES}, a FIFO never blocks) and trimmed; empty or only
 * whitespace is `EMPTY`. Never log the value.
 */
export async function readTokenFile(path: string): Promise<{ ok: true; value: string } | SecretFileError> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const r = await readOpened(handle, path);
    if (!r.ok) return r;
    const empty = emptySecret(path, r.value);
    const value = r.value.toString("utf8").trim();
    r.value.fill(0);
    return empty ?? { ok: true, value };
  } catch (err) {
    return fsError(path, err, "token file");
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * The secret files a config names (every TURN server's `credentialFile` and
 * `authSecretFile`), in order. Defensive: `config` may be any value.
 */
export function secretFileRefs(config: unknown): SecretFileRef[] {
  const out: SecretFileRef[] = [];
  const webrtc = isRecord(config) && isRecord(config["webrtc"]) ? config["webrtc"] : null;
  const servers = webrtc !== null && Array.isArray(webrtc["turnServers"]) ? (webrtc["turnServers"] as unknown[]) : [];
  for (let i = 0; i < servers.length; i++) {
    const s = servers[i];
    if (!isRecord(s)) continue;
    for (const kind of ["credentialFile", "authSecretFile"] as const) {
      const path = s[kind];
      if (typeof path === "string" && path !== "") {
        out.push({ pointer: `/webrtc/turnServers/${i}/${kind}`, path, kind });
      }
    }
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fsError(path: string, err: unknown, what: string): SecretFileError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return { ok: false, code: "NOT_FOUND", message: `${path}: ${what} does not exist` };
  }
  if (code === "EACCES" || code === "EPERM") {
    return { ok: false, code: "NOT_READABLE", message: `${path}: ${what} is not readable` };
  }
  if (code === "ELOOP") {
    return { ok: false, code: "READ_FAILED", message: `${path}: too many levels of symbolic links` };
  }
  if (code === "EISDIR") return { ok: false, code: "NOT_A_FILE", message: `${path}: is a directory` };
  return { ok: false, code: "READ_FAILED", message: `${path}: ${what} cannot be read (${code ?? "error"})` };
}
