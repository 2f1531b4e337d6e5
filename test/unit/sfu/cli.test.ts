import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_AGENT_URL, parseCliArgs, usage } from "../../../sfu/cli.ts";

describe("sfu-server arguments", () => {
  it("defaults to the agent on 127.0.0.1:7070", () => {
    const a = parseCliArgs([]);
    assert.ok(a.ok && !a.help);
    if (a.ok && !a.help) {
      assert.equal(a.agentUrl, DEFAULT_AGENT_URL);
      assert.equal(a.configFile, null);
      assert.equal(a.port, null);
    }
  });

  it("takes --config (standalone), --port, --token-file", () => {
    const a = parseCliArgs(["--config", "c.yaml", "--port", "0", "--token-file", "/t"]);
    assert.ok(a.ok && !a.help);
    if (a.ok && !a.help) {
      assert.equal(a.agentUrl, null);
      assert.equal(a.configFile, "c.yaml");
      assert.equal(a.port, 0);
      assert.equal(a.tokenFile, "/t");
    }
  });

  it("takes --secrets-dir, else SFU_SECRETS_DIR, else /etc/sfu/secrets", () => {
    const dir = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const a = parseCliArgs(argv, env);
      return a.ok && !a.help ? a.secretsDir : null;
    };
    assert.equal(dir([]), "/etc/sfu/secrets");
    assert.equal(dir([], { SFU_SECRETS_DIR: "/run/s" }), "/run/s");
    assert.equal(dir(["--secrets-dir", "/x"], { SFU_SECRETS_DIR: "/run/s" }), "/x");
    assert.equal(parseCliArgs(["--secrets-dir", ""]).ok, false);
  });

  it("rejects bad usage", () => {
    for (const argv of [
      ["--agent", "ws://x", "--config", "f"],
      ["--port", "70000"],
      ["--port", "x"],
      ["--bogus"],
      ["--log-level", "loud"],
    ]) {
      assert.equal(parseCliArgs(argv).ok, false, argv.join(" "));
    }
  });

  it("documents every flag", () => {
    for (const flag of ["--agent", "--config", "--token-file", "--port", "--secrets-dir", "SFU_SECRETS_DIR", "--help"])
      assert.ok(usage().includes(flag));
    assert.deepEqual(parseCliArgs(["-h"]), { ok: true, help: true });
  });
});
