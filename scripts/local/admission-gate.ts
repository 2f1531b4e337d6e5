/**
 * `npm start -- --admission`: the admission webhook in front of the local
 * kubelet stand-in. A real `sfu-agent admission` runs over HTTPS (a CA and
 * certificate made here with the `openssl` CLI); every edit of the source
 * config is sent to it as the API server would send the ConfigMap update
 * (AdmissionReview v1, UPDATE of ConfigMap sfu/sfu-config), before the hook
 * runs and before the kubelet writes anything. A denial stops the edit
 * there, as a failed Argo CD sync would; a webhook that does not answer
 * refuses too (failurePolicy Fail).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import { AGENT_CLI } from "./processes.ts";

const run = promisify(execFile);

/** The webhook's verdict on one edit. */
export interface AdmissionVerdict {
  allowed: boolean;
  /** The denial's lines (`sfu-agent validate`'s), or why the webhook could not be called; empty when allowed. */
  message: string;
  warnings: string[];
}

/** A running local admission webhook. */
export interface LocalAdmission {
  /** `https://127.0.0.1:PORT/validate`. */
  url: string;
  /** Reviews the ConfigMap the kubelet would mount (key -> content) as an UPDATE of sfu/sfu-config. */
  review(data: Record<string, string>): Promise<AdmissionVerdict>;
  stop(): Promise<void>;
}

/** Options of {@link startLocalAdmission}. */
export interface LocalAdmissionOptions {
  /** Where the certificates and the webhook's log go. */
  dir: string;
  /** The pods' `--secrets-dir`, for the same secret path rules. */
  secretsDir: string;
  /** The webhook's deadline (its `--request-timeout`; the review call waits one second more). */
  requestTimeoutMs?: number;
}

async function makeCertificate(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (name: string) => join(dir, name);
  const openssl = (args: string[]) => run("openssl", args, { timeout: 20_000 });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.crt"),
    "-days",
    "7",
    "-subj",
    "/CN=sfu-config-local-ca",
  ]);
  await openssl([
    "req",
    "-new",
    ...ec,
    "-keyout",
    f("tls.key"),
    "-out",
    f("tls.csr"),
    "-subj",
    "/CN=sfu-config-admission",
  ]);
  await writeFile(f("tls.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    f("tls.csr"),
    "-CA",
    f("ca.crt"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-out",
    f("tls.crt"),
    "-days",
    "7",
    "-extfile",
    f("tls.ext"),
  ]);
  return { ca: await readFile(f("ca.crt"), "utf8"), cert: f("tls.crt"), key: f("tls.key") };
}

/** Starts `sfu-agent admission` on 127.0.0.1 (any free port) and resolves once it listens. */
export async function startLocalAdmission(opts: LocalAdmissionOptions): Promise<LocalAdmission> {
  await mkdir(opts.dir, { recursive: true });
  const { ca, cert, key } = await makeCertificate(opts.dir);
  const timeoutMs = opts.requestTimeoutMs ?? 4000;
  const child: ChildProcess = spawn(
    process.execPath,
    [
      AGENT_CLI,
      "admission",
      "--listen",
      "127.0.0.1:0",
      "--tls-cert-file",
      cert,
      "--tls-key-file",
      key,
      "--secrets-dir",
      opts.secretsDir,
      "--request-timeout",
      `${timeoutMs}ms`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /"msg":"admission webhook listening"/.test(log) ? /"port":(\d+)/.exec(log) : null;
      if (m) resolve(Number(m[1]));
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`sfu-agent admission exited ${code}: ${log.slice(-500)}`)));
  });
  child.stdout?.on("data", () => {}); // keep draining
  const url = `https://127.0.0.1:${port}/validate`;
  return {
    url,
    review: (data) => reviewOnce(port, ca, data, timeoutMs + 1000),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function reviewOnce(
  port: number,
  ca: string,
  data: Record<string, string>,
  timeoutMs: number,
): Promise<AdmissionVerdict> {
  const uid = randomUUID();
  const object = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "sfu-config", namespace: "sfu" }, data };
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "ConfigMap" },
      resource: { group: "", version: "v1", resource: "configmaps" },
      name: "sfu-config",
      namespace: "sfu",
      operation: "UPDATE",
      userInfo: { username: "local" },
      object,
      oldObject: null,
      dryRun: false,
    },
  });
  // failurePolicy Fail: anything but a verdict for this uid refuses the edit.
  const refuse = (why: string): AdmissionVerdict => ({
    allowed: false,
    message: `failed calling webhook "config.sfu-config.dev": ${why}`,
    warnings: [],
  });
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        servername: "localhost",
        ca,
        method: "POST",
        path: "/validate",
        agent: false,
        headers: { "content-type": "application/json" },
        timeout: timeoutMs,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          if (text.length < 1024 * 1024) text += d;
        });
        res.on("end", () => {
          try {
            const r = JSON.parse(text).response;
            if (res.statusCode !== 200 || r?.uid !== uid)
              return resolve(refuse(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
            resolve({ allowed: r.allowed === true, message: r.status?.message ?? "", warnings: r.warnings ?? [] });
          } catch {
            resolve(refuse(`HTTP ${res.statusCode}: not an AdmissionReview`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (err) => resolve(refuse(err.message)));
    req.end(body);
  });
}
