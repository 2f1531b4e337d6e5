/**
 * Hostile `/status` documents against the real `sfu-agent status` process:
 * one loopback server answers, per path, a 50 MB body, 800 KB of nested
 * arrays, a body that never ends, bytes that are not JSON, a document of the
 * wrong shape (the table's fields of the wrong types), one whose cells are
 * 140 KB of control characters each, and a good document. The command finishes
 * within its per-agent timeout, exits 1, renders the good row, says for each
 * bad target what is wrong with it, and its output stays small.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { CLI } from "../../helpers/limited-agent.ts";

const HASH = `sha256:${"ab".repeat(32)}`;
const GOOD = {
  pod: "sfu-good",
  desired: { version: 3, hash: HASH, revision: "r3" },
  applied: { version: 3, hash: HASH, at: "2026-12-07T00:00:00.000Z" },
  lastError: null,
  sfu: { connected: true },
  queue: { mode: "none", url: null },
  settlements: [],
};
const TIMEOUT_MS = 1_500;

describe("hostile /status documents read by sfu-agent status", { timeout: 60_000 }, () => {
  let server: Server;
  let base = "";

  before(async () => {
    server = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      const path = req.url?.replace(/\/status$/, "") ?? "";
      if (path === "/good") return res.end(JSON.stringify(GOOD));
      if (path === "/huge") {
        // 50 MB of one JSON string, in 1 MiB writes, stopped when the client goes.
        const chunk = Buffer.alloc(1024 * 1024, "a");
        let sent = 0;
        res.write('{"pod":"');
        const more = () => {
          while (sent < 50 && !res.destroyed) {
            sent++;
            if (!res.write(chunk)) return void res.once("drain", more);
          }
          res.end('"}');
        };
        res.on("close", () => {
          sent = 50;
        });
        return more();
      }
      if (path === "/deep") return res.end("[".repeat(400_000) + "]".repeat(400_000));
      if (path === "/drip") {
        res.write("{");
        const t = setInterval(() => res.write(" "), 100);
        res.on("close", () => clearInterval(t));
        return;
      }
      if (path === "/garbage") return res.end("\u0000\u00ffnot json at all");
      if (path === "/types")
        return res.end(JSON.stringify({ ...GOOD, desired: { version: "3", hash: 5 }, settlements: "none" }));
      if (path === "/cells") {
        const noise = "\u001b[2J\u001b]0;owned\u0007".repeat(5_000);
        return res.end(JSON.stringify({ ...GOOD, pod: noise, lastError: { code: noise, message: noise, at: "now" } }));
      }
      res.statusCode = 404;
      res.end("{}");
    });
    server.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test("each bad document is one row saying what is wrong; the good row renders; bounded output", async () => {
    const targets = ["good", "huge", "deep", "drip", "garbage", "types", "cells"].map((p) => `${base}/${p}`);
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, "status", "--timeout", String(TIMEOUT_MS), ...targets], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    let peakKiB = 0;
    const sampler = setInterval(async () => {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
      peakKiB = Math.max(peakKiB, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0));
    }, 20);
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    clearInterval(sampler);
    const ms = performance.now() - t0;
    console.log(`# ${ms.toFixed(0)} ms, ${out.length} bytes of output, peak RSS ${(peakKiB / 1024).toFixed(0)} MiB`);

    assert.equal(code, 1, err);
    assert.equal(err, "", "nothing on stderr: no crash, no stack trace");
    const line = (p: string) => out.split("\n").find((l) => l.startsWith(`${base}/${p} `)) ?? "";
    assert.match(out, /^sfu-good\s+up\s+v3\s+v3\s+sha256:abab/m, "the good row");
    assert.match(line("huge"), /status document over 1048576 bytes/);
    assert.match(line("deep"), /nested more than 16 levels deep/);
    assert.match(line("drip"), new RegExp(`no answer within ${TIMEOUT_MS} ms`));
    assert.match(line("garbage"), /not JSON|Unexpected|JSON/);
    assert.match(
      line("types"),
      /not an sfu-agent \/status document: \/(desired\/version|desired\/hash|settlements) must be/,
    );
    const cells = out.split("\n").find((l) => l.includes("\\x1b[2J")) ?? "";
    assert.ok(cells.length > 0 && cells.length < 1_000, `the noisy row is escaped and capped (${cells.length} chars)`);
    assert.doesNotMatch(out, /\u001b/, "no raw escape sequence reaches the terminal");
    assert.ok(out.length < 10_000, `output ${out.length} bytes`);
    assert.ok(ms < TIMEOUT_MS + 5_000, `finished in ${ms.toFixed(0)} ms`);
  });
});
