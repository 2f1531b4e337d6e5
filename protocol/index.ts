/**
 * protocol/: the language-neutral contract between the agent and any SFU.
 * Imports nothing from agent/ or sfu/.
 */
export * from "./backoff.ts";
export * from "./bounded-json.ts";
export * from "./close-codes.ts";
export * from "./cohort.ts";
export * from "./config-loader.ts";
export * from "./config-schema.ts";
export * from "./config-schema-v2.ts";
export * from "./hash.ts";
export * from "./health-checks.ts";
export * from "./messages.ts";
export * from "./messages-schema.ts";
export * from "./request-target.ts";
export * from "./rollout-policy.ts";
export * from "./rollout-schema.ts";
export * from "./secret-paths.ts";
export * from "./secrets-reload.ts";
export * from "./websocket-guard.ts";
