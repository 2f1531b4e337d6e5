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

/** Push transport label of `sfu_agent_push_outcomes_total`. */
export type PushTransport = "websocket" | "http";

/**
 * Outcome label of `sfu_agent_push_outcomes_total`: `ack`, `nack`, `timeout`
 * (both transports); `http_error` (an HTTP status other than 2xx/409/422) and
 * `unreachable` (connection refused, reset, DNS) over HTTP only.
 */
export type PushOutcome = "ack" | "nack" | "timeout" | "http_error" | "unreachable";

/** Every {@link PushOutcome}, for zero-initialising the counter. */
export const PUSH_OUTCOMES: readonly PushOutcome[] = ["ack", "nack", "timeout", "http_error", "unreachable"];

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
  readonly pushOutcomes: Counter<"transport" | "outcome">;
  readonly pushRetries: Counter;
  readonly appliedChecks: Counter<"result">;

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
    this.pushes = new Counter({
      name: "sfu_agent_pushes_total",
      help: "Configs sent to the SFU: WebSocket frames, or HTTP POSTs (retries included).",
      registers,
    });
    this.pushLatency = new Histogram({
      name: "sfu_agent_push_latency_seconds",
      help: "Time from sending a config to the SFU's ack or nack.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.sfuConnected = new Gauge({
      name: "sfu_agent_sfu_connected",
      help: "1 while an SFU is connected (after its hello; HTTP mode: the last request was answered), else 0.",
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
    this.pushOutcomes = new Counter({
      name: "sfu_agent_push_outcomes_total",
      help: "Answers to single pushes by transport (websocket, http) and outcome (ack, nack, timeout, http_error, unreachable).",
      labelNames: ["transport", "outcome"],
      registers,
    });
    this.pushRetries = new Counter({
      name: "sfu_agent_push_retries_total",
      help: "HTTP push mode: retries scheduled after a failed request (backoff), GET of the applied state included.",
      registers,
    });
    this.appliedChecks = new Counter({
      name: "sfu_agent_applied_checks_total",
      help: "HTTP push mode: GET of the SFU's applied state, by result (ok, unsupported, failed).",
      labelNames: ["result"],
      registers,
    });
    for (const o of ["applied", "rejected", "invalid", "timeout"]) this.reloads.inc({ outcome: o }, 0);
    for (const k of ["swap", "file", "resync"]) this.watchEvents.inc({ kind: k }, 0);
    if (options.defaultMetrics) {
      // A coarse event-loop monitor keeps idle CPU near zero (the default samples every 10 ms).
      collectDefaultMetrics({ register: registry, prefix: "sfu_agent_", eventLoopMonitoringPrecision: 100 });
    }
  }

  /** Zero-initialises the push outcome series of `transport` so dashboards see them before the first push. */
  initPushOutcomes(transport: PushTransport): void {
    for (const outcome of PUSH_OUTCOMES) {
      if (transport === "http" || (outcome !== "http_error" && outcome !== "unreachable")) {
        this.pushOutcomes.inc({ transport, outcome }, 0);
      }
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
