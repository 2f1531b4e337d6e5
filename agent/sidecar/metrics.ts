/**
 * Prometheus metrics of the agent (prom-client), all prefixed `sfu_agent_` (docs/reference/metrics.md):
 * the status gauges follow the {@link StatusTracker} ({@link AgentMetrics.follow}), the delivery
 * counters the core's events ({@link AgentMetrics.onDelivery}); transport plumbing is counted where it happens.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { StatusTracker, TrackerEvent } from "./status-tracker.ts";
import type { DeliveryEvent, PushOutcome, PushTransport, SecretRotationOutcome } from "./transport.ts";

/** Kinds of file-system activity counted by `sfu_agent_watch_events_total`. */
export type WatchEventKind = "swap" | "file" | "resync";

/** Every {@link PushOutcome}, for zero-initialising the counter. */
export const PUSH_OUTCOMES: readonly PushOutcome[] = [
  "ack",
  "nack",
  "timeout",
  "http_error",
  "unreachable",
  "unsupported_schema",
];

/** Every {@link SecretRotationOutcome}, for zero-initialising the counter. */
export const SECRET_ROTATION_OUTCOMES: readonly SecretRotationOutcome[] = ["ack", "nack", "timeout", "unsupported"];

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
  readonly lastLoadSuccess: Gauge;
  readonly lastLoadSuccessTime: Gauge;
  readonly converged: Gauge;
  readonly versionsRefused: Counter;
  readonly secretRotations: Counter<"outcome">;
  readonly healthJoins: Gauge;
  readonly healthJoinFailures: Gauge;
  readonly healthIceConnected: Gauge;
  readonly healthIceFailures: Gauge;
  readonly healthSince: Gauge;
  readonly healthFramesDropped: Counter<"reason">;

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
    this.lastLoadSuccess = new Gauge({
      name: "sfu_agent_config_last_load_success",
      help: "1 when the last read of the mounted config file was valid, 0 while it is invalid (or before the first read).",
      registers,
    });
    this.lastLoadSuccessTime = new Gauge({
      name: "sfu_agent_config_last_load_success_timestamp_seconds",
      help: "Unix time the current valid config file content was loaded (the last successful load; 0 before).",
      registers,
    });
    this.converged = new Gauge({
      name: "sfu_agent_config_converged",
      help: "1 while the SFU runs the desired config (applied hash = desired hash), else 0.",
      registers,
    });
    this.versionsRefused = new Counter({
      name: "sfu_agent_versions_refused_total",
      help: "SFU-reported applied versions refused as out of range (hello.applied or HTTP GET); the hello is closed with 4000.",
      registers,
    });
    this.secretRotations = new Counter({
      name: "sfu_agent_secret_rotations_total",
      help: "Secret file changes (or a new connection) told to the SFU by secrets-reload, by outcome: ack, nack, timeout; unsupported = the files changed but the SFU does not support secrets-reload.",
      labelNames: ["outcome"],
      registers,
    });
    for (const o of SECRET_ROTATION_OUTCOMES) this.secretRotations.inc({ outcome: o }, 0);
    const healthGauge = (name: string, help: string) => new Gauge({ name, help, registers });
    this.healthJoins = healthGauge(
      "sfu_agent_sfu_joins",
      "SFU call health (latest report): joins handled since the SFU applied its current config hash.",
    );
    this.healthJoinFailures = healthGauge(
      "sfu_agent_sfu_join_failures",
      "SFU call health (latest report): joins refused or failed since the current config hash was applied.",
    );
    this.healthIceConnected = healthGauge(
      "sfu_agent_sfu_ice_connected",
      "SFU call health (latest report): peer connections connected since the current config hash was applied.",
    );
    this.healthIceFailures = healthGauge(
      "sfu_agent_sfu_ice_failures",
      "SFU call health (latest report): peer connections that failed ICE (or did not connect within 10 s) since the current config hash was applied.",
    );
    this.healthSince = healthGauge(
      "sfu_agent_sfu_health_since_timestamp_seconds",
      "Unix time the SFU applied the config hash its latest call-health report counts from.",
    );
    this.healthFramesDropped = new Counter({
      name: "sfu_agent_health_reports_dropped_total",
      help: "SFU health reports not stored, by reason: UNKNOWN_HASH (a hash the SFU does not run), CONTRADICTORY_COUNTERS, ABSURD_COUNTER.",
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

  /** Zero-initialises the push outcome series of `transport` so dashboards see them before the first push. */
  initPushOutcomes(transport: PushTransport): void {
    for (const outcome of PUSH_OUTCOMES) {
      const httpOnly = outcome === "http_error" || outcome === "unreachable";
      if (transport === "http" ? outcome !== "unsupported_schema" : !httpOnly) {
        this.pushOutcomes.inc({ transport, outcome }, 0);
      }
    }
  }

  /** Follows `tracker`: counters count its events, gauges are set from its state after each one. Returns the unsubscribe function. */
  follow(tracker: StatusTracker): () => void {
    this.#sync(tracker);
    return tracker.subscribe((e) => {
      this.#count(e);
      this.#sync(tracker);
    });
  }

  /** Counts one event of the delivery core (pushes, outcomes, latency, secret rotations, refused versions, call health). */
  onDelivery(e: DeliveryEvent): void {
    switch (e.type) {
      case "sent":
        this.pushes.inc();
        break;
      case "outcome":
        this.pushOutcomes.inc({ transport: e.transport, outcome: e.outcome });
        if (e.seconds !== null) this.pushLatency.observe(e.seconds);
        break;
      case "version-refused":
        this.versionsRefused.inc();
        break;
      case "secret-rotation":
        this.secretRotations.inc({ outcome: e.outcome });
        break;
      case "health":
        this.healthJoins.set(e.counters.joins);
        this.healthJoinFailures.set(e.counters.joinFailures);
        this.healthIceConnected.set(e.counters.iceConnected);
        this.healthIceFailures.set(e.counters.iceFailures);
        this.healthSince.set(Date.parse(e.counters.since) / 1000 || 0);
        break;
      case "health-dropped":
        this.healthFramesDropped.inc({ reason: e.reason });
        break;
    }
  }

  #count(e: TrackerEvent): void {
    switch (e.type) {
      case "invalid":
        this.reloads.inc({ outcome: "invalid" });
        this.invalidConfigs.inc();
        break;
      case "applied":
        this.reloads.inc({ outcome: "applied" });
        break;
      case "rejected":
        this.reloads.inc({ outcome: "rejected" });
        break;
      case "ack-timeout":
        this.reloads.inc({ outcome: "timeout" });
        break;
    }
  }

  #sync(t: StatusTracker): void {
    const seconds = (iso: string | null) => (iso === null ? 0 : Date.parse(iso) / 1000 || 0);
    this.desiredVersion.set(t.desired()?.version ?? 0);
    this.appliedVersion.set(t.applied()?.version ?? 0);
    this.sfuConnected.set(t.connected() ? 1 : 0);
    this.converged.set(t.converged() ? 1 : 0);
    const load = t.lastLoad();
    this.lastLoadSuccess.set(load.success === true ? 1 : 0);
    this.lastLoadSuccessTime.set(seconds(load.successAt));
    this.lastSuccess.set(seconds(t.lastAppliedAt()));
  }
}
