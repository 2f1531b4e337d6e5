/** The JSON Schema files published under protocol/schemas/, by file name. */
import { configSchemaV1 } from "./config-schema.ts";
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

export const publishedSchemas: Record<string, object> = {
  "config.v1.schema.json": configSchemaV1,
  "hello.schema.json": helloSchema,
  "config-message.schema.json": configMessageSchema,
  "ack.schema.json": ackSchema,
  "nack.schema.json": nackSchema,
  "reload-event.schema.json": reloadEventSchema,
  "status-event.schema.json": statusEventSchema,
  "rollout.v1.schema.json": rolloutPolicySchemaV1,
  "rollout-state.schema.json": rolloutStateSchema,
  "health.schema.json": healthMessageSchema,
  "health-event.schema.json": healthEventSchema,
};
