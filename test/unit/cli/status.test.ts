/**
 * `sfu-agent status`: the fleet table read from agents' /status endpoints
 * (served here by small HTTP servers on 127.0.0.1), its exit codes, and the
 * unreachable-agent row.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { AgentStatusDoc } from "../../../agent/fleet/fleet-status.ts";
import { cli } from "../../helpers/cli-run.ts";

const H1 = `sha256:${"a".repeat(64)}`;
const H2 = `sha256:${"b".repeat(64)}`;

function statusDoc(pod: string, applied: string | null, desired: string): AgentStatusDoc {
  return {
    pod,
    desired: { version: 4, hash: desired, revision: "1a2b3c" },
    applied:
      applied === null ? null : { version: applied === desired ? 4 : 3, hash: applied, at: "2026-11-26T21:00:00Z" },
    lastError:
      applied === desired
        ? null
        : {
            code: "INVALID_CONFIG",
            message: "config.yaml:7:5: /webrtc/codecs: needs at least one audio codec",
            at: "x",
          },
    sfu: { connected: true, name: "sfu-server", version: "0.1.0" },
    queue: { mode: "per-pod", url: null },
    settlements: [{ revision: "1a2b3c", hash: desired, outcome: applied === desired ? "applied" : "invalid", at: "x" }],
  };
}

async function serve(doc: AgentStatusDoc): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url !== "/status") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(doc));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("sfu-agent status", () => {
  let good: { server: Server; url: string };
  let behind: { server: Server; url: string };
  let closedUrl: string;

  before(async () => {
    good = await serve(statusDoc("sfu-0", H1, H1));
    behind = await serve(statusDoc("sfu-1", H1, H2));
    const gone = await serve(statusDoc("gone", H1, H1));
    closedUrl = gone.url;
    gone.server.close();
    await once(gone.server, "close");
  });
  after(() => {
    good.server.close();
    behind.server.close();
  });

  it("prints one row per agent and exits 0 when every agent applied its desired config", async () => {
    const run = await cli("status", good.url);
    assert.equal(run.code, 0, run.stderr);
    const [header, row] = run.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /^POD\s+SFU\s+DESIRED\s+APPLIED\s+HASH\s+REVISION\s+LAST OUTCOME\s+LAST ERROR$/);
    assert.match(row ?? "", /^sfu-0\s+up\s+v4\s+v4\s+sha256:aaaaaaaaaaaa\s+1a2b3c\s+applied\s+-$/);
  });

  it("adds a PROPAGATION column once an agent measured a reload event (publication to applied)", async () => {
    const doc = statusDoc("sfu-2", H1, H1);
    doc.settlements = [
      {
        revision: "1a2b3c",
        hash: H1,
        outcome: "applied",
        at: "x",
        propagationSeconds: 0.41,
        eventToAppliedSeconds: 0.44,
      },
    ];
    const timed = await serve(doc);
    try {
      const run = await cli("status", timed.url, good.url);
      assert.equal(run.code, 0, run.stderr);
      const [header, row, other] = run.stdout.trimEnd().split("\n");
      assert.match(
        header ?? "",
        /^POD\s+SFU\s+DESIRED\s+APPLIED\s+HASH\s+REVISION\s+LAST OUTCOME\s+PROPAGATION\s+LAST ERROR$/,
      );
      assert.match(row ?? "", /^sfu-2\s+up\s+v4\s+v4\s+sha256:aaaaaaaaaaaa\s+1a2b3c\s+applied\s+0\.44s\s+-$/);
      assert.match(other ?? "", /^sfu-0\s+.*applied\s+-\s+-$/);
    } finally {
      timed.server.close();
    }
  });

  it("exits 1 and shows the lag, the last outcome and the error when an agent is behind or unreachable", async () => {
    const run = await cli("status", good.url, behind.url, closedUrl);
    assert.equal(run.code, 1);
    const rows = run.stdout.trimEnd().split("\n").slice(1);
    assert.equal(rows.length, 3);
    assert.match(
      rows[1] ?? "",
      /^sfu-1\s+up\s+v4\s+v3 \(behind\)\s+sha256:aaaaaaaaaaaa\s+1a2b3c\s+invalid\s+INVALID_CONFIG: config\.yaml:7:5/,
    );
    assert.match(rows[2] ?? "", new RegExp(`^${closedUrl}\\s+\\?.*unreachable\\s+ECONNREFUSED$`));
  });

  it("prints JSON with --format json", async () => {
    const run = await cli("status", "--format", "json", good.url);
    assert.equal(run.code, 0);
    const rows = JSON.parse(run.stdout) as Array<{ target: string; ok: boolean; status: AgentStatusDoc }>;
    assert.equal(rows[0]?.ok, true);
    assert.equal(rows[0]?.status.pod, "sfu-0");
  });

  it("reads targets from SFU_AGENT_STATUS_TARGETS", async () => {
    process.env.SFU_AGENT_STATUS_TARGETS = ` ${good.url} ,`;
    try {
      const run = await cli("status");
      assert.equal(run.code, 0);
      assert.match(run.stdout, /sfu-0/);
    } finally {
      delete process.env.SFU_AGENT_STATUS_TARGETS;
    }
  });

  it("exits 2 with a clear message on usage errors", async () => {
    for (const args of [[], ["not-a-url"], ["--format", "xml", good.url], ["--timeout", "0", good.url], ["--bogus"]]) {
      const run = await cli("status", ...args);
      assert.equal(run.code, 2, `status ${args.join(" ")}`);
      assert.match(run.stderr, /^sfu-agent status: /);
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
    }
  });

  it("with a rollout policy mounted: a STAGE column and one line on the rollout's state", async () => {
    const rollout = (stage: string, rank: number) => ({
      stage,
      id: "5b2c-r1",
      step: 1,
      hash: H2,
      state: "halted",
      rank,
      threshold: 0.25,
      stable: H1,
      haltReason: { step: 1, criterion: "iceFailureRate", pods: ["sfu-0"], detail: "0.80 > 0.10" },
    });
    const canary = await serve({ ...statusDoc("sfu-0", H1, H1), rollout: rollout("reverted", 0.1) });
    const held = await serve({ ...statusDoc("sfu-1", H1, H1), rollout: rollout("held", 0.7) });
    try {
      const run = await cli("status", canary.url, held.url);
      assert.equal(run.code, 0, run.stderr);
      const [header, first, second, summary, extra] = run.stdout.trimEnd().split("\n");
      assert.match(
        header ?? "",
        /^POD\s+SFU\s+STAGE\s+DESIRED\s+APPLIED\s+HASH\s+REVISION\s+LAST OUTCOME\s+LAST ERROR$/,
      );
      assert.match(first ?? "", /^sfu-0\s+up\s+reverted\s+v4\s+v4\s+sha256:aaaaaaaaaaaa/);
      assert.match(second ?? "", /^sfu-1\s+up\s+held\s+v4/);
      assert.equal(
        summary,
        "rollout 5b2c-r1 sha256:bbbbbbbbbbbb halted at step 1 (threshold 0.2500): iceFailureRate on sfu-0: 0.80 > 0.10; stable sha256:aaaaaaaaaaaa",
      );
      assert.equal(extra, undefined, "agents agreeing on the rollout print it once");
    } finally {
      canary.server.close();
      held.server.close();
    }
  });

  it("without any rollout policy the table is unchanged (no STAGE column, no rollout line)", async () => {
    const run = await cli("status", good.url);
    assert.doesNotMatch(run.stdout, /STAGE|rollout/);
  });

  it("shows control characters from an agent's document escaped, never raw", async () => {
    const doc = statusDoc("sfu-\u001b[2Jevil\u0007", H1, H2);
    doc.lastError = {
      code: "INVALID_CONFIG",
      message: "config.yaml:3:1: /x\u001b]0;title\u0007: unknown key",
      at: "x",
    };
    const hostile = await serve(doc);
    try {
      const run = await cli("status", hostile.url);
      assert.equal(run.code, 1);
      assert.doesNotMatch(run.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/);
      assert.match(run.stdout, /sfu-\\x1b\[2Jevil\\x07/);
    } finally {
      hostile.server.close();
    }
  });

  it("refuses a /status body over 1 MiB as an error row instead of reading it all", async () => {
    const huge = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(`{"pod":"${"x".repeat(2 * 1024 * 1024)}"}`);
    });
    huge.listen(0, "127.0.0.1");
    await once(huge, "listening");
    try {
      const run = await cli("status", `http://127.0.0.1:${(huge.address() as AddressInfo).port}`);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /unreachable\s+status document over 1048576 bytes/);
    } finally {
      huge.close();
    }
  });
});
