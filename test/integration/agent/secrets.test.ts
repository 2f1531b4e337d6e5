/**
 * Credentials never leak: a config with an inline TURN credential and a
 * token file; every log line (trace level), /status and /metrics are
 * searched for the secret strings through a whole session (valid push,
 * wrong-token attempts, an invalid file that also holds the credential, a
 * NACK). The SFU itself does receive the credential: it is its config.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { FakeSfu, FakeSfuRefused } from "../../helpers/fake-sfu.ts";
import { configText, startTestAgent, type TestAgent, until } from "./harness.ts";

const CREDENTIAL = "turn-inline-S3cr3t-9f2b7c";
const TOKEN = "push-token-T0k3n-41d8e";
const WRONG = "push-token-wrong-Zz99";

let a: TestAgent | null = null;
let s: FakeSfu | null = null;
after(async () => {
  await s?.close();
  await a?.dispose();
});

test("no credential or token in logs, /status or /metrics", { timeout: 30_000 }, async () => {
  a = await startTestAgent({ initial: configText(1, { credential: CREDENTIAL }), token: TOKEN, logLevel: "trace" });
  const err = await FakeSfu.connect({ url: a.agent.pushUrl, token: WRONG }).catch((e: unknown) => e);
  assert.ok(err instanceof FakeSfuRefused && err.status === 401);
  s = await FakeSfu.connect({ url: a.agent.pushUrl, token: TOKEN });
  const m = await s.waitForConfig(() => true);
  assert.ok(JSON.stringify(m.config).includes(CREDENTIAL), "the SFU gets its credential");
  // An invalid file that still holds the credential (and names it in a bad place).
  await a.writer.write({
    "config.yaml": configText(2, { credential: CREDENTIAL }).replace(
      "username: user1",
      `username: user1\n      credentialFile: /nonexistent/turn-credential`,
    ),
  });
  await until(async () => (await a!.status()).lastError);
  s.setReply({ kind: "nack", code: "APPLY_FAILED", message: "could not apply" });
  await a.writer.write({ "config.yaml": configText(3, { credential: CREDENTIAL }) });
  await until(async () => (await a!.status()).lastError?.code === "APPLY_FAILED");
  const status = (await a.get("/status")).text;
  const metrics = (await a.get("/metrics")).text;
  assert.ok(a.logs.length > 10, "logs were captured");
  assert.ok(
    a.logs.some((l) => l.includes("inline credential")),
    "the inline credential is warned about",
  );
  for (const secret of [CREDENTIAL, TOKEN, WRONG]) {
    for (const line of a.logs) assert.ok(!line.includes(secret), `log line leaks ${secret}: ${line}`);
    assert.ok(!status.includes(secret), `/status leaks ${secret}`);
    assert.ok(!metrics.includes(secret), `/metrics leaks ${secret}`);
  }
});

test("the logger redacts credential fields even if a config is passed to it", async () => {
  const { createLogger } = await import("../../../agent/shared/logger.ts");
  const lines: string[] = [];
  const log = createLogger({ level: "info", destination: { write: (l: string) => lines.push(l) } });
  log.info(
    {
      config: { webrtc: { turnServers: [{ credential: CREDENTIAL }] } },
      token: TOKEN,
      headers: { authorization: `Bearer ${TOKEN}` },
    },
    "x",
  );
  assert.equal(lines.length, 1);
  assert.ok(!lines[0]!.includes(CREDENTIAL));
  assert.ok(!lines[0]!.includes(TOKEN));
  assert.match(lines[0]!, /\[redacted\]/);
});
