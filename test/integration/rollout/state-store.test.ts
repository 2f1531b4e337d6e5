/**
 * The rollout state store (agent/aws/state-store.ts) against fauxqs's S3:
 * a missing object, a round trip, and every way a stored object can be wrong
 * (too large, not JSON, not the schema, a stable config that is invalid or
 * does not match its hash), each refused with a typed error; S3 failures are
 * bounded; the only actions made are s3:GetObject and s3:PutObject.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createS3Client } from "../../../agent/aws/aws-clients.ts";
import {
  MAX_STATE_BYTES,
  parseS3Url,
  type RolloutStateError,
  RolloutStateStore,
} from "../../../agent/aws/state-store.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import type { RolloutState } from "../../../protocol/rollout-schema.ts";
import { FAUXQS_CREDENTIALS, FAUXQS_REGION, type FauxqsHandle, startFauxqs } from "../../../scripts/local/fauxqs.ts";
import { configText } from "../../helpers/config-text.ts";

const BUCKET = "sfu-rollout";

async function stableOf(n: number) {
  const r = await loadConfigText(configText(n), { checkFiles: false });
  if (!r.ok) throw new Error("bad fixture");
  return { hash: r.hash, revision: `rev-${n}`, config: r.config };
}

describe("rollout state store on S3 (fauxqs)", { timeout: 60_000 }, () => {
  let fx: FauxqsHandle;
  let s3: S3Client;
  let admin: S3Client;
  const calls: string[] = [];

  before(async () => {
    fx = await startFauxqs();
    const base = {
      endpointUrl: fx.endpoint,
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
    };
    s3 = createS3Client({ ...base, onCall: (a) => calls.push(a) });
    admin = createS3Client(base);
    await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    s3.destroy();
    admin.destroy();
    await fx.stop();
  });

  const store = (key: string) =>
    new RolloutStateStore({ url: `s3://${BUCKET}/${key}`, s3, backoff: { baseMs: 5, maxMs: 20 } });
  const put = (key: string, body: string) => admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

  it("reads a missing object as null, then round-trips a state", async () => {
    const st = store("rt/state.json");
    assert.equal(await st.read(), null);
    const state: RolloutState = {
      type: "sfu-config.rollout-state",
      updatedAt: new Date().toISOString(),
      stable: await stableOf(1),
      candidate: {
        id: "5b2c",
        hash: (await stableOf(2)).hash,
        revision: "rev-2",
        state: "halted",
        step: 1,
        threshold: 0.25,
        reason: { step: 1, criterion: "iceFailureRate", pods: ["sfu-0"], detail: "0.5 > 0.1" },
      },
    };
    await st.write(state);
    assert.deepEqual(await st.read(), state);
  });

  it("refuses an object over 2 MiB", async () => {
    await put("big.json", "x".repeat(MAX_STATE_BYTES + 1));
    await assert.rejects(store("big.json").read(), (e: RolloutStateError) => e.code === "STATE_TOO_LARGE");
  });

  it("refuses text that is not JSON, or not the state schema", async () => {
    await put("notjson.json", "{ nope");
    await assert.rejects(
      store("notjson.json").read(),
      (e: RolloutStateError) => e.code === "STATE_INVALID" && /not JSON/.test(e.message),
    );
    await put("schema.json", JSON.stringify({ type: "sfu-config.rollout-state", updatedAt: "x", stable: null }));
    await assert.rejects(
      store("schema.json").read(),
      (e: RolloutStateError) => e.code === "STATE_INVALID" && /schema/.test(e.message),
    );
    await put(
      "thr.json",
      JSON.stringify({
        type: "sfu-config.rollout-state",
        updatedAt: new Date().toISOString(),
        stable: null,
        candidate: {
          id: "a",
          hash: (await stableOf(1)).hash,
          revision: null,
          state: "running",
          step: 0,
          threshold: 2,
          reason: null,
        },
      }),
    );
    await assert.rejects(
      store("thr.json").read(),
      (e: RolloutStateError) => e.code === "STATE_INVALID" && /threshold/.test(e.message),
    );
  });

  it("refuses a stable config that is invalid or does not match its recorded hash", async () => {
    const good = await stableOf(3);
    const base = { type: "sfu-config.rollout-state", updatedAt: new Date().toISOString(), candidate: null };
    await put("mismatch.json", JSON.stringify({ ...base, stable: { ...good, hash: (await stableOf(4)).hash } }));
    await assert.rejects(
      store("mismatch.json").read(),
      (e: RolloutStateError) => e.code === "STATE_INVALID" && /hashes to/.test(e.message),
    );
    await put(
      "badcfg.json",
      JSON.stringify({
        ...base,
        stable: { ...good, config: { ...good.config, webrtc: { ...good.config.webrtc, codecs: ["vp8"] } } },
      }),
    );
    await assert.rejects(
      store("badcfg.json").read(),
      (e: RolloutStateError) => e.code === "STATE_INVALID" && /audio codec/.test(e.message),
    );
  });

  it("refuses to write a state that breaks the schema", async () => {
    const bad = {
      type: "sfu-config.rollout-state",
      updatedAt: new Date().toISOString(),
      stable: null,
      candidate: { id: "" },
    } as unknown as RolloutState;
    await assert.rejects(store("w.json").write(bad), (e: RolloutStateError) => e.code === "STATE_INVALID");
  });

  it("a missing bucket fails at once; an unreachable endpoint fails after bounded retries", async () => {
    const nb = new RolloutStateStore({ url: "s3://no-such-bucket/k", s3 });
    await assert.rejects(
      nb.read(),
      (e: RolloutStateError) => e.code === "STATE_READ_FAILED" && /NoSuchBucket/.test(e.message),
    );
    const down = new RolloutStateStore({
      url: `s3://${BUCKET}/k`,
      endpointUrl: "http://127.0.0.1:1",
      region: FAUXQS_REGION,
      credentials: FAUXQS_CREDENTIALS,
      callLogFile: null,
      attempts: 2,
      backoff: { baseMs: 5, maxMs: 10 },
    });
    const t0 = performance.now();
    await assert.rejects(down.read(), (e: RolloutStateError) => e.code === "STATE_READ_FAILED");
    await assert.rejects(
      down.write({
        type: "sfu-config.rollout-state",
        updatedAt: new Date().toISOString(),
        stable: null,
        candidate: null,
      }),
      (e: RolloutStateError) => e.code === "STATE_WRITE_FAILED",
    );
    assert.ok(performance.now() - t0 < 20_000);
    down.destroy();
  });

  it("parses s3:// URLs and refuses others", () => {
    assert.deepEqual(parseS3Url("s3://bucket-1/a/b.json"), { bucket: "bucket-1", key: "a/b.json" });
    assert.equal(typeof parseS3Url("https://bucket/x"), "string");
    assert.equal(typeof parseS3Url("s3://bucket"), "string");
    assert.equal(typeof parseS3Url("s3://UPPER/x"), "string");
    assert.throws(
      () => new RolloutStateStore({ url: "s3:/x" }),
      (e: RolloutStateError) => e.code === "STATE_URL",
    );
  });

  it("makes no AWS call but s3:GetObject and s3:PutObject", () => {
    assert.deepEqual([...new Set(calls)].sort(), ["s3:GetObject", "s3:PutObject"]);
  });
});
