/**
 * Which AWS SDK client packages a real `sfu-agent` process loads, per mode:
 * each command runs as a child process (`node agent/cli.ts`) with the
 * test/helpers/aws-sdk-trace.ts preload, which prints at exit every
 * `@aws-sdk/client-*` package the process resolved. `validate` and a
 * watch-only `run` load none; per-pod queue mode loads SNS and SQS, and S3
 * only with `--rollout-state`; `notify` without `--wait` loads SNS only.
 * SNS, SQS and S3 come from fauxqs on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { CreateTopicCommand } from "@aws-sdk/client-sns";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { goodConfig } from "../../helpers/hostile-configs.ts";
import { until } from "../../helpers/until.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const CLI = join(ROOT, "agent", "cli.ts");
const TRACE = join(ROOT, "test", "helpers", "aws-sdk-trace.ts");
const TRACE_PREFIX = "AWS_SDK_LOADED ";
const SNS = "@aws-sdk/client-sns";
const SQS = "@aws-sdk/client-sqs";
const S3 = "@aws-sdk/client-s3";

interface Traced {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The packages printed by the preload at exit. */
  loaded: string[];
}

/**
 * Runs `sfu-agent ...args` with the trace preload. With `running`, waits for
 * the agent's start line, awaits `running(httpUrl)`, then sends SIGTERM.
 */
function traced(args: string[], running?: (http: string) => Promise<void>): Promise<Traced> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", TRACE, CLI, ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: FAUXQS_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: FAUXQS_CREDENTIALS.secretAccessKey,
      },
      timeout: 30_000,
    });
    let stdout = "";
    let stderr = "";
    let signalled = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split("\n").find((l) => l.includes('"agent started"'));
      if (running && line && !signalled) {
        signalled = true;
        const http = (JSON.parse(line) as { http: string }).http;
        running(http).then(
          () => child.kill("SIGTERM"),
          (err: unknown) => {
            child.kill("SIGKILL");
            reject(err);
          },
        );
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const line = stderr.split("\n").find((l) => l.startsWith(TRACE_PREFIX));
      if (line === undefined) return reject(new Error(`no trace line (exit ${code})\n${stderr}`));
      resolve({ code, stdout, stderr, loaded: JSON.parse(line.slice(TRACE_PREFIX.length)) as string[] });
    });
  });
}

/** Resolves once /status shows the per-pod queue provisioned (created and subscribed). */
async function queueProvisioned(http: string): Promise<void> {
  await until(
    async () => {
      const status = (await (await fetch(`${http}/status`)).json()) as { queue?: { url: string | null } };
      return Boolean(status.queue?.url);
    },
    15_000,
    "the per-pod queue provisioned",
  );
}

describe("AWS SDK packages loaded by sfu-agent, per mode", { concurrency: true, timeout: 60_000 }, () => {
  let fauxqs: FauxqsHandle;
  let dir: string;
  let topicArn: string;
  const aws = () => ["--endpoint-url", fauxqs.endpoint, "--region", FAUXQS_REGION];
  const run = () => ["run", "--config-dir", dir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"];

  before(async () => {
    fauxqs = await startFauxqs();
    dir = await mkdtemp(join(tmpdir(), "sfu-sdk-loading-"));
    await writeFile(join(dir, "config.yaml"), goodConfig(1));
    const clients = fauxqs.clients();
    topicArn = (await clients.sns.send(new CreateTopicCommand({ Name: "sfu-sdk-loading" }))).TopicArn as string;
    clients.destroy();
    const s3 = createS3Client({ endpointUrl: fauxqs.endpoint, region: FAUXQS_REGION, credentials: FAUXQS_CREDENTIALS });
    await s3.send(new CreateBucketCommand({ Bucket: "sfu-sdk-loading" }));
    s3.destroy();
  });
  after(async () => {
    await fauxqs.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("validate loads none", async () => {
    const r = await traced(["validate", join(dir, "config.yaml")]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.loaded, []);
  });

  it("run in watch-only mode loads none", async () => {
    const r = await traced(run(), async () => {});
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.loaded, []);
  });

  it("run in per-pod queue mode loads SNS and SQS, not S3", async () => {
    const r = await traced([...run(), "--topic-arn", topicArn, ...aws(), "--pod-name", "sfu-sdk-0"], queueProvisioned);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.loaded, [SNS, SQS]);
  });

  it("run in per-pod queue mode with --rollout-state also loads S3", async () => {
    const state = ["--rollout-state", "s3://sfu-sdk-loading/rollout-state.json"];
    const r = await traced(
      [...run(), "--topic-arn", topicArn, ...aws(), "--pod-name", "sfu-sdk-1", ...state],
      queueProvisioned,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.loaded, [S3, SNS, SQS]);
  });

  it("notify without --wait loads SNS only", async () => {
    const r = await traced(["notify", "--topic-arn", topicArn, "--config", join(dir, "config.yaml"), ...aws()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^published sha256:/m);
    assert.deepEqual(r.loaded, [SNS]);
  });
});
