/**
 * A non-Node SFU takes part in call health: the Python reference client
 * (protocol/examples/python) dialing the real agent sees the agent's
 * `sfu-config-features: health` header and reports health frames, which the
 * agent shows in `/status health` for the config it applied.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configText, hashOf, startTestAgent, until } from "../agent/harness.ts";
import { spawnPythonSfu } from "./harness.ts";

describe("call health from the Python reference SFU", { timeout: 60_000 }, () => {
  it("the agent shows the Python SFU's health report for the applied hash", async () => {
    const a = await startTestAgent({ initial: configText(7) });
    const sfu = spawnPythonSfu(a.agent.pushUrl);
    try {
      const hash = await hashOf(configText(7));
      const status = await until(
        async () => {
          const st = await a.status();
          return st.applied?.hash === hash && st.health?.hash === hash ? st : null;
        },
        20_000,
        "the agent's /status health for the applied hash",
      );
      assert.equal(status.sfu.name, "example-python-sfu");
      assert.deepEqual(
        { ...status.health, since: undefined, receivedAt: undefined },
        {
          hash,
          since: undefined,
          joins: 0,
          joinFailures: 0,
          iceConnected: 0,
          iceFailures: 0,
          receivedAt: undefined,
        },
      );
      assert.ok(!Number.isNaN(Date.parse(status.health.since)));
    } finally {
      await sfu.stop();
      await a.dispose();
    }
  });
});
