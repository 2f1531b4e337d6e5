/**
 * Hostile AdmissionReview bodies against `sfu-agent admission` as the image
 * runs it (Dockerfile.agent's node flags and ENV) under the webhook
 * container's limits from k8s/components/admission/deployment.yaml (memory
 * and CPU as child cgroups; without cgroups, `--max-old-space-size` and the
 * test says so). Each hostile config of the family
 * (test/helpers/hostile-configs.ts) arrives in an UPDATE whose old object is
 * the same file (the largest review the API server sends for it); then raw
 * bodies: deep JSON nesting, a flood of keys, invalid UTF-8, a body over the
 * limit, oversized base64, and a burst of large reviews at once.
 *
 * For every one: the process stays up (no OOM kill), nothing invalid is
 * allowed, a hostile config is denied with the problem a user should see,
 * no secret of the file reaches the reply or the log, replies stay small,
 * and a good review is allowed afterwards.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import {
  createLimitCgroup,
  type LimitCgroup,
  quantityBytes,
  quantityMillicores,
} from "../../../scripts/lib/container-limits.ts";
import { nodeEntrypoint, readDockerfile, type Stage, stageEnv } from "../../../scripts/lib/dockerfile.ts";
import {
  type AdmissionProcess,
  admissionReview,
  configMap,
  httpsRequest,
  postReview,
  startAdmission,
} from "../../helpers/admission.ts";
import { goodConfig, hostileConfigs } from "../../helpers/hostile-configs.ts";
import { makeCa, makeServerCert, type PemPair } from "../../helpers/tls-certs.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const CASES = hostileConfigs().filter((c) => c.smallerOf === null);
const SECRETS = CASES.map((c) => c.secret).filter((s): s is string => s !== null);
const MAX_REPLY_BYTES = 64 * 1024;

let dir = "";
let ca: PemPair;
let admission: AdmissionProcess;
let cgroup: LimitCgroup | null = null;

/** The webhook container's args and limits, as shipped. */
async function shippedContainer(): Promise<{ args: string[]; memory: string; cpu: string }> {
  const d = parse(await readFile(join(ROOT, "k8s", "components", "admission", "deployment.yaml"), "utf8"));
  const c = d.spec.template.spec.containers[0];
  return { args: c.args, memory: c.resources.limits.memory, cpu: String(c.resources.limits.cpu) };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "sfu-admission-hostile-"));
  ca = await makeCa(dir);
  const server = await makeServerCert(dir, ca, "server");
  const runtime = (await readDockerfile(join(ROOT, "Dockerfile.agent"))).at(-1) as Stage;
  const entry = nodeEntrypoint(runtime);
  const shipped = await shippedContainer();
  const limits = await createLimitCgroup({
    memoryBytes: quantityBytes(shipped.memory),
    cpuMillicores: quantityMillicores(shipped.cpu),
  });
  const nodeFlags = [...entry.nodeFlags];
  if ("unavailable" in limits) {
    nodeFlags.push(`--max-old-space-size=${Math.floor(quantityBytes(shipped.memory) / 2 ** 20 / 2)}`);
    process.stdout.write(`# NO cgroup (${limits.unavailable}): --max-old-space-size only\n`);
  } else {
    cgroup = limits;
    process.stdout.write(`# cgroup limits of the admission container: memory ${shipped.memory}, cpu ${shipped.cpu}\n`);
  }
  // The shipped flags (request timeout, keys, secrets dir) but this machine's certificate and address.
  const args = shipped.args.slice(1).filter((a) => !/^--(listen|tls-cert-file|tls-key-file)=/.test(a));
  admission = await startAdmission([...args, "--tls-cert-file", server.certFile, "--tls-key-file", server.keyFile], {
    nodeFlags,
    env: stageEnv(runtime),
    ...(cgroup ? { wrap: cgroup.wrap } : {}),
  });
});
after(async () => {
  await admission?.stop();
  await cgroup?.remove();
  await rm(dir, { recursive: true, force: true });
});

async function assertAlive(what: string): Promise<void> {
  assert.equal(admission.child.exitCode, null, `${what}: the webhook exited: ${admission.output().slice(-2000)}`);
  if (cgroup) assert.equal((await cgroup.memoryStats()).oomKills ?? 0, 0, `${what}: OOM kill`);
  assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/healthz" })).status, 200, what);
  const good = admissionReview({ operation: "UPDATE", object: configMap({ "config.yaml": goodConfig() }) }).review;
  const r = await postReview(admission.port, ca.cert, good);
  assert.equal(JSON.parse(r.text).response.allowed, true, `${what}: a good review is allowed after it`);
}

describe("sfu-agent admission: hostile configs in a review", () => {
  for (const c of CASES) {
    it(`${c.name}: denied with what is wrong (${c.description})`, async () => {
      const cm = configMap({ "config.yaml": c.text });
      const { uid, review } = admissionReview({ operation: "UPDATE", object: cm, oldObject: cm });
      const r = await postReview(admission.port, ca.cert, review);
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.ok(r.text.length <= MAX_REPLY_BYTES, `reply of ${r.text.length} bytes`);
      const response = JSON.parse(r.text).response;
      assert.equal(response.uid, uid);
      assert.equal(response.allowed, false);
      assert.equal(response.status.code, 422);
      assert.match(response.status.message, c.problem);
      assert.match(response.status.message, /^config\.yaml:\d+:\d+: /);
      for (const line of response.status.message.split("\n")) {
        assert.doesNotMatch(line, /[\u0000-\u001f\u007f]/, "no raw control character reaches a terminal");
      }
      for (const s of SECRETS) assert.ok(!r.text.includes(s), `${c.name}: a secret is in the reply`);
      await assertAlive(c.name);
    });
  }
  it("logs no secret of any of them", () => {
    for (const s of SECRETS) assert.ok(!admission.output().includes(s), "a secret is in the log");
  });
});

describe("sfu-agent admission: hostile bodies", () => {
  const send = (body: string | Buffer) =>
    httpsRequest(admission.port, ca.cert, {
      method: "POST",
      path: "/validate",
      body,
      headers: { "content-type": "application/json" },
    });

  it("deep nesting, a key flood, invalid UTF-8: 400 or a denial, never an allow", async () => {
    const deep = "[".repeat(2_000_000);
    const keys = `{${Array.from({ length: 150_000 }, (_, i) => `"k${i}":0`).join(",")}}`;
    const badUtf8 = Buffer.concat([
      Buffer.from('{"apiVersion":"admission.k8s.io/v1","kind":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    for (const [what, body] of [
      ["deep nesting", deep],
      ["a key flood", keys],
      ["invalid UTF-8", badUtf8],
    ] as const) {
      const r = await send(body);
      assert.equal(r.status, 400, `${what}: ${r.text.slice(0, 200)}`);
      await assertAlive(what);
    }
  });

  it("a body over the limit is refused with 413; base64 over 1 MiB is denied", async () => {
    const over = await send(`{"x":"${"a".repeat(4 * 1024 * 1024)}"}`);
    assert.equal(over.status, 413);
    const big = { ...configMap({}), data: undefined, binaryData: { "config.yaml": "QUFB".repeat(400_000) } };
    const r = await postReview(admission.port, ca.cert, admissionReview({ operation: "CREATE", object: big }).review);
    assert.equal(JSON.parse(r.text).response.allowed, false);
    await assertAlive("oversized bodies");
  });

  it("a burst of large reviews at once: each answered (a verdict or 503 retry), the process stays up", async () => {
    const largest = CASES.reduce((a, b) => (Buffer.byteLength(a.text) >= Buffer.byteLength(b.text) ? a : b));
    const cm = configMap({ "config.yaml": largest.text });
    const replies = await Promise.all(
      Array.from({ length: 16 }, () =>
        postReview(admission.port, ca.cert, admissionReview({ operation: "UPDATE", object: cm, oldObject: cm }).review),
      ),
    );
    for (const r of replies) {
      assert.ok(r.status === 200 || r.status === 503, `status ${r.status}`);
      if (r.status === 200) assert.equal(JSON.parse(r.text).response.allowed, false);
    }
    assert.ok(
      replies.some((r) => r.status === 200),
      "some are judged",
    );
    await assertAlive("the burst");
  });
});
