/**
 * `npm run bench:admission`: review latency of `sfu-agent admission` as the
 * API server sees it. The real command runs as the component ships it
 * (k8s/components/admission/deployment.yaml: its args, and its memory and
 * CPU limits as child cgroups when this machine allows), over HTTPS with a
 * certificate made here, on one keep-alive connection (the API server reuses
 * its connections). Each request is an UPDATE review of the ConfigMap with
 * the object and the old object, like the API server's. Measured for the
 * shipped config (k8s/base/config.yaml) and a valid config of about 16 KiB,
 * allowed, and for an invalid config, denied; plus the same reviews in
 * process (agent/admission/review.ts, no TLS, no HTTP), to show what the
 * transport adds. The ratio of the p99 to the webhook's timeoutSeconds (5 s)
 * is the headroom.
 */
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { parse } from "yaml";
import { reviewAdmission } from "../agent/admission/review.ts";
import { createLimitCgroup, quantityBytes, quantityMillicores } from "../scripts/lib/container-limits.ts";
import { emitFigures, type Figure } from "./figures.ts";

const ROOT = resolve(import.meta.dirname, "..");
const CLI = join(ROOT, "agent", "cli.ts");
const WARMUP = 50;
const MEASURED = 400;
const TIMEOUT_SECONDS = 5;
const TARGET_BYTES = 16 * 1024;
const run = promisify(execFile);

/** A valid config of about 16 KiB (STUN servers, as the agent benchmark's). */
function bigConfig(): string {
  const head = `schemaVersion: 1\nserver:\n  port: 8080\nlogging:\n  level: info\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, h264, opus]\n  listenIp: 127.0.0.1\n  turnServers:\n`;
  let body = "";
  for (let i = 0; head.length + body.length < TARGET_BYTES - 60; i++) {
    body += `    - urls: ["stun:stun-${i}.example.net:3478"]  # relay ${i}\n`;
  }
  return head + body;
}

function review(text: string): string {
  const cm = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "sfu-config", namespace: "sfu" },
    data: { "config.yaml": text },
  };
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: randomUUID(),
      kind: { group: "", version: "v1", kind: "ConfigMap" },
      resource: { group: "", version: "v1", resource: "configmaps" },
      name: "sfu-config",
      namespace: "sfu",
      operation: "UPDATE",
      userInfo: { username: "bench" },
      object: cm,
      oldObject: cm,
      dryRun: false,
    },
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-admission-"));
  const f = (n: string) => join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.crt"),
    "-days",
    "1",
    "-subj",
    "/CN=bench-ca",
  ]);
  await run("openssl", ["req", "-new", ...ec, "-keyout", f("tls.key"), "-out", f("tls.csr"), "-subj", "/CN=localhost"]);
  await writeFile(f("tls.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await run("openssl", [
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
    "1",
    "-extfile",
    f("tls.ext"),
  ]);
  const ca = await readFile(f("ca.crt"), "utf8");

  const deployment = parse(await readFile(join(ROOT, "k8s", "components", "admission", "deployment.yaml"), "utf8"));
  const container = deployment.spec.template.spec.containers[0];
  const args: string[] = container.args
    .slice(1)
    .filter((a: string) => !/^--(listen|tls-cert-file|tls-key-file)=/.test(a));
  const limits = await createLimitCgroup({
    memoryBytes: quantityBytes(container.resources.limits.memory),
    cpuMillicores: quantityMillicores(String(container.resources.limits.cpu)),
  });
  const argv = [
    CLI,
    "admission",
    "--listen",
    "127.0.0.1:0",
    "--tls-cert-file",
    f("tls.crt"),
    "--tls-key-file",
    f("tls.key"),
    ...args,
  ];
  const [command, commandArgs] =
    "unavailable" in limits ? [process.execPath, argv] : limits.wrap(process.execPath, argv);
  const limitNote =
    "unavailable" in limits
      ? `no cgroup limits (${limits.unavailable})`
      : `under the container's limits (memory ${container.resources.limits.memory}, cpu ${container.resources.limits.cpu})`;
  const child = spawn(command, commandArgs, { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((res, rej) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = out.includes("admission webhook listening") ? /"port":(\d+)/.exec(out) : null;
      if (m) res(Number(m[1]));
    });
    child.once("exit", (code) => rej(new Error(`sfu-agent admission exited ${code}`)));
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const post = (body: string) =>
    new Promise<number>((res, rej) => {
      const t = performance.now();
      const req = request(
        {
          host: "127.0.0.1",
          port,
          servername: "localhost",
          ca,
          agent,
          method: "POST",
          path: "/validate",
          headers: { "content-type": "application/json" },
        },
        (r) => {
          r.resume();
          r.on("end", () =>
            r.statusCode === 200 ? res(performance.now() - t) : rej(new Error(`HTTP ${r.statusCode}`)),
          );
        },
      );
      req.on("error", rej);
      req.end(body);
    });
  const options = { configKey: "config.yaml", rolloutKey: "rollout.yaml", secretsDir: "/etc/sfu/secrets" };
  const inProcess = async (body: string) => {
    const t = performance.now();
    const r = await reviewAdmission(JSON.parse(body), options);
    if ("malformed" in r) throw new Error("malformed");
    return performance.now() - t;
  };
  const shipped = await readFile(join(ROOT, "k8s", "base", "config.yaml"), "utf8");
  const cases = [
    { name: "shipped", text: shipped },
    { name: "16kib", text: bigConfig() },
    { name: "invalid", text: shipped.replace(/level: info/, "level: loud") },
  ];
  const figures: Record<string, Figure> = {};
  process.stdout.write(
    `sfu-agent admission review latency: ${MEASURED} UPDATE reviews per case after ${WARMUP} warm-up, one keep-alive HTTPS connection, ${limitNote}, node ${process.version}\n`,
  );
  try {
    for (const c of cases) {
      const bytes = Buffer.byteLength(review(c.text));
      for (let i = 0; i < WARMUP; i++) await post(review(c.text));
      const https: number[] = [];
      const local: number[] = [];
      for (let i = 0; i < MEASURED; i++) https.push(await post(review(c.text)));
      for (let i = 0; i < MEASURED; i++) local.push(await inProcess(review(c.text)));
      https.sort((a, b) => a - b);
      local.sort((a, b) => a - b);
      const [p50, p99, l50, l99] = [
        percentile(https, 50),
        percentile(https, 99),
        percentile(local, 50),
        percentile(local, 99),
      ];
      process.stdout.write(
        `  ${c.name.padEnd(8)} config ${Buffer.byteLength(c.text)} B, review body ${bytes} B: HTTPS p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms; in process p50 ${l50.toFixed(2)} ms, p99 ${l99.toFixed(2)} ms; p99 is ${((p99 / (TIMEOUT_SECONDS * 1000)) * 100).toFixed(2)}% of timeoutSeconds\n`,
      );
      figures[`${c.name}_review_p50_ms`] = { value: p50, unit: "ms", better: "lower" };
      figures[`${c.name}_review_p99_ms`] = { value: p99, unit: "ms", better: "lower" };
      if (c.name !== "invalid") {
        figures[`${c.name}_in_process_p50_ms`] = { value: l50, unit: "ms", better: "lower" };
        figures[`${c.name}_p99_to_timeout_ratio`] = {
          value: p99 / (TIMEOUT_SECONDS * 1000),
          unit: "x",
          better: "lower",
        };
      }
    }
  } finally {
    agent.destroy();
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    if (!("unavailable" in limits)) await limits.remove();
    await rm(dir, { recursive: true, force: true });
  }
  emitFigures("admission", figures);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:admission: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
