/**
 * The agent's `/status` document (a contract: fields may be added, never renamed), built from the
 * {@link StatusTracker} and the transport's link detail, neither of which holds a config, and so
 * never a credential (docs/operating.md, "HTTP endpoints and `/status`").
 */
import type { HttpPushStatus } from "./http-push-wire.ts";
import type { RolloutStatus } from "./rollout/agent-rollout.ts";
import type { ErrorInfo, Settlement } from "./snapshot-store.ts";
import type { HealthReport, PreviousError, SecretsStatus, SfuLinkStatus, StatusTracker } from "./status-tracker.ts";

/** `/status` JSON. Fields may be added, never renamed. */
export interface AgentStatus {
  pod: string;
  desired: { version: number; hash: string; revision: string | null } | null;
  applied: { version: number; hash: string; at: string } | null;
  /** The newest error not yet cleared by a success (the desired config applied with the file valid); null when none. */
  lastError: ErrorInfo | null;
  /** Extension: the error last cleared by a success, with its time and the time it was cleared; null when none. */
  previousError: PreviousError | null;
  /** Extension: whether the SFU runs the desired config (applied hash = desired hash). */
  converged: boolean;
  /** WebSocket mode: the connected SFU (from its hello). HTTP push mode: `mode: "http"`, the URL, the last push and retry. */
  sfu: SfuLinkStatus | HttpPushStatus;
  queue: { mode: "per-pod" | "given" | "none"; url: string | null };
  settlements: Settlement[];
  /**
   * Extension: where the config is read from, whether the last read was
   * valid, and when the current valid content was loaded (null before).
   */
  source: { path: string; valid: boolean; lastLoadSuccessAt: string | null };
  /**
   * Extension: Secret rotations of the files the desired config names: the
   * rotation counter, the generation the SFU confirmed reading (null: not
   * confirmed on this connection), when, and the last reload error. No
   * secret, and no digest of one.
   */
  secrets: SecretsStatus;
  /**
   * Extension: this pod's part in a progressive rollout (its stage, cohort
   * rank, the rollout's id, step, candidate hash and state); null when no
   * rollout policy is mounted.
   */
  rollout: RolloutStatus | null;
  /**
   * Extension: the SFU's latest call-health report (counters of the config
   * hash it runs, since it applied it, and when the agent received them);
   * null when the SFU never sent one (an SFU without the optional feature).
   */
  health: HealthReport | null;
}

/** Builds the `/status` document. */
export function buildStatus(input: {
  tracker: StatusTracker;
  /** The transport's detail of the link (HTTP push mode), shown instead of the tracker's; null or omitted: none. */
  link?: HttpPushStatus | null;
  pod: string;
  path: string;
  queue: { mode: "per-pod" | "given"; url: string | null } | null;
  rollout?: RolloutStatus | null;
}): AgentStatus {
  const { tracker } = input;
  const d = tracker.desired();
  const a = tracker.applied();
  const load = tracker.lastLoad();
  return {
    pod: input.pod,
    desired: d === null ? null : { version: d.version, hash: d.hash, revision: d.revision },
    applied: a === null ? null : { version: a.version, hash: a.hash, at: a.at },
    lastError: tracker.lastError(),
    previousError: tracker.previousError(),
    converged: tracker.converged(),
    sfu: input.link ?? tracker.sfu(),
    queue: input.queue ?? { mode: "none", url: null },
    settlements: tracker.settlements(),
    source: { path: input.path, valid: tracker.fileHash() !== null, lastLoadSuccessAt: load.successAt },
    secrets: tracker.secrets(),
    rollout: input.rollout ?? null,
    health: tracker.health(),
  };
}
