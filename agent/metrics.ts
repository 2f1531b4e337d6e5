/**
 * Prometheus metrics of the agent (prom-client), all prefixed `sfu_agent_`.
 * Store-derived metrics follow {@link SnapshotStore} events; the push server
 * and the config source report pushes and watch events directly. The queue
 * module registers its own metrics in the same Registry.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { SnapshotStore } from "./snapshot-store.ts";

/** Kinds of file-system activity counted by `sfu_agent_watch_events_total`. */
export type WatchEventKind = "swap" | "file" | "resync";

/** The agent's metric instruments, registered on one Registry. */
export class AgentMetrics {
  readonly desiredVersion: Gauge;
  readonly appliedVersion: Gauge;
  readonly reloads: Counter<"outcome">;
  readonly pushes: Counter;
  readonly pushLatency: Histogram;
  readonly sfuConnected: Gauge;
  readonly lastSuccess: Gauge;
  readonly watchEvents: Counter<"kind">;
  readonly invalidConfigs: Counter;
  readonly connectionsRefused: Counter<"reason">;

  /** Registers every instrument on `registry`; `defaultMetrics` adds prom-client's process metrics (prefixed too). */
  constructor(registry: Registry, options: { defaultMetrics?: boolean } = {}) {
    const registers = [registry];
    this.desiredVersion = new Gauge({
      name: "sfu_agent_desired_version",
      help: "Version of the last valid config read from the file (0 before the first).",
      registers,
    });
    this.appliedVersion = new Gauge({
      name: "sfu_agent_applied_version",
      help: "Version the SFU last acked or reported in its hello (0 when unknown).",
      registers,
    });
    this.reloads = new Counter({
      name: "sfu_agent_reloads_total",
      help: "Config changes by outcome: applied, rejected (NACK), invalid (file), timeout (no ack in time).",
      labelNames: ["outcome"],
      registers,
    });
    this.pushes = new Counter({ name: "sfu_agent_pushes_total", help: "Config frames sent to the SFU.", registers });
    this.pushLatency = new Histogram({
      name: "sfu_agent_push_latency_seconds",
      help: "Time from sending a config to the SFU's ack or nack.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.sfuConnected = new Gauge({
      name: "sfu_agent_sfu_connected",
      help: "1 while an SFU is connected (after its hello), else 0.",
      registers,
    });
    this.lastSuccess = new Gauge({
      name: "sfu_agent_last_success_timestamp_seconds",
      help: "Unix time of the last config the SFU acked (0 before the first).",
      registers,
    });
    this.watchEvents = new Counter({
      name: "sfu_agent_watch_events_total",
      help: "Config re-reads by trigger: swap (kubelet ..data rename), file (plain write), resync (timer).",
      labelNames: ["kind"],
      registers,
    });
    this.invalidConfigs = new Counter({
      name: "sfu_agent_invalid_configs_total",
      help: "Distinct invalid file contents seen (the last valid config stayed in force).",
      registers,
    });
    this.connectionsRefused = new Counter({
      name: "sfu_agent_connections_refused_total",
      help: "WebSocket connections refused, by reason (origin, token, subprotocol, busy).",
      labelNames: ["reason"],
      registers,
    });
    for (const o of ["applied", "rejected", "invalid", "timeout"]) this.reloads.inc({ outcome: o }, 0);
    for (const k of ["swap", "file", "resync"]) this.watchEvents.inc({ kind: k }, 0);
    if (options.defaultMetrics) {
      // A coarse event-loop monitor keeps idle CPU near zero (the default samples every 10 ms).
      collectDefaultMetrics({ register: registry, prefix: "sfu_agent_", eventLoopMonitoringPrecision: 100 });
    }
  }

  /** Follows `store` events; returns the unsubscribe function. */
  follow(store: SnapshotStore): () => void {
    return store.subscribe((e) => {
      switch (e.type) {
        case "desired":
          this.desiredVersion.set(e.version);
          break;
        case "invalid":
          this.reloads.inc({ outcome: "invalid" });
          this.invalidConfigs.inc();
          break;
        case "applied":
          this.reloads.inc({ outcome: "applied" });
          this.appliedVersion.set(e.version);
          this.lastSuccess.set(Date.parse(store.lastSuccessAt() ?? "") / 1000 || 0);
          break;
        case "rejected":
          this.reloads.inc({ outcome: "rejected" });
          break;
        case "ack-timeout":
          this.reloads.inc({ outcome: "timeout" });
          break;
      }
    });
  }

  /** Refreshes the gauges that can change without an event (a renumbered desired version, hello.applied). */
  refresh(store: SnapshotStore): void {
    this.desiredVersion.set(store.desired()?.version ?? 0);
    this.appliedVersion.set(store.applied()?.version ?? 0);
    this.sfuConnected.set(store.sfu().connected ? 1 : 0);
  }
}
