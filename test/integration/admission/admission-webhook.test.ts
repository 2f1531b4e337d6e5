/**
 * `sfu-agent admission` as the API server uses it: the real command in its
 * own process, HTTPS with a CA and certificate made here, AdmissionReview
 * requests shaped like kube-apiserver's. A denial carries exactly the lines
 * `sfu-agent validate --no-check-files` prints for the same file; what is not
 * ours (another kind, no config key, DELETE) is allowed untouched; malformed,
 * oversized and slow requests are refused without harming the next one.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import {
  type AdmissionProcess,
  admissionReview,
  configMap,
  httpsRequest,
  postReview,
  startAdmission,
} from "../../helpers/admission.ts";
import { cli } from "../../helpers/cli-run.ts";
import { configText } from "../../helpers/config-text.ts";
import { makeCa, makeServerCert, type PemPair } from "../../helpers/tls-certs.ts";

const REPO = join(import.meta.dirname, "..", "..", "..");
const SECRET = "s3cr3t-turn-password";
/** Two schema problems and one semantic one. */
const INVALID = `schemaVersion: 1
server:
  port: 70000
webrtc:
  icePortRange: [20100, 20000]
  codecs: [vp8, h265]
logging:
  level: loud
`;
const INVALID_WITH_SECRET = `schemaVersion: 1
server:
  port: 8080
webrtc:
  icePortRange: [20000, 20100]
  codecs: [vp8]
  turnServers:
    - urls: ["turn:turn.example.com:3478"]
      username: user1
      credential: ${SECRET}
`;
const BAD_POLICY = `schemaVersion: 1
steps:
  - { percent: 50, bake: 5m }
  - { percent: 10, bake: forever }
`;

let dir = "";
let ca: PemPair;
let admission: AdmissionProcess;

/** What `sfu-agent validate --no-check-files NAME` prints for `text` saved as NAME (run from the file's directory). */
async function validateLines(name: string, text: string): Promise<string[]> {
  const sub = await mkdtemp(join(dir, "validate-"));
  await writeFile(join(sub, name), text);
  const cwd = process.cwd();
  process.chdir(sub);
  try {
    const r = await cli("validate", "--no-check-files", name);
    assert.equal(r.code, 1, r.stdout);
    return r.stdout.trimEnd().split("\n");
  } finally {
    process.chdir(cwd);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: replies are navigated dynamically
async function review(shape: Parameters<typeof admissionReview>[0]): Promise<{ uid: string; response: any }> {
  const { uid, review: body } = admissionReview(shape);
  const r = await postReview(admission.port, ca.cert, body);
  assert.equal(r.status, 200, r.text);
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  const reply = JSON.parse(r.text);
  assert.equal(reply.apiVersion, "admission.k8s.io/v1");
  assert.equal(reply.kind, "AdmissionReview");
  assert.equal(reply.response.uid, uid, "the uid is echoed");
  return { uid, response: reply.response };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "sfu-admission-"));
  ca = await makeCa(dir);
  const server = await makeServerCert(dir, ca, "server", ["localhost", "sfu-config-admission.sfu.svc"]);
  admission = await startAdmission([
    "--tls-cert-file",
    server.certFile,
    "--tls-key-file",
    server.keyFile,
    "--secrets-dir",
    "/etc/sfu/secrets",
    "--request-timeout",
    "1s",
    "--max-body-bytes",
    "65536",
  ]);
});
after(async () => {
  const code = await admission?.stop();
  assert.equal(code, 0, "stops cleanly on SIGTERM");
  await rm(dir, { recursive: true, force: true });
});

describe("sfu-agent admission: verdicts", () => {
  it("allows a valid ConfigMap on CREATE and on UPDATE, without a status", async () => {
    for (const operation of ["CREATE", "UPDATE"] as const) {
      const object = configMap({ "config.yaml": configText(1) });
      const { response } = await review({
        operation,
        object,
        ...(operation === "UPDATE" ? { oldObject: configMap({ "config.yaml": configText(2) }) } : {}),
      });
      assert.equal(response.allowed, true, operation);
      assert.equal(response.status, undefined);
    }
    const shipped = await readFile(join(REPO, "k8s", "base", "config.yaml"), "utf8");
    assert.equal(
      (await review({ operation: "UPDATE", object: configMap({ "config.yaml": shipped }) })).response.allowed,
      true,
    );
  });

  it("denies an invalid config with 422 and exactly validate's lines, on CREATE, UPDATE and a dry run", async () => {
    const expected = await validateLines("config.yaml", INVALID);
    assert.ok(expected.length >= 3, expected.join("\n"));
    for (const shape of [
      { operation: "CREATE" as const },
      { operation: "UPDATE" as const, oldObject: configMap({ "config.yaml": configText(1) }) },
      { operation: "UPDATE" as const, dryRun: true },
    ]) {
      const { response } = await review({ ...shape, object: configMap({ "config.yaml": INVALID }) });
      assert.equal(response.allowed, false);
      assert.equal(response.status.code, 422);
      assert.deepEqual(response.status.message.split("\n"), expected);
    }
  });

  it("sends validate's warnings as warnings and never echoes a secret", async () => {
    const lines = await validateLines("config.yaml", INVALID_WITH_SECRET);
    const warnings = lines.filter((l) => l.includes(": warning: "));
    const problems = lines.filter((l) => !l.includes(": warning: "));
    assert.ok(warnings.length > 0 && problems.length > 0, lines.join("\n"));
    const { uid, response } = await review({
      operation: "UPDATE",
      object: configMap({ "config.yaml": INVALID_WITH_SECRET }),
    });
    assert.equal(response.allowed, false);
    assert.deepEqual(response.status.message.split("\n"), problems);
    assert.deepEqual(response.warnings, warnings);
    assert.ok(!JSON.stringify(response).includes(SECRET));
    const log = admission.logs.find((l) => l["uid"] === uid);
    assert.equal(log?.["outcome"], "denied");
    assert.ok(!admission.output().includes(SECRET), "the secret is not in the webhook's logs");
  });

  it("checks the rollout policy in the same ConfigMap with the rollout loader, only when present", async () => {
    const policyLines = await validateLines("rollout.yaml", BAD_POLICY);
    const withBad = configMap({ "config.yaml": configText(3), "rollout.yaml": BAD_POLICY });
    const denied = (await review({ operation: "UPDATE", object: withBad })).response;
    assert.equal(denied.allowed, false);
    assert.deepEqual(denied.status.message.split("\n"), policyLines);
    const shippedPolicy = await readFile(join(REPO, "k8s", "overlays", "example", "rollout.yaml"), "utf8");
    const withGood = configMap({ "config.yaml": configText(3), "rollout.yaml": shippedPolicy });
    assert.equal((await review({ operation: "UPDATE", object: withGood })).response.allowed, true);
    const both = configMap({ "config.yaml": INVALID, "rollout.yaml": BAD_POLICY });
    const message = (await review({ operation: "CREATE", object: both })).response.status.message.split("\n");
    assert.deepEqual(message, [...(await validateLines("config.yaml", INVALID)), ...policyLines]);
  });

  it("allows untouched: DELETE, another kind, a ConfigMap without the config key", async () => {
    const del = await review({ operation: "DELETE", oldObject: configMap({ "config.yaml": INVALID }) });
    assert.equal(del.response.allowed, true);
    const secret = await review({
      operation: "CREATE",
      kind: { group: "", version: "v1", kind: "Secret" },
      resource: { group: "", version: "v1", resource: "secrets" },
      object: { apiVersion: "v1", kind: "Secret", metadata: { name: "sfu-config" }, data: { "config.yaml": "eA==" } },
    });
    assert.equal(secret.response.allowed, true);
    const other = await review({ operation: "CREATE", object: configMap({ "other.yaml": INVALID }, "sfu-aws") });
    assert.equal(other.response.allowed, true);
    assert.equal(other.response.status, undefined);
  });

  it("judges binaryData like data (the kubelet mounts both)", async () => {
    const object = {
      ...configMap({}),
      data: undefined,
      binaryData: { "config.yaml": Buffer.from(INVALID).toString("base64") },
    };
    const { response } = await review({ operation: "CREATE", object });
    assert.deepEqual(response.status.message.split("\n"), await validateLines("config.yaml", INVALID));
  });
});

describe("sfu-agent admission: bad requests", () => {
  it("answers a malformed review with 400 and a wrong content type with 415", async () => {
    for (const body of [
      "{not json",
      "[]",
      JSON.stringify({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview" }),
    ]) {
      const r = await postReview(admission.port, ca.cert, body);
      assert.equal(r.status, 400, body);
      assert.ok(!r.text.includes(" at "), "no stack trace");
    }
    const noUid = admissionReview({ operation: "CREATE", object: configMap({ "config.yaml": INVALID }) }).review;
    delete (noUid["request"] as Record<string, unknown>)["uid"];
    assert.equal((await postReview(admission.port, ca.cert, noUid)).status, 400);
    const wrongType = await httpsRequest(admission.port, ca.cert, {
      method: "POST",
      path: "/validate",
      body: "{}",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(wrongType.status, 415);
    assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/validate" })).status, 405);
    assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/nope" })).status, 404);
  });

  it("refuses a huge body: declared (before reading) and streamed (while reading)", async () => {
    const huge = JSON.stringify(
      admissionReview({ operation: "CREATE", object: configMap({ "config.yaml": "#".repeat(200_000) }) }).review,
    );
    const declared = await postReview(admission.port, ca.cert, huge);
    assert.equal(declared.status, 413);
    // Chunked, no Content-Length, sent on and on: the 413 comes while the body still streams in.
    const streamed = await new Promise<{ status: number; sentWhenRefused: number }>((resolve, reject) => {
      let sent = 0;
      let refusedAt = -1;
      const socket = tlsConnect(
        { host: "127.0.0.1", port: admission.port, servername: "localhost", ca: ca.cert },
        () => {
          socket.write(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
          );
          const chunk = "x".repeat(16_384);
          const pump = setInterval(() => {
            if (!socket.writable || refusedAt >= 0) return clearInterval(pump);
            socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
            sent += chunk.length;
          }, 5);
        },
      );
      let text = "";
      socket.on("data", (d: Buffer) => {
        text += d.toString();
        if (refusedAt < 0 && text.startsWith("HTTP/1.1 ")) refusedAt = sent;
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
        m
          ? resolve({ status: Number(m[1]), sentWhenRefused: refusedAt })
          : reject(new Error(`no status: ${text.slice(0, 200)}`));
      });
    });
    assert.equal(streamed.status, 413);
    assert.ok(streamed.sentWhenRefused < 256 * 1024, `refused after ${streamed.sentWhenRefused} bytes (limit 65536)`);
    assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/healthz" })).status, 200);
  });

  it("disconnects a slow client at the request deadline while serving others", async () => {
    const started = performance.now();
    const slow = new Promise<string>((resolve) => {
      const socket = tlsConnect(
        { host: "127.0.0.1", port: admission.port, servername: "localhost", ca: ca.cert },
        () => {
          socket.write(
            'POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"a',
          );
          const drip = setInterval(() => socket.writable && socket.write(" "), 100);
          socket.once("close", () => clearInterval(drip));
        },
      );
      let text = "";
      socket.on("data", (d: Buffer) => {
        text += d.toString();
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve(text));
    });
    // A plain TCP client that never even starts the TLS handshake.
    const silent = new Promise<void>((resolve) => {
      const s = connect(admission.port, "127.0.0.1");
      s.on("error", () => {});
      s.on("close", () => resolve());
    });
    const { response } = await review({ operation: "CREATE", object: configMap({ "config.yaml": configText(4) }) });
    assert.equal(response.allowed, true, "others are served meanwhile");
    const text = await slow;
    assert.match(text, /^HTTP\/1\.1 408/);
    await silent;
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 900, `not before the 1 s deadline (${Math.round(elapsed)} ms)`);
  });
});

describe("sfu-agent admission: health and metrics", () => {
  it("serves /healthz, /readyz and counts reviews by result in /metrics", async () => {
    assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/healthz" })).status, 200);
    assert.equal((await httpsRequest(admission.port, ca.cert, { path: "/readyz" })).status, 200);
    const count = async (result: string) => {
      const m = await httpsRequest(admission.port, ca.cert, { path: "/metrics" });
      const line = new RegExp(`^sfu_agent_admission_reviews_total\\{result="${result}"\\} (\\d+)$`, "m").exec(m.text);
      assert.ok(line, `reviews_total{result="${result}"} in:\n${m.text.slice(0, 400)}`);
      return Number(line[1]);
    };
    const before = { allowed: await count("allowed"), denied: await count("denied"), error: await count("error") };
    await review({ operation: "CREATE", object: configMap({ "config.yaml": configText(5) }) });
    await review({ operation: "CREATE", object: configMap({ "config.yaml": INVALID }) });
    await postReview(admission.port, ca.cert, "{");
    assert.equal(await count("allowed"), before.allowed + 1);
    assert.equal(await count("denied"), before.denied + 1);
    assert.equal(await count("error"), before.error + 1);
    const m = await httpsRequest(admission.port, ca.cert, { path: "/metrics" });
    assert.match(m.text, /^sfu_agent_admission_review_duration_seconds_bucket\{le="0\.1",result="denied"\} \d+$/m);
    assert.match(m.text, /^sfu_agent_admission_certificate_expiry_timestamp_seconds \d+/m);
  });

  it("refuses to start without a usable certificate (exit 1) or without the TLS flags (exit 2)", async () => {
    const usage = await cli("admission", "--listen", "127.0.0.1:0");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--tls-cert-file and --tls-key-file are required/);
    const other = await makeServerCert(dir, ca, "other");
    const mismatched = await cli(
      "admission",
      "--listen",
      "127.0.0.1:0",
      "--tls-cert-file",
      join(dir, "server.crt"),
      "--tls-key-file",
      other.keyFile,
    );
    assert.equal(mismatched.code, 1);
    assert.match(mismatched.stderr, /server\.crt.*other\.key/);
  });
});
