/** The JSON Schema files published under protocol/schemas/, by file name. */
import { configSchemaV1 } from "./config-schema.ts";
import { configSchemaV2 } from "./config-schema-v2.ts";
import {
  ackSchema,
  configMessageSchema,
  healthEventSchema,
  healthMessageSchema,
  helloSchema,
  nackSchema,
  reloadEventSchema,
  statusEventSchema,
} from "./messages-schema.ts";
import { rolloutPolicySchemaV1, rolloutStateSchema } from "./rollout-schema.ts";
import { secretsReloadSchema } from "./secrets-reload.ts";

export const publishedSchemas: Record<string, object> = {
  "config.v1.schema.json": configSchemaV1,
  "config.v2.schema.json": configSchemaV2,
  "hello.schema.json": helloSchema,
  "config-message.schema.json": configMessageSchema,
  "ack.schema.json": ackSchema,
  "nack.schema.json": nackSchema,
  "reload-event.schema.json": reloadEventSchema,
  "status-event.schema.json": statusEventSchema,
  "secrets-reload.schema.json": secretsReloadSchema,
  "rollout.v1.schema.json": rolloutPolicySchemaV1,
  "rollout-state.schema.json": rolloutStateSchema,
  "health.schema.json": healthMessageSchema,
  "health-event.schema.json": healthEventSchema,
};
