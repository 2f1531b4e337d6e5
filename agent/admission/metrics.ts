/**
 * The instruments of `sfu-agent admission` (served on its `/metrics`):
 * reviews by result, review latency, certificate reloads and the served
 * certificate's expiry. Never a config value or a credential in a label.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";

/** Result label of `sfu_agent_admission_reviews_total`. */
export type ReviewMetricResult = "allowed" | "denied" | "skipped" | "error";

/** The webhook's metric instruments, registered on one Registry. */
export class AdmissionMetrics {
  /** Reviews answered, by result: allowed (validated), denied, skipped (not ours: allowed unseen), error (no verdict). */
  readonly reviews: Counter<"result">;
  /** Seconds from the request's first byte to the reply, by result. */
  readonly duration: Histogram<"result">;
  /** Serving certificate loads after start, by result (ok, failed: the previous one stays in use). */
  readonly certReloads: Counter<"result">;
  /** Unix time (s) the served certificate expires. */
  readonly certExpiry: Gauge;

  constructor(registry: Registry, options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "sfu_agent_admission_" });
    this.reviews = new Counter({
      name: "sfu_agent_admission_reviews_total",
      help: "AdmissionReviews answered, by result (allowed, denied, skipped: not a config ConfigMap, error: no verdict)",
      labelNames: ["result"],
      registers: [registry],
    });
    for (const result of ["allowed", "denied", "skipped", "error"]) this.reviews.inc({ result }, 0);
    this.duration = new Histogram({
      name: "sfu_agent_admission_review_duration_seconds",
      help: "Seconds from a review request's first byte to its reply, by result",
      labelNames: ["result"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.certReloads = new Counter({
      name: "sfu_agent_admission_certificate_reloads_total",
      help: "Serving certificate reloads after start, by result (failed: the previous certificate is kept)",
      labelNames: ["result"],
      registers: [registry],
    });
    for (const result of ["ok", "failed"]) this.certReloads.inc({ result }, 0);
    this.certExpiry = new Gauge({
      name: "sfu_agent_admission_certificate_expiry_timestamp_seconds",
      help: "Unix time the served TLS certificate expires",
      registers: [registry],
    });
  }

  /** Counts one answered review and its latency. */
  observe(result: ReviewMetricResult, seconds: number): void {
    this.reviews.inc({ result });
    this.duration.observe({ result }, seconds);
  }
}
