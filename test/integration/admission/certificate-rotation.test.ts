/**
 * cert-manager renews the webhook's certificate into its Secret and the
 * kubelet swaps the mounted volume (the `..data` rename of AtomicWriter):
 * `sfu-agent admission` serves the new certificate to new connections
 * without a restart, keeps the connections already open (no dropped
 * request), and keeps the previous certificate when the new files do not
 * form a usable pair.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import {
  type AdmissionProcess,
  admissionReview,
  configMap,
  httpsRequest,
  startAdmission,
} from "../../helpers/admission.ts";
import { configText } from "../../helpers/config-text.ts";
import { makeCa, makeServerCert, type PemPair } from "../../helpers/tls-certs.ts";
import { until } from "../../helpers/until.ts";

let dir = "";
let ca: PemPair;
let volume: AtomicWriter;
let admission: AdmissionProcess;

/** The CN of the certificate a fresh TLS connection is served. */
function servedName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ca: ca.cert }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(String(cn));
    });
    s.on("error", reject);
  });
}

/** POSTs a review through `agent` (keep-alive); resolves with the status and whether the socket was reused. */
function reviewVia(agent: Agent, port: number): Promise<{ status: number; reused: boolean; allowed: boolean }> {
  const body = JSON.stringify(
    admissionReview({ operation: "UPDATE", object: configMap({ "config.yaml": configText(7) }) }).review,
  );
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        servername: "localhost",
        ca: ca.cert,
        agent,
        method: "POST",
        path: "/validate",
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d.toString();
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            reused: req.reusedSocket,
            allowed: JSON.parse(text).response.allowed === true,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function reloads(result: "ok" | "failed"): Promise<number> {
  const m = await httpsRequest(admission.port, ca.cert, { path: "/metrics" });
  const line = new RegExp(`^sfu_agent_admission_certificate_reloads_total\\{result="${result}"\\} (\\d+)$`, "m").exec(
    m.text,
  );
  return Number(line?.[1] ?? Number.NaN);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "sfu-admission-rotate-"));
  await mkdir(join(dir, "certs"));
  await mkdir(join(dir, "volume"));
  ca = await makeCa(join(dir, "certs"));
  const first = await makeServerCert(join(dir, "certs"), ca, "first");
  volume = new AtomicWriter(join(dir, "volume"));
  await volume.write({ "tls.crt": first.cert, "tls.key": first.key, "ca.crt": ca.cert }, { defaultMode: 0o440 });
  admission = await startAdmission([
    "--tls-cert-file",
    join(dir, "volume", "tls.crt"),
    "--tls-key-file",
    join(dir, "volume", "tls.key"),
    "--tls-poll-interval",
    "30s",
  ]);
});
after(async () => {
  await admission?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("sfu-agent admission: certificate rotation", () => {
  it("serves a renewed certificate without a restart and keeps open connections", async () => {
    assert.equal(await servedName(admission.port), "first");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await reviewVia(agent, admission.port);
      assert.deepEqual(before, { status: 200, reused: false, allowed: true });
      const okBefore = await reloads("ok");
      const second = await makeServerCert(join(dir, "certs"), ca, "second");
      await volume.write({ "tls.crt": second.cert, "tls.key": second.key, "ca.crt": ca.cert }, { defaultMode: 0o440 });
      // The change event, not the 30 s poll, brings it in.
      await until(async () => (await servedName(admission.port)) === "second", 5_000, "the renewed certificate");
      assert.equal(await reloads("ok"), okBefore + 1);
      const afterSwap = await reviewVia(agent, admission.port);
      assert.deepEqual(afterSwap, { status: 200, reused: true, allowed: true }, "the open connection keeps working");
      assert.equal(admission.child.exitCode, null, "no restart");
    } finally {
      agent.destroy();
    }
  });

  it("keeps the served certificate when the new files do not form a pair", async () => {
    const served = await servedName(admission.port);
    const failedBefore = await reloads("failed");
    const third = await makeServerCert(join(dir, "certs"), ca, "third");
    const fourth = await makeServerCert(join(dir, "certs"), ca, "fourth");
    await volume.write({ "tls.crt": third.cert, "tls.key": fourth.key, "ca.crt": ca.cert }, { defaultMode: 0o440 });
    await until(async () => (await reloads("failed")) === failedBefore + 1, 5_000, "the refused reload to be counted");
    assert.equal(await servedName(admission.port), served);
    assert.ok(admission.logs.some((l) => String(l["msg"]).includes("does not load")));
    assert.ok(!admission.output().includes("PRIVATE KEY"), "no key material in the logs");
    // The next good pair is taken.
    await volume.write({ "tls.crt": fourth.cert, "tls.key": fourth.key, "ca.crt": ca.cert }, { defaultMode: 0o440 });
    await until(async () => (await servedName(admission.port)) === "fourth", 5_000, "the next good certificate");
  });
});
