/**
 * Frame and event parsing (protocol/messages.ts): each message type valid and
 * invalid, the close code chosen for each kind of bad frame, and SNS envelope
 * vs raw reload events.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "../../../protocol/close-codes.ts";
import { configHash } from "../../../protocol/hash.ts";
import {
  closeReason,
  type FrameResult,
  parseAgentFrame,
  parseReloadEvent,
  parseSfuFrame,
  parseStatusEvent,
} from "../../../protocol/messages.ts";
import { MAX_FRAME_BYTES } from "../../../protocol/messages-schema.ts";

const H = configHash({ x: 1 });
const H2 = configHash({ x: 2 });
const hello = {
  type: "hello",
  protocol: 1,
  sfu: { name: "sfu-server", version: "0.1.0" },
  schemaVersions: [1],
  applied: null,
};
const config = { type: "config", nonce: 1, version: 1, hash: H, revision: null, schemaVersion: 1, config: { x: 1 } };
const ack = { type: "ack", nonce: 1, version: 1, hash: H };
const nack = {
  type: "nack",
  nonce: 1,
  version: 2,
  hash: H2,
  applied: { version: 1, hash: H },
  error: { code: "RESTART_REQUIRED", message: "port", path: "/server/port" },
};

const sfu = (v: unknown) => parseSfuFrame(JSON.stringify(v));
const agent = (v: unknown) => parseAgentFrame(JSON.stringify(v));
function closesWith(result: FrameResult<unknown>, code: number, reason?: RegExp): void {
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.closeCode, code, result.reason);
  assert.ok(Buffer.byteLength(result.reason, "utf8") <= 123, "close reasons fit a close frame");
  if (reason) assert.match(result.reason, reason);
}

describe("SFU -> agent frames", () => {
  it("accepts valid hello, ack and nack (string or Buffer), ignoring unknown fields", () => {
    for (const m of [hello, { ...hello, applied: { version: 0, hash: H } }, ack, nack, { ...ack, extra: true }]) {
      const r = sfu(m);
      assert.ok(r.ok, !r.ok ? r.reason : "");
      assert.deepEqual(r.message, m);
    }
    assert.ok(parseSfuFrame(Buffer.from(JSON.stringify(ack))).ok);
  });

  it("accepts unknown NACK codes and a nack without path", () => {
    assert.ok(sfu({ ...nack, error: { code: "OUT_OF_MEMORY", message: "x" } }).ok);
    assert.ok(sfu({ ...nack, applied: null }).ok);
  });

  it("rejects invalid hellos with 4003", () => {
    const bad: unknown[] = [
      { ...hello, protocol: 2 },
      { ...hello, schemaVersions: [] },
      { ...hello, schemaVersions: ["1"] },
      { ...hello, sfu: { name: "", version: "1" } },
      { ...hello, sfu: { name: "x" } },
      { ...hello, applied: { version: 1 } },
      { ...hello, applied: { version: -1, hash: H } },
      { ...hello, applied: { version: 1, hash: "sha256:ABC" } },
      { type: "hello" },
    ];
    for (const m of bad) closesWith(sfu(m), CloseCode.INVALID_MESSAGE, /^invalid hello: /);
  });

  it("rejects invalid acks and nacks with 4003", () => {
    const bad: unknown[] = [
      { ...ack, nonce: 0 },
      { ...ack, nonce: 1.5 },
      { ...ack, version: 0 },
      { ...ack, hash: "md5:abc" },
      { ...ack, hash: `${H}0` },
      { type: "ack", nonce: 1, version: 1 },
      { ...nack, error: { code: "", message: "x" } },
      { ...nack, error: { message: "x" } },
      { ...nack, error: "RESTART_REQUIRED" },
      { ...nack, applied: undefined },
    ];
    for (const m of bad) closesWith(sfu(m), CloseCode.INVALID_MESSAGE);
  });

  it("bad JSON closes with 4001; a non-object with 4003; an unknown or missing type with 4002", () => {
    closesWith(parseSfuFrame("{not json"), CloseCode.BAD_JSON, /^frame: not JSON/);
    closesWith(parseSfuFrame(""), CloseCode.BAD_JSON);
    closesWith(parseSfuFrame(Buffer.from([0xff, 0xfe, 0x00])), CloseCode.BAD_JSON);
    for (const t of ["[]", "null", "42", '"hello"']) closesWith(parseSfuFrame(t), CloseCode.INVALID_MESSAGE);
    closesWith(sfu({ type: "bye" }), CloseCode.UNKNOWN_TYPE, /"bye"/);
    closesWith(sfu({ nonce: 1 }), CloseCode.UNKNOWN_TYPE);
    closesWith(sfu({ type: 7 }), CloseCode.UNKNOWN_TYPE);
    // The agent does not accept config frames, nor the SFU hello/ack/nack.
    closesWith(sfu(config), CloseCode.UNKNOWN_TYPE);
    for (const m of [hello, ack, nack]) closesWith(agent(m), CloseCode.UNKNOWN_TYPE);
  });

  it("an oversize frame closes with 4009 before any parsing", () => {
    const big = JSON.stringify({ ...hello, pad: "x".repeat(MAX_FRAME_BYTES) });
    closesWith(parseSfuFrame(big), CloseCode.FRAME_TOO_LARGE, /exceeds 1048576/);
    closesWith(parseAgentFrame(Buffer.from(big)), CloseCode.FRAME_TOO_LARGE);
    // Multi-byte characters count as bytes, not characters.
    const wide = `{"type":"ack","pad":"${"é".repeat(MAX_FRAME_BYTES / 2)}"}`;
    closesWith(parseSfuFrame(wide), CloseCode.FRAME_TOO_LARGE);
  });

  it("frames are read within the bounded reader's limits: too deep or too many values/keys is 4003, bad UTF-8 4001", () => {
    const deep = `{"type":"health","x":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    closesWith(parseSfuFrame(deep), CloseCode.INVALID_MESSAGE, /^frame: nested more than 66 levels deep/);
    closesWith(parseAgentFrame(deep), CloseCode.INVALID_MESSAGE, /nested/);
    const keys = `{"type":"ack",${Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    closesWith(parseSfuFrame(keys), CloseCode.INVALID_MESSAGE, /more than 10016 object keys/);
    const values = `{"type":"ack","v":[${"0,".repeat(200_000)}0]}`;
    closesWith(parseSfuFrame(values), CloseCode.INVALID_MESSAGE, /more than 100016 values/);
    closesWith(parseSfuFrame(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])), CloseCode.BAD_JSON, /not UTF-8/);
    // A config as deep as a config file may be still passes.
    let nested: unknown = 1;
    for (let i = 0; i < 60; i++) nested = { a: nested };
    assert.ok(parseAgentFrame(JSON.stringify({ ...config, config: nested })).ok);
  });

  it("a bad-JSON reason never quotes the frame's text (it may hold a credential)", () => {
    const r = parseAgentFrame(`{"type":"config","config":{"credential":"hunter2-secret"} oops`);
    closesWith(r, CloseCode.BAD_JSON);
    assert.ok(!r.ok && !r.reason.includes("hunter2"), !r.ok ? r.reason : "");
  });

  it("a huge bad-JSON reason is truncated to 123 bytes on a character boundary", () => {
    const r = parseSfuFrame(`{"type": "é${"é".repeat(500)}`);
    closesWith(r, CloseCode.BAD_JSON);
    assert.equal(closeReason("é".repeat(100)), "é".repeat(61));
  });
});

describe("agent -> SFU frames", () => {
  it("accepts a valid config, revision string or null", () => {
    assert.ok(agent(config).ok);
    assert.ok(agent({ ...config, revision: "1a2b3c4" }).ok);
  });

  it("rejects invalid configs with 4003", () => {
    const bad: unknown[] = [
      { ...config, nonce: 0 },
      { ...config, version: 0 },
      { ...config, hash: "sha256:xyz" },
      { ...config, revision: "" },
      { ...config, revision: undefined },
      { ...config, schemaVersion: 0 },
      { ...config, config: [] },
      { ...config, config: null },
      { ...config, config: undefined },
    ];
    for (const m of bad) closesWith(agent(m), CloseCode.INVALID_MESSAGE, /^invalid config: /);
  });
});

describe("SNS events", () => {
  const reload = {
    type: "sfu-config.reload",
    revision: "1a2b3c4",
    hash: H,
    configMap: "sfu/sfu-config",
    issuedAt: "2026-11-26T21:00:00Z",
  };
  const envelope = (message: unknown) =>
    JSON.stringify({
      Type: "Notification",
      MessageId: "m-1",
      TopicArn: "arn:aws:sns:eu-west-1:123456789012:sfu-config",
      Message: typeof message === "string" ? message : JSON.stringify(message),
      Timestamp: "2026-11-26T21:00:00.000Z",
    });

  it("parses a raw reload event (envelope: false) and the same inside an SNS envelope (envelope: true)", () => {
    const raw = parseReloadEvent(JSON.stringify(reload));
    assert.ok(raw.ok);
    assert.equal(raw.envelope, false);
    assert.deepEqual(raw.event, reload);
    const wrapped = parseReloadEvent(envelope(reload));
    assert.ok(wrapped.ok);
    assert.equal(wrapped.envelope, true);
    assert.deepEqual(wrapped.event, reload);
  });

  it("accepts null revision and configMap", () => {
    assert.ok(parseReloadEvent(JSON.stringify({ ...reload, revision: null, configMap: null })).ok);
  });

  it("rejects bad bodies with a reason, never a throw", () => {
    const bad = [
      "not json",
      envelope("not json inside"),
      JSON.stringify({ ...reload, type: "sfu-config.status" }),
      JSON.stringify({ ...reload, hash: "sha256:nothex" }),
      JSON.stringify({ ...reload, configMap: "no-namespace" }),
      JSON.stringify({ ...reload, issuedAt: "yesterday" }),
      JSON.stringify({ Type: "SubscriptionConfirmation", Message: JSON.stringify(reload) }),
      envelope({ ...reload, hash: undefined }),
      "null",
      "[]",
      JSON.stringify({ ...reload, pad: "x".repeat(256 * 1024) }),
    ];
    for (const body of bad) {
      const r = parseReloadEvent(body);
      assert.equal(r.ok, false, body.slice(0, 80));
      if (!r.ok) assert.ok(r.reason.length > 0);
    }
  });

  it("bodies and envelope Messages are read within EVENT_JSON_LIMITS; reasons are capped and quote nothing", () => {
    const deep = `${"[".repeat(50_000)}${"]".repeat(50_000)}`;
    const keys = `{${Array.from({ length: 5_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const cases: [string, RegExp][] = [
      [deep, /^message body: nested more than 8 levels deep/],
      [envelope(deep), /^SNS envelope Message: nested more than 8 levels deep/],
      [keys, /^message body: more than 256 object keys/],
      [envelope(keys), /^SNS envelope Message: more than 256 object keys/],
      [`[${"0,".repeat(5_000)}0]`, /more than 1000 values/],
      [envelope(`{"hash":"x","credential":"hunter2-secret" !!`), /^SNS envelope Message: not JSON/],
      [JSON.stringify({ ...reload, pad: "x".repeat(256 * 1024) }), /more than 262144 bytes/],
    ];
    for (const [body, reason] of cases) {
      for (const parse of [parseReloadEvent, parseStatusEvent]) {
        const r = parse(body);
        assert.ok(!r.ok, body.slice(0, 60));
        assert.match(r.reason, reason);
        assert.ok(r.reason.length <= 1024 && !r.reason.includes("hunter2"), r.reason);
      }
    }
  });

  it("parses status events raw and enveloped, each outcome, and rejects unknown outcomes", () => {
    const status = {
      type: "sfu-config.status",
      pod: "sfu-server-0",
      revision: null,
      hash: H,
      version: 3,
      outcome: "applied",
      error: null,
      at: "2026-11-26T21:00:00Z",
    };
    for (const outcome of ["applied", "rejected", "invalid", "timeout", "superseded"]) {
      assert.ok(parseStatusEvent(JSON.stringify({ ...status, outcome })).ok, outcome);
    }
    const wrapped = parseStatusEvent(envelope({ ...status, version: null, error: { code: "X", message: "y" } }));
    assert.ok(wrapped.ok && wrapped.envelope);
    assert.equal(parseStatusEvent(JSON.stringify({ ...status, outcome: "ok" })).ok, false);
    assert.equal(parseStatusEvent(JSON.stringify(reload)).ok, false);
  });
});
