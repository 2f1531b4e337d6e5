/**
 * `sfu-agent admission` as the API server sees it: the real command in a
 * child process (its own flags, HTTPS on 127.0.0.1:0), AdmissionReview
 * requests shaped like the API server's, and a TLS client that trusts the
 * test CA.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { request } from "node:https";
import { join } from "node:path";
import { until } from "./until.ts";

const CLI = join(import.meta.dirname, "..", "..", "agent", "cli.ts");

/** A running `sfu-agent admission`. */
export interface AdmissionProcess {
  port: number;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** Everything written to stdout and stderr so far. */
  output: () => string;
  /** SIGTERM, then waits for the exit code. */
  stop: () => Promise<number | null>;
}

/** How {@link startAdmission} runs the process (default: this Node, no flags, this environment). */
export interface SpawnShape {
  /** Node flags before the script (e.g. the image's ENTRYPOINT flags). */
  nodeFlags?: string[];
  /** Extra environment (e.g. the image's ENV). */
  env?: Record<string, string>;
  /** Rewrites the command line, e.g. to join a cgroup first (scripts/lib/container-limits.ts). */
  wrap?: (command: string, args: string[]) => [string, string[]];
}

/** Starts `sfu-agent admission --listen 127.0.0.1:0 ...args` and waits until it listens. */
export async function startAdmission(args: string[], shape: SpawnShape = {}): Promise<AdmissionProcess> {
  const argv = [...(shape.nodeFlags ?? []), CLI, "admission", "--listen", "127.0.0.1:0", ...args];
  const [command, commandArgs] = shape.wrap ? shape.wrap(process.execPath, argv) : [process.execPath, argv];
  const child = spawn(command, commandArgs, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SFU_AGENT_SECRETS_DIR: "", ...shape.env },
  });
  let out = "";
  const logs: Record<string, unknown>[] = [];
  let partial = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const listening = await until(
    () => {
      if (child.exitCode !== null) throw new Error(`sfu-agent admission exited ${child.exitCode}: ${out}`);
      return logs.find((l) => l["msg"] === "admission webhook listening");
    },
    15_000,
    "sfu-agent admission to listen",
  );
  const port = (listening["address"] as { port: number }).port;
  return {
    port,
    child,
    logs,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** An HTTP reply read whole. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Sends one HTTPS request to 127.0.0.1:`port` trusting `ca` (server name `localhost`); a fresh connection each time. */
export function httpsRequest(
  port: number,
  ca: string,
  options: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        servername: "localhost",
        ca,
        method: options.method ?? "GET",
        path: options.path ?? "/",
        headers: options.headers ?? {},
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** POSTs an AdmissionReview (any value, JSON-encoded) to `/validate`. */
export function postReview(port: number, ca: string, review: unknown): Promise<Reply> {
  return httpsRequest(port, ca, {
    method: "POST",
    path: "/validate",
    body: typeof review === "string" ? review : JSON.stringify(review),
    headers: { "content-type": "application/json" },
  });
}

/** A ConfigMap object as the API server puts it in a review. */
export function configMap(
  data: Record<string, string>,
  name = "sfu-config",
  namespace = "sfu",
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name,
      namespace,
      uid: randomUUID(),
      resourceVersion: "1234",
      creationTimestamp: "2026-12-07T02:00:00Z",
    },
    data,
  };
}

/** Options of {@link admissionReview}. */
export interface ReviewShape {
  operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
  dryRun?: boolean;
  kind?: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  name?: string;
  namespace?: string;
}

/** An AdmissionReview `admission.k8s.io/v1` request as kube-apiserver sends it. */
export function admissionReview(shape: ReviewShape): { uid: string; review: Record<string, unknown> } {
  const uid = randomUUID();
  const kind = shape.kind ?? { group: "", version: "v1", kind: "ConfigMap" };
  const resource = shape.resource ?? { group: "", version: "v1", resource: "configmaps" };
  return {
    uid,
    review: {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: {
        uid,
        kind,
        resource,
        requestKind: kind,
        requestResource: resource,
        name: shape.name ?? "sfu-config",
        namespace: shape.namespace ?? "sfu",
        operation: shape.operation,
        userInfo: {
          username: "system:serviceaccount:argocd:argocd-application-controller",
          groups: ["system:authenticated"],
        },
        object: shape.object ?? null,
        oldObject: shape.oldObject ?? null,
        dryRun: shape.dryRun ?? false,
        options:
          shape.operation === "DELETE"
            ? { apiVersion: "meta.k8s.io/v1", kind: "DeleteOptions" }
            : {
                apiVersion: "meta.k8s.io/v1",
                kind: shape.operation === "CREATE" ? "CreateOptions" : "UpdateOptions",
                fieldManager: "argocd-controller",
              },
      },
    },
  };
}
