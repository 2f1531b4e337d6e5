/**
 * The config source against a real directory: kubelet swaps, a transient
 * missing file, serialised reads and the resync timer.
 */
import assert from "node:assert/strict";
import { mkdtemp, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pino } from "pino";
import { type ConfigReading, ConfigSource } from "../../../agent/sidecar/config-source.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { configText, hashOf, sleep, until } from "./harness.ts";

const dirs: string[] = [];
const sources: ConfigSource[] = [];
after(async () => {
  for (const s of sources) await s.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function setup(options: Partial<ConstructorParameters<typeof ConfigSource>[1]> = {}) {
  const dir = await mkdtemp(join(tmpdir(), "sfu-source-"));
  dirs.push(dir);
  const writer = new AtomicWriter(dir);
  await writer.write({ "config.yaml": configText(1) });
  const readings: ConfigReading[] = [];
  const source = new ConfigSource(
    { logger: pino({ level: "silent" }), onReading: (r) => readings.push(r) },
    { dir, key: "config.yaml", ...options },
  );
  sources.push(source);
  await source.start();
  return { dir, writer, readings, source };
}

test("options are checked at construction", () => {
  const deps = { logger: pino({ level: "silent" }), onReading: () => {} };
  assert.throws(() => new ConfigSource(deps, { dir: "", key: "c" }), /dir/);
  assert.throws(() => new ConfigSource(deps, { dir: "/x", key: "a/b" }), /key/);
  assert.throws(() => new ConfigSource(deps, { dir: "/x", key: "c", debounceMs: -1 }), /debounceMs/);
});

test("the AtomicWriter layout is the kubelet's", async () => {
  const { dir, writer } = await setup();
  const { readdir, readlink } = await import("node:fs/promises");
  await writer.write({ "config.yaml": configText(2) });
  const entries = (await readdir(dir)).sort();
  assert.equal(entries.length, 3);
  assert.ok(entries.includes("..data") && entries.includes("config.yaml"));
  const ts = entries.find((e) => /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/.test(e));
  assert.ok(ts, `timestamped dir in ${entries.join(",")}`);
  assert.equal(await readlink(join(dir, "..data")), ts);
  assert.equal(await readlink(join(dir, "config.yaml")), "..data/config.yaml");
});

test("a swap is read as a 'swap'; the new hash is reported", async () => {
  const { writer, readings } = await setup();
  assert.equal(readings[0]?.trigger, "start");
  await writer.write({ "config.yaml": configText(2) });
  const want = await hashOf(configText(2));
  const r = await until(() => readings.find((x) => x.ok && x.hash === want));
  assert.equal(r.trigger, "swap");
});

test("a file missing briefly (ENOENT) is retried, not reported", async () => {
  const { dir, readings, source } = await setup({ notFoundRetries: 10, notFoundRetryMs: 30, resyncIntervalMs: 0 });
  const plain = join(dir, "config.yaml");
  await unlink(plain);
  source.trigger("resync");
  await sleep(60);
  // The file comes back whole (as after a swap): a plain writeFile would
  // expose an empty file for a moment, which is a different case.
  await writeFile(`${plain}.tmp`, configText(3));
  await rename(`${plain}.tmp`, plain);
  await until(() => readings.some((x) => x.ok && x.trigger === "resync"));
  assert.ok(!readings.some((x) => !x.ok), "no NOT_FOUND reported");
});

test("a file missing for good is reported as NOT_FOUND after the retries", async () => {
  const { dir, readings, source } = await setup({ notFoundRetries: 2, notFoundRetryMs: 10 });
  await unlink(join(dir, "config.yaml"));
  source.trigger("resync");
  const r = await until(() => readings.find((x) => !x.ok));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.code, "NOT_FOUND");
    assert.equal(r.rawHash, null);
  }
});

test("the resync timer re-reads without any event", async () => {
  const { readings } = await setup({ resyncIntervalMs: 150 });
  await until(() => readings.filter((x) => x.trigger === "resync").length >= 2, 3_000);
});

test("an invalid file carries line:column and the raw bytes' hash", async () => {
  const { writer, readings } = await setup();
  await writer.write({
    "config.yaml": "schemaVersion: 1\nserver: {port: 8080}\nwebrtc: {icePortRange: [1, 2], codecs: [vp8, opus]}\n",
  });
  const r = await until(() => readings.find((x) => !x.ok));
  if (r.ok) throw new Error("expected invalid");
  assert.match(r.message, /^config\.yaml:3:\d+: \/webrtc\/icePortRange\/0: /);
  assert.match(r.rawHash ?? "", /^sha256:[0-9a-f]{64}$/);
});
