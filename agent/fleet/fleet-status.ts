/**
 * Reads agents' `/status` documents (the /status contract in docs/operating.md) and renders the
 * fleet table shown by `sfu-agent status` and by the local stack. When any agent
 * has a rollout policy mounted, the table gains a STAGE column (canary, held,
 * applied, reverted) and a line per rollout under it (id, candidate hash,
 * state, step, cohort threshold, and why it halted).
 */
import { createAjv } from "../../protocol/ajv.ts";
import { type JsonLimits, parseBoundedJson, readBoundedStream } from "../../protocol/bounded-json.ts";
import { capText, escapeControlChars } from "../../protocol/safe-text.ts";

/** The agent `/status` document (the fields this table reads). */
export interface AgentStatusDoc {
  pod: string;
  desired: { version: number; hash: string; revision: string | null } | null;
  applied: { version: number; hash: string; at: string } | null;
  lastError: { code: string; message: string; at: string } | null;
  sfu: { connected: boolean; name?: string | null; version?: string | null };
  queue: { mode: "per-pod" | "given" | "none"; url: string | null };
  settlements: Array<{
    revision: string | null;
    hash: string;
    outcome: string;
    at: string;
    /** Seconds from the reload event's publication to the file swap (when measured). */
    propagationSeconds?: unknown;
    /** Seconds from the reload event's publication to the SFU's ack (when measured). */
    eventToAppliedSeconds?: unknown;
  }>;
  /** Present (non-null) when a rollout policy is mounted (agents of this version; older ones lack it). */
  rollout?: {
    stage: string;
    id: string | null;
    step: number | null;
    hash: string | null;
    state: string | null;
    rank: number;
    threshold: number | null;
    stable: string | null;
    haltReason?: { step: number; criterion: string; pods: string[]; detail: string } | null;
    stateError?: { code: string; message: string } | null;
  } | null;
}

/** One row of the fleet table: a target and what it answered. */
export type FleetRow =
  | { target: string; ok: true; status: AgentStatusDoc }
  | { target: string; ok: false; error: string };

/** Fetches `<target>/status` with a timeout; failures are returned as rows, never thrown. */
export async function fetchAgentStatus(target: string, timeoutMs = 3000): Promise<FleetRow> {
  const base = target.replace(/\/+$/, "");
  const url = /\/status$/.test(base) ? base : `${base}/status`;
  try {
    const signal = AbortSignal.timeout(timeoutMs);
    const res = await fetch(url, { signal });
    if (!res.ok) return { target, ok: false, error: `HTTP ${res.status}` };
    // The fetch signal bounds the whole exchange; the read bounds the bytes (and the time again).
    const read = await readBoundedStream(res.body, { maxBytes: MAX_STATUS_BYTES, timeoutMs }, "status document");
    if (!read.ok) {
      const error =
        read.code === "TOO_LARGE"
          ? `status document over ${MAX_STATUS_BYTES} bytes`
          : read.code === "TIMEOUT" || signal.aborted
            ? `no answer within ${timeoutMs} ms`
            : read.message;
      return { target, ok: false, error };
    }
    const parsed = parseBoundedJson(read.bytes, STATUS_JSON_LIMITS, "status document");
    if (!parsed.ok) return { target, ok: false, error: parsed.message };
    if (!validateStatusDoc(parsed.value)) {
      // The deepest error names the field; the null branch of a nullable field would only say "must be null".
      const e = (validateStatusDoc.errors ?? [])
        .filter((x) => x.keyword !== "anyOf" && !(x.keyword === "type" && x.params["type"] === "null"))
        .sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
      const where = e ? `: ${e.instancePath || "/"} ${e.message ?? "is invalid"}` : "";
      return { target, ok: false, error: capText(`not an sfu-agent /status document${where}`, 200) };
    }
    return { target, ok: true, status: parsed.value };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; errors?: Array<{ code?: string }> } };
    const code = e.cause?.code ?? e.cause?.errors?.[0]?.code ?? (e.cause as Error | undefined)?.message;
    const reason = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (code ?? e.message);
    return { target, ok: false, error: reason };
  }
}

/** Largest `/status` body read from an agent (a real one is a few KiB; an agent caps its errors). */
export const MAX_STATUS_BYTES = 1024 * 1024;
/** Limits on a `/status` document: MAX_STATUS_BYTES, and the config file's value and key limits (the defaults), 16 levels deep. */
export const STATUS_JSON_LIMITS: Readonly<JsonLimits> = { maxBytes: MAX_STATUS_BYTES, maxDepth: 16 };

const str = { type: "string" } as const;
const nullable = <S extends object>(schema: S) => ({ anyOf: [{ type: "null" }, schema] });
/**
 * The shape of the fields the table reads (every other field is free): a
 * document that passes the byte and JSON limits but not this is refused as a
 * row error instead of being rendered.
 */
const STATUS_DOC_SCHEMA = {
  type: "object",
  required: ["pod", "desired", "applied", "lastError", "sfu", "queue", "settlements"],
  properties: {
    pod: str,
    desired: nullable({
      type: "object",
      required: ["version", "hash", "revision"],
      properties: { version: { type: "integer" }, hash: str, revision: nullable(str) },
    }),
    applied: nullable({
      type: "object",
      required: ["version", "hash"],
      properties: { version: { type: "integer" }, hash: str, at: str },
    }),
    lastError: nullable({ type: "object", required: ["code", "message"], properties: { code: str, message: str } }),
    sfu: { type: "object", required: ["connected"], properties: { connected: { type: "boolean" } } },
    queue: { type: "object" },
    settlements: {
      type: "array",
      items: { type: "object", required: ["hash", "outcome"], properties: { hash: str, outcome: str } },
    },
    rollout: nullable({
      type: "object",
      required: ["stage", "id", "step", "hash", "state", "threshold", "stable"],
      properties: {
        stage: str,
        id: nullable(str),
        step: nullable({ type: "integer" }),
        hash: nullable(str),
        state: nullable(str),
        threshold: nullable({ type: "number" }),
        stable: nullable(str),
        haltReason: nullable({
          type: "object",
          required: ["criterion", "pods", "detail"],
          properties: { criterion: str, pods: { type: "array", items: str }, detail: str },
        }),
        stateError: nullable({ type: "object", required: ["message"], properties: { message: str } }),
      },
    }),
  },
};
const validateStatusDoc = createAjv().compile<AgentStatusDoc>(STATUS_DOC_SCHEMA);

/** Fetches every target concurrently, preserving order. */
export function fetchFleet(targets: readonly string[], timeoutMs?: number): Promise<FleetRow[]> {
  return Promise.all(targets.map((t) => fetchAgentStatus(t, timeoutMs)));
}

/** Shortens `sha256:<hex>` to `sha256:<first 12 hex>` for display. */
export function shortHash(hash: string | null | undefined): string {
  if (!hash) return "-";
  return hash.startsWith("sha256:") ? hash.slice(0, 19) : hash.slice(0, 19);
}

/** True when every reachable agent applied its desired config and all targets answered. */
export function converged(rows: readonly FleetRow[]): boolean {
  return rows.every((r) => r.ok && r.status.desired !== null && r.status.applied?.hash === r.status.desired.hash);
}

/** Longest table cell and rollout line shown: an agent's document is outside input. */
const MAX_CELL_CHARS = 120;
const MAX_ROLLOUT_LINE_CHARS = 400;

/** Renders the fleet as a fixed-width text table (one line per target), then one line per rollout seen. */
export function renderFleetTable(rows: readonly FleetRow[]): string {
  const staged = rows.some((r) => r.ok && r.status.rollout);
  // The propagation column (docs/propagation.md) once some agent measured a reload event.
  const timed = rows.some((r) => r.ok && r.status.settlements.some((x) => propagationOf(x) !== null));
  const header = [
    "POD",
    "SFU",
    ...(staged ? ["STAGE"] : []),
    "DESIRED",
    "APPLIED",
    "HASH",
    "REVISION",
    "LAST OUTCOME",
    ...(timed ? ["PROPAGATION"] : []),
    "LAST ERROR",
  ];
  // Every cell comes from outside (agents' documents): control characters are shown escaped, and capped.
  const lines = rows.map((r) => row(r).map((c) => capText(escapeControlChars(c), MAX_CELL_CHARS)));
  function row(r: FleetRow): string[] {
    if (!r.ok)
      return [
        r.target,
        "?",
        ...(staged ? ["-"] : []),
        "-",
        "-",
        "-",
        "-",
        "unreachable",
        ...(timed ? ["-"] : []),
        r.error,
      ];
    const s = r.status;
    const last = s.settlements.at(-1);
    const inSync = s.applied !== null && s.applied.hash === s.desired?.hash;
    return [
      s.pod,
      s.sfu.connected ? "up" : "down",
      ...(staged ? [s.rollout?.stage ?? "-"] : []),
      s.desired ? `v${s.desired.version}` : "-",
      s.applied ? `v${s.applied.version}${inSync ? "" : " (behind)"}` : "-",
      shortHash(s.applied?.hash ?? s.desired?.hash),
      s.desired?.revision ?? "-",
      last ? last.outcome : inSync ? "applied" : "-",
      ...(timed ? [formatPropagation(last ? propagationOf(last) : null)] : []),
      s.lastError ? `${s.lastError.code}: ${s.lastError.message}`.slice(0, 80) : "-",
    ];
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const fmt = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  const rollouts = rolloutLines(rows).map((l) => capText(escapeControlChars(l), MAX_ROLLOUT_LINE_CHARS));
  return [fmt(header), ...lines.map(fmt), ...rollouts].join("\n");
}

/** A settlement's time from publication to applied (else to the file swap), seconds; null when not measured. */
function propagationOf(s: AgentStatusDoc["settlements"][number]): number | null {
  for (const v of [s.eventToAppliedSeconds, s.propagationSeconds])
    if (typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 86_400) return v;
  return null;
}

function formatPropagation(v: number | null): string {
  return v === null ? "-" : `${v.toFixed(v < 10 ? 2 : 1)}s`;
}

/**
 * One line per rollout the agents report (agents may briefly disagree while
 * they re-read the state: each distinct id/state/step is listed), e.g.
 * `rollout 5b2c… sha256:1a2b3c4d5e6f halted at step 1 (threshold 0.2500): iceFailureRate on sfu-0: 0.5 > 0.1`.
 */
export function rolloutLines(rows: readonly FleetRow[]): string[] {
  const seen = new Map<string, string>();
  for (const r of rows) {
    if (!r.ok || !r.status.rollout) continue;
    const ro = r.status.rollout;
    if (ro.id === null) {
      const line = `rollout: none running; stable ${shortHash(ro.stable)}${ro.stateError ? ` (state unreadable: ${ro.stateError.message})` : ""}`;
      seen.set(line, line);
      continue;
    }
    const where = ro.step === null ? "" : ` at step ${ro.step}`;
    const threshold = ro.threshold === null ? "" : ` (threshold ${ro.threshold.toFixed(4)})`;
    const halt = ro.haltReason
      ? `: ${ro.haltReason.criterion} on ${ro.haltReason.pods.join(", ") || "-"}: ${ro.haltReason.detail}`.slice(0, 200)
      : "";
    const line = `rollout ${ro.id} ${shortHash(ro.hash)} ${ro.state ?? "?"}${where}${threshold}${halt}; stable ${shortHash(ro.stable)}`;
    seen.set(line, line);
  }
  return [...seen.values()];
}
