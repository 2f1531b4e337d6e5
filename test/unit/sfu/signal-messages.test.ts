import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseClientMessage } from "../../../sfu/signal-messages.ts";

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
});
