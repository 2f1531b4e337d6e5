/**
 * Access control and protocol violations of the push server, over real
 * sockets: Origin refused, token checked, one SFU at a time, and every bad
 * frame closed with its 4xxx code.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import WebSocket from "ws";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { MAX_FRAME_BYTES } from "../../../protocol/messages-schema.ts";
import { FakeSfu, FakeSfuRefused } from "../../helpers/fake-sfu.ts";
import { sleep, trackedStarters } from "./harness.ts";

const { agent, sfu } = trackedStarters();
async function refused(o: Parameters<typeof FakeSfu.connect>[0]): Promise<FakeSfuRefused> {
  const err = await FakeSfu.connect(o).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof FakeSfuRefused, `expected the upgrade to be refused, got ${String(err)}`);
  return err;
}

describe("push server access control", { timeout: 30_000 }, () => {
  test("a connection carrying an Origin header is refused with 403", async () => {
    const a = await agent();
    const err = await refused({ url: a.agent.pushUrl, origin: "http://evil.example" });
    assert.equal(err.status, 403);
    assert.match((await a.get("/metrics")).text, /^sfu_agent_connections_refused_total\{reason="origin"\} 1$/m);
  });

  test("the subprotocol sfu-config.v1 is required", async () => {
    const a = await agent();
    assert.equal((await refused({ url: a.agent.pushUrl, protocols: ["other"] })).status, 426);
  });

  test("token: wrong or missing is refused with 401, right is accepted", async () => {
    const a = await agent({ token: "right-token" });
    assert.equal((await refused({ url: a.agent.pushUrl, token: "wrong-token" })).status, 401);
    assert.equal((await refused({ url: a.agent.pushUrl, token: "right-token-but-longer" })).status, 401);
    assert.equal((await refused({ url: a.agent.pushUrl })).status, 401);
    const s = await sfu({ url: a.agent.pushUrl, token: "right-token" });
    assert.equal((await s.waitForConfig(() => true)).version, 1);
  });

  test("one SFU at a time: a second is closed with 4010 and a clear reason", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl });
    await s.waitForConfig(() => true);
    const second = await sfu({ url: a.agent.pushUrl });
    const { code, reason } = await second.closed;
    assert.equal(code, CloseCode.ALREADY_CONNECTED);
    assert.match(reason, /already connected/);
    assert.equal(s.open, true);
    await s.close();
    const third = await sfu({ url: a.agent.pushUrl });
    await third.waitForConfig(() => true);
  });

  test("a refused second connection sending a bad frame (invalid UTF-8, over maxPayload) does not take the agent down", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl });
    await s.waitForConfig(() => true);
    for (const frame of [Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), Buffer.alloc(5 * MAX_FRAME_BYTES, 0x20)]) {
      const ws = new WebSocket(a.agent.pushUrl, ["sfu-config.v1"], { perMessageDeflate: false });
      ws.on("error", () => {});
      ws.on("open", () => ws.send(frame, { binary: false }));
      const code = await new Promise<number>((r) => ws.on("close", (c) => r(c)));
      assert.ok([CloseCode.ALREADY_CONNECTED, 1007, 1009, 1006].includes(code as 4010), `close code ${code}`);
    }
    await sleep(200);
    assert.equal(s.open, true, "the first SFU stays connected");
  });
});

describe("protocol violations close with 4xxx", { timeout: 30_000 }, () => {
  const cases: [string, (s: FakeSfu) => void, number, boolean][] = [
    ["bad JSON", (s) => s.send("{nope"), CloseCode.BAD_JSON, true],
    ["unknown type", (s) => s.send({ type: "subscribe" }), CloseCode.UNKNOWN_TYPE, true],
    ["invalid hello", (s) => s.send({ type: "hello", protocol: 1 }), CloseCode.INVALID_MESSAGE, false],
    [
      "hello twice",
      (s) =>
        s.send({ type: "hello", protocol: 1, sfu: { name: "x", version: "1" }, schemaVersions: [1], applied: null }),
      CloseCode.HELLO_REQUIRED,
      true,
    ],
    [
      "ack before hello",
      (s) => s.send({ type: "ack", nonce: 1, version: 1, hash: `sha256:${"a".repeat(64)}` }),
      CloseCode.HELLO_REQUIRED,
      false,
    ],
    [
      "a never-issued nonce",
      (s) => s.send({ type: "ack", nonce: 99, version: 1, hash: `sha256:${"a".repeat(64)}` }),
      CloseCode.BAD_NONCE,
      true,
    ],
    [
      "an oversize frame",
      (s) => s.send(JSON.stringify({ type: "ack", pad: "x".repeat(MAX_FRAME_BYTES) })),
      CloseCode.FRAME_TOO_LARGE,
      true,
    ],
  ];
  for (const [name, act, code, hello] of cases) {
    test(`${name} -> ${code}`, async () => {
      const a = await agent();
      const s = await sfu({ url: a.agent.pushUrl, hello, reply: { kind: "stall" } });
      if (hello) await s.waitForConfig(() => true);
      act(s);
      const closed = await s.closed;
      assert.equal(closed.code, code, `reason: ${closed.reason}`);
      assert.ok(closed.reason.length > 0);
    });
  }

  test("no common schema version -> 4007", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl, schemaVersions: [3] });
    assert.equal((await s.closed).code, CloseCode.UNSUPPORTED_PROTOCOL);
  });

  test("no hello in time -> 4006", async () => {
    const a = await agent({ helloTimeoutMs: 200 });
    const s = await sfu({ url: a.agent.pushUrl, hello: false });
    assert.equal((await s.closed).code, CloseCode.HELLO_TIMEOUT);
  });

  test("an ack naming another hash for the current nonce -> 4000", async () => {
    const a = await agent();
    const s = await sfu({ url: a.agent.pushUrl, reply: { kind: "stall" } });
    const m = await s.waitForConfig(() => true);
    s.send({ type: "ack", nonce: m.nonce, version: m.version, hash: `sha256:${"b".repeat(64)}` });
    assert.equal((await s.closed).code, CloseCode.PROTOCOL_ERROR);
  });

  test("binary frames -> 4001; plain HTTP to the push port -> 426", async () => {
    const a = await agent();
    const ws = new WebSocket(a.agent.pushUrl, ["sfu-config.v1"]);
    await new Promise((r) => ws.once("open", r));
    ws.send(Buffer.from([1, 2, 3]));
    const code = await new Promise<number>((r) => ws.once("close", (c) => r(c)));
    assert.equal(code, CloseCode.BAD_JSON);
    const res = await fetch(a.agent.pushUrl.replace("ws:", "http:"));
    assert.equal(res.status, 426);
    await res.text();
    await sleep(10);
  });
});
