/**
 * The agent's `/status` document (DESIGN.md section 6, contract). Built from
 * the store only, so it can never contain a config, and so never a
 * credential: just versions, hashes, revisions, outcomes and error texts.
 */
import type { HttpPushStatus } from "./http-pusher.ts";
import type { ErrorInfo, Settlement, SnapshotStore } from "./snapshot-store.ts";

/** `/status` JSON. Fields may be added, never renamed. */
export interface AgentStatus {
  pod: string;
  desired: { version: number; hash: string; revision: string | null } | null;
  applied: { version: number; hash: string; at: string } | null;
  lastError: ErrorInfo | null;
  /** WebSocket mode: the connected SFU (from its hello). HTTP push mode: `mode: "http"`, the URL, the last push and retry. */
  sfu: { connected: boolean; name: string | null; version: string | null } | HttpPushStatus;
  queue: { mode: "per-pod" | "given" | "none"; url: string | null };
  settlements: Settlement[];
  /** Extension: where the config is read from. */
  source: { path: string; valid: boolean };
}

/** Builds the `/status` document. */
export function buildStatus(input: {
  store: SnapshotStore;
  pod: string;
  path: string;
  queue: { mode: "per-pod" | "given"; url: string | null } | null;
  /** Replaces the store's SFU info (HTTP push mode). */
  sfu?: HttpPushStatus;
}): AgentStatus {
  const { store } = input;
  const d = store.desired();
  const a = store.applied();
  return {
    pod: input.pod,
    desired: d === null ? null : { version: d.version, hash: d.hash, revision: d.revision },
    applied: a === null ? null : { version: a.version, hash: a.hash, at: a.at },
    lastError: store.lastError(),
    sfu: input.sfu ?? store.sfu(),
    queue: input.queue ?? { mode: "none", url: null },
    settlements: store.settlements(),
    source: { path: input.path, valid: store.fileHash() !== null },
  };
}
