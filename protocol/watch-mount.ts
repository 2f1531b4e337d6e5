/**
 * Watching a directory the kubelet writes (a ConfigMap or Secret volume):
 * chokidar on the directory itself, depth 0, never following symlinks, since
 * the kubelet swaps the `..data` symlink rather than writing files in place.
 * Both `raw` and normalised events are reported (inotify can drop one of
 * them on a rename); callers debounce. Shared by the agent's config source,
 * its secret watch and the SFU's standalone secret watch.
 */
import { basename } from "node:path";
import { type FSWatcher, watch } from "chokidar";

/** What a mount watch reports. */
export interface MountWatchHandlers {
  /** Something in the directory changed; `name` is the entry's base name when the event says. */
  change(name: string | null): void;
  /** The watcher failed (the watch goes on where it can). */
  error(err: unknown): void;
}

/** Starts watching `dir`; resolves once the watcher is ready. Close it with `close()`. */
export async function watchMount(dir: string, on: MountWatchHandlers): Promise<FSWatcher> {
  const watcher = watch(dir, {
    depth: 0,
    followSymlinks: false,
    atomic: false,
    ignoreInitial: true,
    ignorePermissionErrors: true,
  });
  watcher.on("raw", (_event: string, name: string | null) => on.change(name === null ? null : basename(name)));
  watcher.on("all", (_event: string, path: string) => on.change(basename(path)));
  watcher.on("error", (err: unknown) => on.error(err));
  await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
  return watcher;
}
