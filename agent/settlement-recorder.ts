/**
 * Records a settlement in the store for every config the file watch made
 * desired, when no queue trigger does it (watch-only mode, `queue.mode`
 * "none"): each desired version settles exactly once as applied, rejected,
 * timeout or superseded (a newer version became desired first); an invalid
 * file settles as invalid. With a queue trigger, the queue module records
 * settlements of the reload events instead.
 */
import type { SnapshotStore } from "./snapshot-store.ts";

/** Subscribes to `store` and records settlements; returns the unsubscribe function. */
export function recordWatchSettlements(store: SnapshotStore, clock: () => Date): () => void {
  let open: { version: number; hash: string; revision: string | null } | null = null;
  const settle = (
    outcome: "applied" | "rejected" | "timeout" | "superseded",
    error: { code: string; message: string } | null,
  ) => {
    if (open === null) return;
    store.recordSettlement({
      revision: store.revisionOf(open.hash),
      hash: open.hash,
      version: open.version,
      outcome,
      error,
      at: clock().toISOString(),
    });
    open = null;
  };
  return store.subscribe((e) => {
    switch (e.type) {
      case "desired":
        settle("superseded", null);
        open = { version: e.version, hash: e.hash, revision: e.revision };
        break;
      case "applied":
        if (open?.hash === e.hash) settle("applied", null);
        break;
      case "rejected":
        if (open?.hash === e.hash) settle("rejected", { code: e.error.code, message: e.error.message });
        break;
      case "ack-timeout":
        if (open?.hash === e.hash) {
          settle("timeout", { code: "ACK_TIMEOUT", message: `the SFU did not answer version ${e.version} in time` });
        }
        break;
      case "invalid":
        if (e.hash !== null) {
          store.recordSettlement({
            revision: null,
            hash: e.hash,
            version: null,
            outcome: "invalid",
            error: { code: e.error.code, message: e.error.message },
            at: e.error.at,
          });
        }
        break;
    }
  });
}
