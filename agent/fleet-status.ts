/**
 * Reads agents' `/status` documents (the /status contract in agent/README.md) and renders the
 * fleet table shown by `sfu-agent status` and by the local stack.
 */

/** The agent `/status` document (the fields this table reads). */
export interface AgentStatusDoc {
  pod: string;
  desired: { version: number; hash: string; revision: string | null } | null;
  applied: { version: number; hash: string; at: string } | null;
  lastError: { code: string; message: string; at: string } | null;
  sfu: { connected: boolean; name?: string | null; version?: string | null };
  queue: { mode: "per-pod" | "given" | "none"; url: string | null };
  settlements: Array<{ revision: string | null; hash: string; outcome: string; at: string }>;
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
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { target, ok: false, error: `HTTP ${res.status}` };
    const body = (await res.json()) as AgentStatusDoc;
    if (typeof body !== "object" || body === null || typeof body.pod !== "string") {
      return { target, ok: false, error: "not an sfu-agent /status document" };
    }
    return { target, ok: true, status: body };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; errors?: Array<{ code?: string }> } };
    const code = e.cause?.code ?? e.cause?.errors?.[0]?.code ?? (e.cause as Error | undefined)?.message;
    const reason = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (code ?? e.message);
    return { target, ok: false, error: reason };
  }
}

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

/** Renders the fleet as a fixed-width text table (one line per target). */
export function renderFleetTable(rows: readonly FleetRow[]): string {
  const header = ["POD", "SFU", "DESIRED", "APPLIED", "HASH", "REVISION", "LAST OUTCOME", "LAST ERROR"];
  const lines = rows.map((r) => {
    if (!r.ok) return [r.target, "?", "-", "-", "-", "-", "unreachable", r.error];
    const s = r.status;
    const last = s.settlements.at(-1);
    const inSync = s.applied !== null && s.applied.hash === s.desired?.hash;
    return [
      s.pod,
      s.sfu.connected ? "up" : "down",
      s.desired ? `v${s.desired.version}` : "-",
      s.applied ? `v${s.applied.version}${inSync ? "" : " (behind)"}` : "-",
      shortHash(s.applied?.hash ?? s.desired?.hash),
      s.desired?.revision ?? "-",
      last ? last.outcome : inSync ? "applied" : "-",
      s.lastError ? `${s.lastError.code}: ${s.lastError.message}`.slice(0, 80) : "-",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const fmt = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [fmt(header), ...lines.map(fmt)].join("\n");
}
