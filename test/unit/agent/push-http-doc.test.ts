/**
 * PROTOCOL.md section 12 (Push over HTTP): every example request and
 * response is one the agent sends or accepts — POST bodies are valid,
 * normalised `config` messages whose hash matches, GET answers parse as
 * applied documents, 409/422 bodies as error documents, nonces increase.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseAppliedDocument, parseErrorDocument } from "../../../agent/sidecar/http-push-wire.ts";
import { configHash } from "../../../protocol/hash.ts";
import { parseAgentFrame } from "../../../protocol/messages.ts";

const DOC = readFileSync(join(import.meta.dirname, "../../../protocol/PROTOCOL.md"), "utf8");
const section = DOC.slice(DOC.indexOf("## 12. Push over HTTP"), DOC.indexOf("## 13. "));

function split(block: string): { head: string[]; body: string } {
  const i = block.indexOf("\n\n");
  const head = (i < 0 ? block : block.slice(0, i)).split("\n");
  return { head, body: i < 0 ? "" : block.slice(i + 2).trim() };
}

test("section 12 examples: requests and responses the agent sends and accepts", () => {
  const re = /<!-- example:http-(request|response) -->\n```http\n([\s\S]*?)\n```/g;
  const examples = [...section.matchAll(re)].map((m) => ({ kind: m[1] as string, ...split(m[2] as string) }));
  assert.ok(examples.length >= 8, `found ${examples.length} examples`);
  let lastNonce = 0;
  let lastVersion = 0;
  let request: { method: string; version?: number } | null = null;
  for (const e of examples) {
    if (e.kind === "request") {
      assert.equal(request, null, "requests and responses alternate");
      const [method, path] = (e.head[0] as string).split(" ");
      assert.equal(path, "/sfu-config");
      assert.ok(e.head.includes("Accept: application/json"));
      assert.ok(e.head.some((h) => h.startsWith("Authorization: Bearer ")));
      if (method === "POST") {
        assert.ok(e.head.includes("Content-Type: application/json"));
        const parsed = parseAgentFrame(e.body);
        assert.ok(parsed.ok, !parsed.ok ? parsed.reason : "");
        assert.equal(configHash(parsed.message.config), parsed.message.hash);
        assert.ok(parsed.message.nonce > lastNonce && parsed.message.version > lastVersion);
        lastNonce = parsed.message.nonce;
        lastVersion = parsed.message.version;
        request = { method, version: parsed.message.version };
      } else {
        assert.equal(method, "GET");
        assert.equal(e.body, "");
        request = { method };
      }
      continue;
    }
    assert.ok(request, "a response follows a request");
    const status = Number((e.head[0] as string).split(" ")[1]);
    if (request.method === "GET") {
      assert.equal(status, 200);
      assert.notEqual(parseAppliedDocument(Buffer.from(e.body)), undefined, e.body);
    } else if (status === 409 || status === 422) {
      const err = parseErrorDocument(Buffer.from(e.body));
      assert.ok(err, e.body);
      assert.match(err.code, /^[A-Z_]+$/);
    } else {
      assert.ok(status >= 200 && status < 300, `status ${status}`);
    }
    request = null;
  }
});
