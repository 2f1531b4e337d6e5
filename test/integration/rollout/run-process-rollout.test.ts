/**
 * The real `sfu-agent run` process with the rollout flags: `--rollout-state`
 * read from fauxqs's S3 through `--endpoint-url`/`--region`, a halted
 * rollout in the state, the halted config in the mount and an SFU that
 * still runs it: the process pushes the stable config, reports stage
 * `reverted` in /status and in its gauges. A malformed `--rollout-state`
 * exits 2.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import { RolloutStateStore } from "../../../agent/aws/state-store.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { configText } from "../../helpers/config-text.ts";
import { FakeSfu } from "../../helpers/fake-sfu.ts";
import { until } from "../../helpers/until.ts";

const CLI = join(import.meta.dirname, "../../../agent/cli.ts");
const POLICY = "schemaVersion: 1\nsteps: [{ percent: 10, bake: 1m }, { percent: 100 }]\n";

describe("sfu-agent run with --rollout-state (process)", { timeout: 60_000 }, () => {
  let fx: FauxqsHandle;
  let s3: S3Client;
  let dir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    fx = await startFauxqs();
    s3 = createS3Client({
      endpointUrl: fx.endpoint,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    });
    await s3.send(new CreateBucketCommand({ Bucket: "rollout" }));
    dir = await mkdtemp(join(tmpdir(), "sfu-agent-rollout-proc-"));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    s3.destroy();
    await fx.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const spawnAgent = (args: string[]) => {
    const child = spawn(process.execPath, [CLI, "run", ...args], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", POD_NAME: "sfu-proc-0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    return child;
  };

  it("a malformed --rollout-state exits 2 naming the flag", async () => {
    const child = spawnAgent(["--rollout-state", "s3://x"]);
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise((r) => child.once("exit", r));
    assert.equal(code, 2);
    assert.match(stderr, /--rollout-state: "s3:\/\/x" is not s3:\/\/BUCKET\/KEY/);
  });

  it("halted rollout, halted config mounted, SFU still on it: the process pushes the stable config", async () => {
    const c1 = await loadConfigText(configText(1), { checkFiles: false });
    const c2 = await loadConfigText(configText(2), { checkFiles: false });
    assert.ok(c1.ok && c2.ok);
    await new RolloutStateStore({ url: "s3://rollout/state.json", s3 }).write({
      type: "sfu-config.rollout-state",
      updatedAt: new Date().toISOString(),
      stable: { hash: c1.hash, revision: "rev-1", config: c1.config },
      candidate: {
        id: "r-proc",
        hash: c2.hash,
        revision: "rev-2",
        state: "halted",
        step: 1,
        threshold: 1,
        reason: { step: 1, criterion: "nack", pods: ["sfu-proc-0"], detail: "APPLY_FAILED" },
      },
    });
    await new AtomicWriter(dir).write({ "config.yaml": configText(2), "rollout.yaml": POLICY });
    const child = spawnAgent([
      "--config-dir",
      dir,
      "--listen",
      "127.0.0.1:0",
      "--http",
      "127.0.0.1:0",
      "--rollout-state",
      "s3://rollout/state.json",
      "--endpoint-url",
      fx.endpoint,
      "--region",
      FAUXQS_REGION,
    ]);
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buf = "";
      child.stdout!.on("data", (c: Buffer) => {
        buf += c.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
          buf = buf.slice(i + 1);
          if (line["msg"] === "agent started") resolve(line);
        }
      });
      child.once("exit", (code) => reject(new Error(`agent exited with ${code}: ${stderr}`)));
    });
    const sfu = await FakeSfu.connect({ url: started["push"] as string, applied: { version: 1, hash: c2.hash } });
    try {
      const m = await sfu.waitForConfig(() => true, 10_000);
      assert.equal(m.hash, c1.hash, "the stable config, not the halted one the mount holds");
      const http = started["http"] as string;
      const status = await until(
        async () => {
          const s = (await (await fetch(`${http}/status`)).json()) as {
            rollout: { stage: string; id: string } | null;
            applied: { hash: string } | null;
          };
          return s.applied?.hash === c1.hash ? s : null;
        },
        10_000,
        "applied stable",
      );
      assert.equal(status.rollout?.stage, "reverted");
      assert.equal(status.rollout?.id, "r-proc");
      const metrics = await (await fetch(`${http}/metrics`)).text();
      assert.match(metrics, /sfu_agent_rollout_stage\{stage="reverted"\} 1/);
      assert.deepEqual(
        sfu.received.map((r) => r.message.hash),
        [c1.hash],
      );
    } finally {
      await sfu.close();
      child.kill("SIGTERM");
      assert.equal(await new Promise((r) => child.once("exit", r)), 0);
    }
  });
});
