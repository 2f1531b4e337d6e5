/**
 * `sfu-agent notify` over fauxqs, against three real agents with fake SFUs:
 * `--wait` exits 0 when every pod applies and 1 when one SFU nacks or time
 * runs out; usage errors exit 2, an invalid config exits 1 without publishing.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { AwsClients } from "../../../agent/aws/aws-clients.ts";
import {
  configText,
  drainStatus,
  hashOf,
  notifyWaitArgv,
  type QueueFixture,
  runNotifyCaptured,
  startQueueFixture,
  type TestPod,
  until,
} from "./harness.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

describe("sfu-agent notify over fauxqs", { timeout: 90_000 }, () => {
  let f: QueueFixture;
  let pods: TestPod[];
  let clients: AwsClients;
  let dir: string;

  const notify = (argv: string[]) => runNotifyCaptured(argv, clients);

  before(async () => {
    f = await startQueueFixture();
    clients = f.fx.clients({ onCall: (a) => f.actions.add(a) });
    pods = await Promise.all(["sfu-a", "sfu-b", "sfu-c"].map((n) => f.startPod(n)));
    dir = await mkdtemp(join(tmpdir(), "sfu-notify-test-"));
  });
  after(async () => {
    clients?.destroy();
    await f?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("--wait exits 0 once every pod applied, printing a per-pod table", async () => {
    const file = join(dir, "config-2.yaml");
    await writeFile(file, configText(2));
    const h2 = await hashOf(2);
    const run = notify(
      notifyWaitArgv(f, file, {
        expect: 3,
        timeout: "30",
        extra: ["--revision", "abc123", "--config-map", "sfu/sfu-config"],
      }),
    );
    // the kubelet swaps the files a little after the hook ran
    for (const p of pods) await until(() => p.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await Promise.all(pods.map((p) => p.swap(2)));
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`published ${h2} revision=abc123`));
    assert.match(r.stdout, /POD\s+OUTCOME\s+VERSION\s+REVISION\s+ERROR/);
    for (const name of ["sfu-a", "sfu-b", "sfu-c"])
      assert.match(r.stdout, new RegExp(`${name}\\s+applied\\s+\\d+\\s+abc123`));
    assert.match(r.stdout, /3\/3 pods applied/);
  });

  it("--wait exits 1 when one SFU nacks", async () => {
    const file = join(dir, "config-3.yaml");
    await writeFile(file, configText(3));
    pods[2]?.sfu.setReply({ kind: "nack", code: "RESTART_REQUIRED", message: "server.port cannot change live" });
    const run = notify(notifyWaitArgv(f, file, { expect: 3, timeout: "30" }));
    for (const p of pods) await until(() => p.trigger.status().pendingEvents === 1, 10_000, "the event to be held");
    await Promise.all(pods.map((p) => p.swap(3)));
    const r = await run;
    assert.equal(r.code, 1);
    assert.match(r.stdout, /sfu-c\s+rejected\s+\d+\s+-\s+RESTART_REQUIRED: server.port cannot change live/);
    assert.match(r.stderr, /sfu-c rejected \(RESTART_REQUIRED\)/);
    pods[2]?.sfu.setReply({ kind: "ack" });
  });

  it("--wait exits 1 when time runs out", async () => {
    await drainStatus(f, 2);
    const file = join(dir, "config-4.yaml");
    await writeFile(file, configText(4));
    const r = await notify(notifyWaitArgv(f, file, { expect: 1, timeout: "2s" }));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /timed out after 2s: 0\/1 pods applied/);
  });

  it("an invalid config exits 1 with the problems and publishes nothing", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(file, "schemaVersion: 1\nserver: { port: 0 }\n");
    const before = pods.map((p) => p.trigger.status().pendingEvents);
    const r = await notify(["--topic-arn", f.topicArn, "--config", file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml:\d+:\d+: \/server\/port/);
    assert.match(r.stderr, /nothing published/);
    await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(
      pods.map((p) => p.trigger.status().pendingEvents),
      before,
    );
  });

  it("usage errors exit 2", async () => {
    const file = join(dir, "config-2.yaml");
    for (const argv of [
      [],
      ["--config", file],
      ["--topic-arn", f.topicArn],
      ["--topic-arn", "not-an-arn", "--config", file],
      ["--topic-arn", `${f.topicArn}.fifo`, "--config", file],
      ["--topic-arn", f.topicArn, "--config", file, "--wait"],
      ["--topic-arn", f.topicArn, "--config", file, "--wait", "--expect", "0", "--status-queue-url", "http://x/q"],
      ["--topic-arn", f.topicArn, "--config", file, "--expect", "3"],
      ["--topic-arn", f.topicArn, "--config", file, "--config-map", "Not/Valid_"],
      ["--topic-arn", f.topicArn, "--config", file, "--bogus"],
    ]) {
      const r = await notify(argv);
      assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /Try 'sfu-agent notify --help'/);
    }
  });

  it("runs as `sfu-agent notify` through the CLI (--help, and a publish via --endpoint-url)", async () => {
    const exec = promisify(execFile);
    const help = await exec(process.execPath, ["agent/cli.ts", "notify", "--help"], { cwd: ROOT });
    assert.match(help.stdout, /Usage: sfu-agent notify --topic-arn ARN --config FILE/);
    const file = join(dir, "config-1.yaml");
    await writeFile(file, configText(1));
    const r = await exec(
      process.execPath,
      ["agent/cli.ts", "notify", "--topic-arn", f.topicArn, "--config", file, "--endpoint-url", f.fx.endpoint],
      { cwd: ROOT, env: { ...process.env, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" } },
    );
    assert.match(r.stdout, new RegExp(`published ${await hashOf(1)}`));
  });
});
