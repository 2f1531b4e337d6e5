/**
 * Prometheus metrics of the SFU, all prefixed `sfu_`. Values are read from
 * the live objects at scrape time (collect callbacks), so the forwarding path
 * never touches prom-client. No label ever carries a credential.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { CallHealth } from "./call-health.ts";
import type { ConfigState } from "./config-state.ts";
import type { RoomRegistry } from "./room.ts";

/** What the metrics read. */
export interface SfuMetricsSources {
  state: ConfigState;
  rooms: RoomRegistry;
  signallingConnections: () => number;
  /** null in standalone mode. */
  agentConnected: () => boolean | null;
  /** Call-health counters of the applied hash (`sfu_call_*` gauges). */
  health?: CallHealth;
}

/** The SFU's metric registry and the counters other parts increment. */
export interface SfuMetrics {
  registry: Registry;
  /** Config versions handled, by outcome (`ack`/`nack`) and NACK code. */
  configApplies: Counter<"outcome" | "code">;
  /** Signalling handshakes refused, by reason (`origin`: not an allowed Origin). */
  signallingRefused: Counter<"reason">;
  /** Secrets reloads asked by the agent, by outcome (`ack`: re-read, `nack`: a file failed, previous secrets kept). */
  secretsReloads: Counter<"outcome">;
}

/** Creates the registry with every `sfu_` metric. */
export function createSfuMetrics(sources: SfuMetricsSources): SfuMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "sfu_" });
  const { state, rooms } = sources;
  new Gauge({
    name: "sfu_rooms",
    help: "Rooms with at least one participant.",
    registers: [registry],
    collect() {
      this.set(rooms.rooms.size);
    },
  });
  new Gauge({
    name: "sfu_participants",
    help: "Participants over all rooms.",
    registers: [registry],
    collect() {
      this.set(rooms.participantCount);
    },
  });
  new Gauge({
    name: "sfu_signalling_connections",
    help: "Open signalling WebSockets.",
    registers: [registry],
    collect() {
      this.set(sources.signallingConnections());
    },
  });
  const totals = (key: "forwarded" | "duplicates" | "keyframeRequestsSent") =>
    function (this: Counter) {
      this.reset();
      this.inc(rooms.forwardingStats()[key]);
    };
  new Counter({
    name: "sfu_rtp_packets_forwarded_total",
    help: "RTP packet copies handed to subscribers.",
    registers: [registry],
    collect: totals("forwarded"),
  });
  new Counter({
    name: "sfu_rtp_duplicates_dropped_total",
    help: "RTP packets dropped as duplicates (NACK retransmissions of packets already forwarded).",
    registers: [registry],
    collect: totals("duplicates"),
  });
  new Counter({
    name: "sfu_keyframe_requests_sent_total",
    help: "Keyframe requests (PLI) sent to publishers after rate limiting.",
    registers: [registry],
    collect: totals("keyframeRequestsSent"),
  });
  new Gauge({
    name: "sfu_config_version",
    help: "Applied config version (-1 before the first).",
    registers: [registry],
    collect() {
      this.set(state.current?.version ?? -1);
    },
  });
  new Gauge({
    name: "sfu_config_applied_timestamp_seconds",
    help: "When the applied config version was swapped in.",
    registers: [registry],
    collect() {
      const at = state.current?.appliedAt;
      if (at !== undefined) this.set(at / 1000);
    },
  });
  new Gauge({
    name: "sfu_agent_connected",
    help: "1 while the control connection to the agent is open (absent in standalone mode).",
    registers: [registry],
    collect() {
      const c = sources.agentConnected();
      if (c !== null) this.set(c ? 1 : 0);
    },
  });
  const health = sources.health;
  if (health) {
    const fields = [
      ["sfu_call_joins", "joins", "Joins handled (admitted or refused) since the applied config hash was applied."],
      [
        "sfu_call_join_failures",
        "joinFailures",
        "Joins refused or failed before connecting since the applied config hash was applied.",
      ],
      [
        "sfu_call_ice_connected",
        "iceConnected",
        "Peer connections connected since the applied config hash was applied.",
      ],
      [
        "sfu_call_ice_failures",
        "iceFailures",
        "Peer connections that failed ICE (or did not connect within 10 s of the first answer) since the applied config hash was applied.",
      ],
    ] as const;
    for (const [name, key, help] of fields) {
      new Gauge({
        name,
        help: `${help} Restarts at 0 with another hash.`,
        registers: [registry],
        collect() {
          const c = health.snapshot();
          if (c !== null) this.set(c[key]);
        },
      });
    }
  }
  const configApplies = new Counter({
    name: "sfu_config_applies_total",
    help: "Config versions handled, by outcome and NACK code.",
    labelNames: ["outcome", "code"] as const,
    registers: [registry],
  });
  const signallingRefused = new Counter({
    name: "sfu_signalling_refused_total",
    help: "Signalling WebSocket handshakes refused, by reason (origin: the page's Origin is not allowed; target: an absolute-form target naming another host than Host; version: not WebSocket version 13).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const secretsReloads = new Counter({
    name: "sfu_secrets_reloads_total",
    help: "Secret reloads (asked by the agent; standalone: rotations seen in the secrets directory), by outcome (ack: files re-read; nack: a file failed, previous secrets kept).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  return { registry, configApplies, signallingRefused, secretsReloads };
}
