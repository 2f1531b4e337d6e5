/** requestHost: the host of a request from its target and Host header together. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { requestHost } from "../../../protocol/request-target.ts";

test("origin-form and asterisk-form keep the Host header", () => {
  assert.deepEqual(requestHost("/status", "127.0.0.1:9090"), { ok: true, host: "127.0.0.1:9090" });
  assert.deepEqual(requestHost("*", "a"), { ok: true, host: "a" });
  assert.deepEqual(requestHost("/x", undefined), { ok: true, host: undefined });
});

test("absolute-form: the same authority as Host passes, default ports folded by the target's scheme", () => {
  assert.deepEqual(requestHost("http://a.example/x", "a.example:80"), { ok: true, host: "a.example:80" });
  assert.deepEqual(requestHost("https://a.example:443/", "A.Example"), { ok: true, host: "A.Example" });
  assert.deepEqual(requestHost("ws://[::1]:7070/", "[::1]:7070"), { ok: true, host: "[::1]:7070" });
  // No Host (HTTP/1.0): the target's authority is checked instead.
  assert.deepEqual(requestHost("http://evil.example/", undefined), { ok: true, host: "evil.example" });
});

test("absolute-form refusals: another host, another port, userinfo, a foreign scheme, garbage", () => {
  for (const [target, host] of [
    ["http://evil.example/status", "127.0.0.1"],
    ["http://127.0.0.1:9091/", "127.0.0.1:9090"],
    ["https://a.example/", "a.example:80"],
    ["http://u:p@a.example/", "a.example"],
    ["ftp://a.example/", "a.example"],
    ["mailto:x@a.example", "a.example"],
    ["http://a.example/", "a.example/x"],
    ["http://a.example/", "a.example?x"],
    ["not a url", "a"],
  ] as const) {
    const r = requestHost(target, host);
    assert.equal(r.ok, false, `${target} with Host ${host}`);
    if (!r.ok) assert.equal(r.status, 400);
  }
});
