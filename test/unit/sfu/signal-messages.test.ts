import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_SIGNAL_FRAME_BYTES, parseClientMessage } from "../../../sfu/signal-messages.ts";

describe("parseClientMessage", () => {
  it("parses join with default publish", () => {
    assert.deepEqual(parseClientMessage(JSON.stringify({ type: "join", room: "r", name: " ann " })), {
      ok: true,
      message: { type: "join", room: "r", name: "ann", publish: { audio: true, video: true } },
    });
  });

  it("parses answer, candidate (incl. end of candidates), publish, leave", () => {
    assert.equal(parseClientMessage('{"type":"answer","sdp":"v=0"}').ok, true);
    assert.deepEqual(parseClientMessage('{"type":"candidate","candidate":null}'), {
      ok: true,
      message: { type: "candidate", candidate: null },
    });
    assert.equal(
      parseClientMessage('{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host"}}')
        .ok,
      true,
    );
    assert.deepEqual(parseClientMessage('{"type":"publish","publish":{"video":true}}'), {
      ok: true,
      message: { type: "publish", publish: { audio: false, video: true } },
    });
    assert.equal(parseClientMessage('{"type":"leave"}').ok, true);
  });

  it("rejects bad frames with a message", () => {
    for (const bad of [
      "nope",
      "[]",
      '{"type":"join","room":"","name":"a"}',
      `{"type":"join","room":"${"x".repeat(65)}","name":"a"}`,
      '{"type":"join","room":"r","name":"a\\u0001"}',
      '{"type":"join","room":"r","name":"a","publish":{"audio":"yes"}}',
      '{"type":"answer"}',
      '{"type":"candidate","candidate":5}',
      '{"type":"dance"}',
    ]) {
      const r = parseClientMessage(bad);
      assert.equal(r.ok, false, bad);
      if (!r.ok) assert.ok(r.message.length > 0);
    }
  });
  it("reads frames within SIGNAL_JSON_LIMITS: deep nesting and key or value floods are refused saying which", () => {
    const cases: [string, RegExp][] = [
      [`{"type":"leave","x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`, /^frame: nested more than 8 levels deep/],
      [
        `{"type":"leave",${Array.from({ length: 1_000 }, (_, i) => `"k${i}":0`).join(",")}}`,
        /more than 256 object keys/,
      ],
      [`{"type":"leave","x":[${"0,".repeat(2_000)}0]}`, /more than 1000 values/],
      [`{"type":"answer","sdp":"${"é".repeat(MAX_SIGNAL_FRAME_BYTES / 2)}"}`, /^frame too large$/],
    ];
    for (const [frame, message] of cases) {
      const r = parseClientMessage(frame);
      assert.ok(!r.ok, frame.slice(0, 40));
      assert.match(r.message, message);
    }
  });
});
