/** The signalling Origin check: same origin by default, listed origins, no Origin allowed, the rest refused. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkRequestOrigin, normaliseOrigin } from "../../../sfu/origin-policy.ts";

const allowed = (origin: string | undefined, host: string | undefined, list?: string[]) =>
  checkRequestOrigin(origin, host, list).allowed;

describe("checkRequestOrigin", () => {
  it("allows a request without Origin (not a browser)", () => {
    assert.deepEqual(checkRequestOrigin(undefined, "sfu.example:8080", undefined), { allowed: true, why: "no-origin" });
  });

  it("allows the same origin: host and port equal to Host, default ports folded, case-insensitive", () => {
    assert.ok(allowed("http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert.ok(allowed("https://SFU.example.com", "sfu.example.com"));
    assert.ok(allowed("https://sfu.example.com", "sfu.example.com:443"));
    assert.ok(allowed("http://sfu.example.com", "sfu.example.com:80"));
    assert.ok(allowed("http://[::1]:8080", "[::1]:8080"));
    assert.equal(checkRequestOrigin("http://127.0.0.1:8080", "127.0.0.1:8080", []).allowed, true);
  });

  it("refuses another origin by default: other host, other port, other scheme's default port", () => {
    assert.ok(!allowed("https://evil.example", "sfu.example.com"));
    assert.ok(!allowed("http://127.0.0.1:9999", "127.0.0.1:8080"));
    assert.ok(!allowed("https://sfu.example.com", "sfu.example.com:80"));
    assert.ok(!allowed("http://sfu.example.com.evil.example", "sfu.example.com"));
    const d = checkRequestOrigin("https://evil.example", "sfu.example.com", undefined);
    assert.ok(
      !d.allowed &&
        /"https:\/\/evil\.example" is not this SFU's origin and not in server\.allowedOrigins/.test(d.reason),
    );
  });

  it("refuses when Host is missing or tries to smuggle a user, path or query", () => {
    assert.ok(!allowed("https://a.example", undefined));
    assert.ok(!allowed("https://a.example", ""));
    assert.ok(!allowed("https://a.example", "evil@a.example"));
    assert.ok(!allowed("https://a.example", "a.example/x"));
    assert.ok(!allowed("https://a.example", "a.example?x"));
  });

  it("allows listed origins, exactly (scheme, host, port)", () => {
    const list = ["https://app.example.com", "http://localhost:3000"];
    assert.ok(allowed("https://app.example.com", "sfu.example.com", list));
    assert.ok(allowed("https://APP.example.com:443", "sfu.example.com", list));
    assert.ok(allowed("http://localhost:3000", "sfu.example.com", list));
    assert.ok(!allowed("http://app.example.com", "sfu.example.com", list));
    assert.ok(!allowed("https://app.example.com:8443", "sfu.example.com", list));
    assert.ok(!allowed("https://sub.app.example.com", "sfu.example.com", list));
  });

  it("refuses null, non-http(s) and malformed origins, cutting long values in the reason", () => {
    for (const o of [
      "null",
      "file://",
      "chrome-extension://abc",
      "not a url",
      "https://a.example/path",
      "https://u@a.example",
    ]) {
      const d = checkRequestOrigin(o, "a.example", ["https://a.example"]);
      assert.equal(d.allowed, false, o);
    }
    const long = `https://${"a".repeat(5000)}.example`;
    const d = checkRequestOrigin(long, "sfu.example", undefined);
    assert.ok(!d.allowed && d.reason.length < 300);
  });
});

describe("normaliseOrigin", () => {
  it("lower-cases, folds default ports, refuses paths and credentials", () => {
    assert.equal(normaliseOrigin("HTTPS://App.Example.com:443"), "https://app.example.com");
    assert.equal(normaliseOrigin("http://a.example:8080"), "http://a.example:8080");
    assert.equal(normaliseOrigin("https://a.example/"), null);
    assert.equal(normaliseOrigin("https://a.example/x"), null);
    assert.equal(normaliseOrigin("ftp://a.example"), null);
  });
});
