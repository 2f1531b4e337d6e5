/**
 * How many pods `sfu-agent notify --wait` waits for, read from the
 * Deployment itself (`--expect-deployment NS/NAME`) instead of a constant
 * that goes stale when the replica count changes (by hand, an overlay or an
 * HPA). One `GET /apis/apps/v1/namespaces/NS/deployments/NAME` through the
 * in-cluster API, authenticated with the pod's ServiceAccount token; the
 * hook's Role grants exactly `get` on that one Deployment
 * (k8s/base/hook-rbac.yaml).
 *
 * Every expected failure (no in-cluster environment, refused, timeout,
 * 403/404, a body that is not a Deployment) is a returned value with a code
 * and a message naming what to fix.
 */
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { type JsonLimits, parseBoundedJson } from "../../protocol/bounded-json.ts";

/** Where the Kubernetes API is and how to authenticate to it. */
export interface KubeApiTarget {
  /** Base URL, e.g. `https://10.100.0.1:443` (tests: `http://127.0.0.1:PORT`). */
  url: string;
  /** Bearer token (the ServiceAccount token), or null for none. */
  token: string | null;
  /** CA bundle that signs the API server's certificate (https only), or null for the system CAs. */
  ca: Buffer | null;
}

/** The replica counts of a Deployment, from its spec and status. */
export interface DeploymentReplicas {
  /** `spec.replicas` (1 when unset, as the API server defaults it). */
  desired: number;
  /** `status.replicas`: pods that exist (not terminating), old and new. */
  current: number;
  /** `status.readyReplicas`: pods ready now (0 when unset). */
  ready: number;
}

/** Codes of {@link DeploymentReadError}. */
export type DeploymentReadCode =
  | "NOT_IN_CLUSTER"
  | "API_UNREACHABLE"
  | "API_TIMEOUT"
  | "API_FORBIDDEN"
  | "DEPLOYMENT_NOT_FOUND"
  | "API_ERROR"
  | "BAD_RESPONSE";

/** A failed read, as a value. */
export interface DeploymentReadError {
  code: DeploymentReadCode;
  message: string;
}

/** Result of {@link readDeploymentReplicas}. */
export type DeploymentReadResult = ({ ok: true } & DeploymentReplicas) | ({ ok: false } & DeploymentReadError);

/** Where a pod finds its ServiceAccount token and the cluster CA. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A Deployment JSON is a few KiB; anything past this is not one. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Limits on a Deployment answer: MAX_BODY_BYTES, 32 levels deep (a pod template nests about 12), the config file's value and key limits. */
export const DEPLOYMENT_JSON_LIMITS: Readonly<JsonLimits> = { maxBytes: MAX_BODY_BYTES, maxDepth: 32 };

/**
 * The in-cluster API target: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
 * mounted ServiceAccount token and CA (`automountServiceAccountToken: true`
 * on the pod). A failure says which piece is missing.
 */
export async function inClusterApi(
  env: Record<string, string | undefined>,
  dir = SERVICE_ACCOUNT_DIR,
): Promise<{ ok: true; api: KubeApiTarget } | ({ ok: false } & DeploymentReadError)> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT || "443";
  if (!host)
    return {
      ok: false,
      code: "NOT_IN_CLUSTER",
      message: "KUBERNETES_SERVICE_HOST is not set: --expect-deployment works inside a pod (use --expect N elsewhere)",
    };
  let token: string;
  let ca: Buffer;
  try {
    token = (await readFile(`${dir}/token`, "utf8")).trim();
    ca = await readFile(`${dir}/ca.crt`);
  } catch (err) {
    return {
      ok: false,
      code: "NOT_IN_CLUSTER",
      message: `no ServiceAccount token in ${dir} (${(err as NodeJS.ErrnoException).code ?? "unreadable"}): set automountServiceAccountToken: true on the hook's pod`,
    };
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return { ok: true, api: { url: `https://${hostPart}:${port}`, token, ca } };
}

/** Reads `namespace/name`'s replica counts; resolves once, never rejects. */
export function readDeploymentReplicas(
  api: KubeApiTarget,
  namespace: string,
  name: string,
  timeoutMs = 10_000,
): Promise<DeploymentReadResult> {
  const what = `deployment ${namespace}/${name}`;
  const url = new URL(
    `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments/${encodeURIComponent(name)}`,
    api.url,
  );
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: DeploymentReadResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const headers: Record<string, string> = { accept: "application/json", connection: "close" };
    if (api.token) headers.authorization = `Bearer ${api.token}`;
    const options = { method: "GET", headers, agent: false, ...(api.ca ? { ca: api.ca } : {}) };
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          finish({ ok: false, code: "BAD_RESPONSE", message: `${what}: response over ${MAX_BODY_BYTES} bytes` });
          res.destroy();
          return;
        }
        chunks.push(c);
      });
      res.on("error", (err) => finish({ ok: false, code: "API_UNREACHABLE", message: `${what}: ${err.message}` }));
      res.on("end", () => finish(interpret(what, res.statusCode ?? 0, Buffer.concat(chunks, size))));
    });
    const timer = setTimeout(() => {
      finish({ ok: false, code: "API_TIMEOUT", message: `${what}: no answer from ${api.url} within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (err) =>
      finish({ ok: false, code: "API_UNREACHABLE", message: `${what}: ${api.url} unreachable: ${err.message}` }),
    );
    req.end();
  });
}

function interpret(what: string, status: number, body: Buffer): DeploymentReadResult {
  if (status === 401 || status === 403)
    return {
      ok: false,
      code: "API_FORBIDDEN",
      message: `${what}: HTTP ${status}: the hook's ServiceAccount needs "get" on this Deployment (Role sfu-config-hook, k8s/base/hook-rbac.yaml)`,
    };
  if (status === 404) return { ok: false, code: "DEPLOYMENT_NOT_FOUND", message: `${what} not found` };
  if (status !== 200) return { ok: false, code: "API_ERROR", message: `${what}: HTTP ${status}` };
  const parsed = parseBoundedJson(body, DEPLOYMENT_JSON_LIMITS, "the answer");
  if (!parsed.ok) {
    const message =
      parsed.code === "BAD_JSON" || parsed.code === "NOT_UTF8"
        ? `${what}: the API answered with something that is not JSON`
        : `${what}: ${parsed.message}`;
    return { ok: false, code: "BAD_RESPONSE", message };
  }
  const doc = parsed.value;
  const d = doc as { kind?: unknown; spec?: { replicas?: unknown }; status?: Record<string, unknown> };
  if (d === null || typeof d !== "object" || d.kind !== "Deployment")
    return {
      ok: false,
      code: "BAD_RESPONSE",
      message: `${what}: the API answered with something that is not a Deployment`,
    };
  const count = (v: unknown, fallback: number, field: string): number | string => {
    if (v === undefined || v === null) return fallback;
    return Number.isSafeInteger(v) && (v as number) >= 0
      ? (v as number)
      : `${field} is ${JSON.stringify(v).slice(0, 64)}`;
  };
  const desired = count(d.spec?.replicas, 1, "spec.replicas");
  const current = count(d.status?.replicas, 0, "status.replicas");
  const ready = count(d.status?.readyReplicas, 0, "status.readyReplicas");
  for (const v of [desired, current, ready])
    if (typeof v === "string") return { ok: false, code: "BAD_RESPONSE", message: `${what}: ${v}` };
  return { ok: true, desired: desired as number, current: current as number, ready: ready as number };
}
