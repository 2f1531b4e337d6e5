/**
 * `sfu-agent status` reads each agent's /status through the bounded reader
 * (agent/fleet/fleet-status.ts): a good document is a row; an oversize, deep,
 * key-flooded, non-JSON or trickling answer is an error row within the
 * timeout, never a throw or an unbounded read.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fetchAgentStatus, MAX_STATUS_BYTES } from "../../../agent/fleet/fleet-status.ts";

const doc = {
  pod: "sfu-0",
  desired: null,
  applied: null,
  lastError: null,
  sfu: { connected: false },
  queue: { mode: "none", url: null },
  settlements: [],
};
const answers: Record<string, (res: ServerResponse) => void> = {
  "/good": (res) => res.end(JSON.stringify(doc)),
  "/huge": (res) => res.end(JSON.stringify({ ...doc, pad: "x".repeat(MAX_STATUS_BYTES) })),
  "/deep": (res) => res.end(`{"pod":"p","x":${"[".repeat(50_000)}${"]".repeat(50_000)}}`),
  "/keys": (res) => res.end(`{"pod":"p",${Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(",")}}`),
  "/garbage": (res) => res.end("<html>oops</html>"),
  "/trickle": (res) => {
    res.write('{"pod":');
    const t = setInterval(() => res.write(" "), 50);
    res.on("close", () => clearInterval(t));
  },
};

describe("fetchAgentStatus reads /status bounded", () => {
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((req, res) => {
      const answer = answers[(req.url ?? "").replace(/\/status$/, "")];
      if (answer) answer(res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("a good document is a row", async () => {
    const row = await fetchAgentStatus(`${base}/good`);
    assert.ok(row.ok && row.status.pod === "sfu-0");
  });

  it("oversize, deep, key-flooded and non-JSON answers are error rows saying what", async () => {
    const cases: [string, RegExp][] = [
      ["/huge", /over 1048576 bytes/],
      ["/deep", /^status document: nested more than 16 levels deep/],
      ["/keys", /^status document: more than 10000 object keys/],
      ["/garbage", /^status document: not JSON/],
    ];
    for (const [path, error] of cases) {
      const row = await fetchAgentStatus(`${base}${path}`);
      assert.ok(!row.ok, path);
      assert.match(row.error, error);
    }
  });

  it("a trickling answer ends at the timeout", async () => {
    const t0 = Date.now();
    const row = await fetchAgentStatus(`${base}/trickle`, 300);
    assert.ok(!row.ok);
    assert.match(row.error, /300 ms/);
    assert.ok(Date.now() - t0 < 3000);
  });
});
