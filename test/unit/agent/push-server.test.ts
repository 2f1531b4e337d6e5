import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { PushServer } from "../../../agent/sidecar/push-server.ts";

test("options are checked at construction", () => {
  const deps = { logger: pino({ level: "silent" }) };
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 70000 }), /port/);
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 0, helloTimeoutMs: 0 }), /helloTimeoutMs/);
  assert.throws(() => new PushServer(deps, { host: "127.0.0.1", port: 0, token: "" }), /token/);
});
