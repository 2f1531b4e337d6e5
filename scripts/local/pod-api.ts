/**
 * A minimal local stand-in for the Kubernetes API server, as much of it as
 * the PostSync hook uses (the way fauxqs stands in for AWS): one namespace's
 * Deployments and pods, served over HTTP on loopback so that the hook talks
 * to it through `@kubernetes/client-node` with a kubeconfig
 * ({@link PodApi.kubeconfig}).
 *
 * - `GET /apis/apps/v1/namespaces/NS/deployments/NAME`
 * - `GET /api/v1/namespaces/NS/pods?labelSelector=...` (`k=v`, `k!=v`, `k`,
 *   `!k`, `k in (a,b)`, `k notin (a,b)`), in pages with `limit` and `continue`
 * - `PATCH /api/v1/namespaces/NS/pods/NAME` with a JSON merge patch
 *   (`application/merge-patch+json`) or a strategic merge patch: like the real
 *   API server it refuses (422) a patch of anything a pod cannot change in
 *   place; this stand-in accepts only `metadata.annotations` and
 *   `metadata.labels`.
 *
 * Every request is recorded ({@link PodApi.requests}, with its body) so tests
 * check exactly what the hook sent, and a change of a pod's annotations is
 * announced to {@link PodApi.onPodUpdate} (the kubelet model syncs that pod).
 * `deny` makes it answer 403 for a verb, as a Role without that rule does.
 */
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One pod of the stand-in. */
export interface LocalPodObject {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Ready condition (default true). */
  ready?: boolean;
  phase?: string;
}

/** One Deployment of the stand-in (its pods are whatever matches `selector`). */
export interface LocalDeploymentObject {
  name: string;
  replicas: number;
  selector: Record<string, string>;
  /** `spec.template` as the API would hold it (the tests check it never changes). */
  template: Record<string, unknown>;
}

/** A recorded request. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string | null;
  authorization: string | null;
  body: string;
}

/** Verbs `deny` can refuse. */
export type PodApiVerb = "get-deployment" | "list-pods" | "patch-pods";

/** The running stand-in. */
export interface PodApi {
  url: string;
  namespace: string;
  pods: Map<string, LocalPodObject>;
  deployments: Map<string, LocalDeploymentObject>;
  requests: RecordedRequest[];
  /** Verbs answered 403; pod names whose patch is answered 403. */
  deny: Set<PodApiVerb | `patch-pod:${string}`>;
  /** Pods listed but answered 404 on patch: deleted between the hook's list and its patch. */
  gone: Set<string>;
  /** Called when a patch changed a pod's annotations. */
  onPodUpdate: (pod: string) => void;
  /** Writes a kubeconfig for this server (token `local`) to `file`. */
  kubeconfig(file: string): Promise<void>;
  stop(): Promise<void>;
}

const MAX_BODY = 64 * 1024;
const TOKEN = "local-pod-api";

/** Starts the stand-in on 127.0.0.1, port 0. */
export async function startPodApi(o: { namespace: string }): Promise<PodApi> {
  const api: PodApi = {
    url: "",
    namespace: o.namespace,
    pods: new Map(),
    deployments: new Map(),
    requests: [],
    deny: new Set(),
    gone: new Set(),
    onPodUpdate: () => {},
    async kubeconfig(file) {
      await writeFile(
        file,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          // Plain HTTP on loopback: the client allows it only with insecure-skip-tls-verify.
          clusters: [{ name: "local", cluster: { server: api.url, "insecure-skip-tls-verify": true } }],
          users: [{ name: "hook", user: { token: TOKEN } }],
          contexts: [{ name: "local", context: { cluster: "local", user: "hook", namespace: o.namespace } }],
          "current-context": "local",
        }),
        { mode: 0o600 },
      );
    },
    stop: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close").catch(() => {});
    },
  };
  const server: Server = createServer((req, res) => void handle(api, req, res));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}

async function handle(api: PodApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) return status(res, 413, "RequestEntityTooLarge", "request body too large");
    chunks.push(c as Buffer);
  }
  const body = Buffer.concat(chunks).toString("utf8");
  const url = new URL(req.url ?? "/", "http://x");
  api.requests.push({
    method: req.method ?? "",
    path: url.pathname,
    query: url.search,
    contentType: req.headers["content-type"] ?? null,
    authorization: req.headers.authorization ?? null,
    body,
  });
  if (req.headers.authorization !== `Bearer ${TOKEN}`) return status(res, 401, "Unauthorized", "Unauthorized");
  const ns = api.namespace;
  const dep = url.pathname.match(/^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)$/);
  if (dep && req.method === "GET") {
    if (api.deny.has("get-deployment")) return forbidden(res, "get", "deployments.apps", dep[2] ?? "");
    const d = dep[1] === ns ? api.deployments.get(decodeURIComponent(dep[2] ?? "")) : undefined;
    if (!d) return status(res, 404, "NotFound", `deployments.apps "${dep[2]}" not found`);
    const matching = [...api.pods.values()].filter((p) => matches(p.labels, selectorOf(d.selector)));
    return json(res, 200, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: d.name, namespace: ns },
      spec: { replicas: d.replicas, selector: { matchLabels: d.selector }, template: d.template },
      status: { replicas: matching.length, readyReplicas: matching.filter((p) => p.ready !== false).length },
    });
  }
  if (url.pathname === `/api/v1/namespaces/${ns}/pods` && req.method === "GET") {
    if (api.deny.has("list-pods")) return forbidden(res, "list", "pods", "");
    const sel = parseSelector(url.searchParams.get("labelSelector") ?? "");
    if (sel === null) return status(res, 400, "BadRequest", "unable to parse requirement");
    const all = [...api.pods.values()].filter((p) => matches(p.labels, sel)).map((p) => podJson(ns, p));
    // Pages as the API server does: `limit`, and `continue` (here the offset) for the next page.
    const limit = Number(url.searchParams.get("limit") ?? "0");
    const from = Number(url.searchParams.get("continue") ?? "0");
    if (!(Number.isSafeInteger(limit) && limit >= 0 && Number.isSafeInteger(from) && from >= 0))
      return status(res, 400, "BadRequest", "bad limit or continue");
    const items = limit > 0 ? all.slice(from, from + limit) : all;
    const more = limit > 0 && from + limit < all.length;
    return json(res, 200, {
      apiVersion: "v1",
      kind: "PodList",
      metadata: more ? { continue: String(from + limit) } : {},
      items,
    });
  }
  const pod = url.pathname.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/);
  if (pod && req.method === "PATCH") {
    const name = decodeURIComponent(pod[2] ?? "");
    if (api.deny.has("patch-pods") || api.deny.has(`patch-pod:${name}`)) return forbidden(res, "patch", "pods", name);
    const p = pod[1] === ns && !api.gone.has(name) ? api.pods.get(name) : undefined;
    if (!p) return status(res, 404, "NotFound", `pods "${name}" not found`);
    const ct = req.headers["content-type"] ?? "";
    if (ct !== "application/merge-patch+json" && ct !== "application/strategic-merge-patch+json")
      return status(res, 415, "UnsupportedMediaType", `this stand-in takes merge patches, not ${ct}`);
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch {
      return status(res, 400, "BadRequest", "the patch is not JSON");
    }
    const problem = checkPatch(patch);
    if (problem) return status(res, 422, "Invalid", `Pod "${name}" is invalid: ${problem}`);
    const meta = (
      patch as { metadata: { annotations?: Record<string, string | null>; labels?: Record<string, string | null> } }
    ).metadata;
    const before = JSON.stringify(p.annotations);
    for (const [k, v] of Object.entries(meta.annotations ?? {})) {
      if (v === null) delete p.annotations[k];
      else p.annotations[k] = v;
    }
    for (const [k, v] of Object.entries(meta.labels ?? {})) {
      if (v === null) delete p.labels[k];
      else p.labels[k] = v;
    }
    json(res, 200, podJson(ns, p));
    if (JSON.stringify(p.annotations) !== before) api.onPodUpdate(name);
    return;
  }
  status(res, 404, "NotFound", "the server could not find the requested resource");
}

/** Why a patch changes more than a pod's metadata labels/annotations, or null. */
function checkPatch(patch: unknown): string | null {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return "the patch is not an object";
  for (const k of Object.keys(patch)) if (k !== "metadata") return `spec: Forbidden: ${k} may not be patched here`;
  const meta = (patch as { metadata?: unknown }).metadata;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) return "metadata is not an object";
  for (const [k, v] of Object.entries(meta)) {
    if (k !== "annotations" && k !== "labels") return `metadata.${k}: Forbidden`;
    if (v === null || typeof v !== "object" || Array.isArray(v)) return `metadata.${k} is not an object`;
    for (const x of Object.values(v))
      if (x !== null && typeof x !== "string") return `metadata.${k}: values are strings`;
  }
  return null;
}

function podJson(ns: string, p: LocalPodObject): object {
  return {
    metadata: { name: p.name, namespace: ns, labels: p.labels, annotations: p.annotations },
    status: {
      phase: p.phase ?? "Running",
      conditions: [{ type: "Ready", status: p.ready === false ? "False" : "True" }],
    },
  };
}

type Requirement = { key: string; op: "=" | "!=" | "in" | "notin" | "exists" | "!exists"; values: string[] };

function selectorOf(labels: Record<string, string>): Requirement[] {
  return Object.entries(labels).map(([key, v]) => ({ key, op: "=", values: [v] }));
}

function parseSelector(text: string): Requirement[] | null {
  const out: Requirement[] = [];
  // Split on commas outside parentheses.
  const parts = text.match(/([^,(]+(\([^)]*\))?)/g) ?? [];
  for (const raw of parts) {
    const s = raw.trim();
    if (s === "") continue;
    let m = s.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/);
    if (m) {
      out.push({ key: m[1] ?? "", op: m[2] as "in" | "notin", values: (m[3] ?? "").split(",").map((v) => v.trim()) });
      continue;
    }
    m = s.match(/^([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)$/);
    if (m) {
      out.push({ key: m[1] ?? "", op: m[2] === "!=" ? "!=" : "=", values: [m[3] ?? ""] });
      continue;
    }
    m = s.match(/^(!?)([\w./-]+)$/);
    if (m) {
      out.push({ key: m[2] ?? "", op: m[1] ? "!exists" : "exists", values: [] });
      continue;
    }
    return null;
  }
  return out;
}

function matches(labels: Record<string, string>, sel: Requirement[]): boolean {
  return sel.every((r) => {
    const v = labels[r.key];
    switch (r.op) {
      case "=":
        return v === r.values[0];
      case "!=":
        return v !== r.values[0];
      case "in":
        return v !== undefined && r.values.includes(v);
      case "notin":
        return v === undefined || !r.values.includes(v);
      case "exists":
        return v !== undefined;
      // "!exists"
      default:
        return v === undefined;
    }
  });
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code });
}

function forbidden(res: ServerResponse, verb: string, resource: string, name: string): void {
  status(
    res,
    403,
    "Forbidden",
    `${resource}${name ? ` "${name}"` : ""} is forbidden: User "system:serviceaccount:sfu:sfu-config-hook" cannot ${verb} resource "${resource}"`,
  );
}
