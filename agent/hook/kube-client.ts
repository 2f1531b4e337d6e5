/**
 * The hook's Kubernetes API access, through `@kubernetes/client-node`: the
 * configuration is kubectl's (`KUBECONFIG`, then `~/.kube/config`) outside a
 * pod and the mounted ServiceAccount inside one (the address from `env`; its
 * token file is re-read by the client once a minute, so a token the kubelet
 * rotated is picked up; the cluster CA is trusted). Only
 * the hook's commands (`sfu-agent notify`, `sfu-agent rollout`) load this
 * module, with a dynamic import: the sidecar never does.
 *
 * Three calls, each bounded in time ({@link KubeClientOptions.timeoutMs})
 * and in response bytes ({@link KubeClientOptions.maxBodyBytes}), and each
 * failure a returned value whose code and message name what to fix (for a
 * 403 the RBAC rule of k8s/base/hook-rbac.yaml that is missing):
 * - {@link KubeClient.readDeployment}: replica counts and `spec.selector`;
 * - {@link KubeClient.listPods}: the pods a label selector matches;
 * - {@link KubeClient.annotatePod}: a JSON merge patch of one annotation.
 */
import { existsSync } from "node:fs";
import { isIPv6 } from "node:net";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  createConfiguration,
  type HttpLibrary,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  PatchStrategy,
  type RequestContext,
  ResponseContext,
  ServerConfiguration,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { parseBoundedJson, readBoundedStream } from "../../protocol/bounded-json.ts";

/** Where a pod finds its ServiceAccount token and the cluster CA. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Codes of {@link KubeError}. */
export type KubeErrorCode =
  | "NOT_IN_CLUSTER"
  | "API_UNREACHABLE"
  | "API_TIMEOUT"
  | "API_FORBIDDEN"
  | "DEPLOYMENT_NOT_FOUND"
  | "POD_NOT_FOUND"
  | "API_ERROR"
  | "BAD_RESPONSE";

/** A failed call, as a value. */
export interface KubeError {
  code: KubeErrorCode;
  message: string;
}

/** A call's result: the value, or why not. */
export type KubeResult<T> = ({ ok: true } & T) | ({ ok: false } & KubeError);

/** The replica counts and selector of a Deployment. */
export interface DeploymentInfo {
  /** `spec.replicas` (1 when unset, as the API server defaults it). */
  desired: number;
  /** `status.replicas`: pods that exist (not terminating), old and new. */
  current: number;
  /** `status.readyReplicas`: pods ready now (0 when unset). */
  ready: number;
  /** `spec.selector` as a label selector string (`app=sfu-server,tier in (media)`). */
  selector: string;
}

/** What the nudge needs of one pod. */
export interface PodInfo {
  name: string;
  /** `status.phase` (`Pending`, `Running`, ...; `Unknown` when absent). */
  phase: string;
  /** The pod's `Ready` condition is `True`. */
  ready: boolean;
  /** `metadata.deletionTimestamp` is set. */
  terminating: boolean;
  annotations: Record<string, string>;
}

/** Tunables of {@link KubeClient}. */
export interface KubeClientOptions {
  /** Time budget of one call, headers and body (default 10 s). */
  timeoutMs?: number;
  /** Bytes of one response body at most (default 4 MiB: a page of 100 pods is well under). */
  maxBodyBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Pods per list page (a page of real pod objects is well under the byte bound). */
export const LIST_PAGE = 100;
/** Pages of one list at most (5,000 pods). */
export const MAX_LIST_PAGES = 50;
/** Characters of an API server's error message quoted in ours. */
const MAX_QUOTE = 200;

/** The Role these calls need (k8s/base/hook-rbac.yaml). */
const ROLE = "Role sfu-config-hook, k8s/base/hook-rbac.yaml";

/**
 * A response body refused by the bounded reader (protocol/bounded-json.ts):
 * over the byte bound, not complete in time, or JSON past its limits.
 */
export class BodyRefusedError extends Error {
  readonly code = "BODY_REFUSED" as const;
  /** The response's HTTP status. */
  readonly status: number;
  /** The bounded reader's refusal (`TOO_LARGE`, `TIMEOUT`, `TOO_DEEP`, ...). */
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/**
 * The client's own HTTP library with a time budget per request (an abort
 * signal covering headers and body, and the bounded reader's deadline) and
 * the bounded reader on the body: bytes, then JSON depth, values and keys.
 */
class BoundedHttpLibrary implements HttpLibrary {
  readonly #inner = new IsomorphicFetchHttpLibrary();
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(timeoutMs: number, maxBytes: number) {
    this.#timeoutMs = timeoutMs;
    this.#maxBytes = maxBytes;
  }

  send(request: RequestContext) {
    const own = AbortSignal.timeout(this.#timeoutMs);
    const given = request.getSignal();
    request.setSignal(given ? AbortSignal.any([given, own]) : own);
    const limits = { maxBytes: this.#maxBytes, timeoutMs: this.#timeoutMs, signal: own };
    return this.#inner.send(request).pipe((res: ResponseContext) => {
      const status = res.httpStatusCode;
      const bytes = async () => {
        const r = await readBoundedStream(res.body.stream(), limits, `HTTP ${status} body`);
        // The request's own deadline aborts the body mid-read: that is a timeout too.
        if (!r.ok) throw new BodyRefusedError(status, own.aborted ? "TIMEOUT" : r.code, r.message);
        return r.bytes;
      };
      const text = async () => {
        const b = await bytes();
        const json = parseBoundedJson(b, { maxBytes: this.#maxBytes }, `HTTP ${status} body`);
        // Not JSON at all is the client's to report (a SyntaxError); JSON past the limits is refused here.
        if (!json.ok && json.code !== "BAD_JSON") throw new BodyRefusedError(status, json.code, json.message);
        return b.toString("utf8");
      };
      return new ResponseContext(status, res.headers, { text, binary: bytes, stream: () => res.body.stream() });
    });
  }
}

/**
 * Loads the configuration as kubectl does: `KUBECONFIG` (one or more files),
 * else the in-cluster ServiceAccount when `KUBERNETES_SERVICE_HOST` is set,
 * else `~/.kube/config`. A failure says which piece is missing. `root`
 * prefixes the ServiceAccount directory (tests).
 */
export function loadKubeConfig(env: Record<string, string | undefined>, root = ""): KubeResult<{ config: KubeConfig }> {
  const serviceAccountDir = join(root || "/", SERVICE_ACCOUNT_DIR);
  const kc = new KubeConfig();
  try {
    const files = (env.KUBECONFIG ?? "").split(delimiter).filter((f) => f.length > 0);
    if (files.length > 0) {
      for (const [i, file] of files.entries()) {
        if (i === 0) kc.loadFromFile(file);
        else {
          const more = new KubeConfig();
          more.loadFromFile(file);
          kc.mergeConfig(more);
        }
      }
    } else if (env.KUBERNETES_SERVICE_HOST) {
      for (const f of ["token", "ca.crt"])
        if (!existsSync(join(serviceAccountDir, f)))
          return {
            ok: false,
            code: "NOT_IN_CLUSTER",
            message: `no ServiceAccount ${f} in ${serviceAccountDir}: set automountServiceAccountToken: true on the hook's pod`,
          };
      kc.loadFromCluster(root || undefined);
      // The address from `env` (loadFromCluster reads process.env), with its token file and CA.
      const [cluster, user] = [kc.clusters[0], kc.users[0]];
      const host = env.KUBERNETES_SERVICE_HOST;
      if (!cluster || !user) throw new Error("no in-cluster configuration");
      const server = `https://${isIPv6(host) ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT ?? "443"}`;
      kc.loadFromClusterAndUser({ ...cluster, server }, user);
    } else {
      const file = join(env.HOME ?? homedir(), ".kube", "config");
      if (!existsSync(file))
        return {
          ok: false,
          code: "NOT_IN_CLUSTER",
          message:
            "no Kubernetes API configured: not in a pod (KUBERNETES_SERVICE_HOST unset), no KUBECONFIG, no ~/.kube/config",
        };
      kc.loadFromFile(file);
    }
  } catch (err) {
    return { ok: false, code: "NOT_IN_CLUSTER", message: `kubeconfig unreadable: ${quote((err as Error).message)}` };
  }
  if (!kc.getCurrentCluster())
    return { ok: false, code: "NOT_IN_CLUSTER", message: "the kubeconfig has no current cluster (current-context)" };
  return { ok: true, config: kc };
}

/** The hook's three Kubernetes calls; see the module documentation. */
export class KubeClient {
  readonly #apps: AppsV1Api;
  readonly #core: CoreV1Api;
  readonly #server: string;
  readonly #timeoutMs: number;
  /** API requests sent (the benchmark's figure). */
  requests = 0;

  constructor(deps: { config: KubeConfig; options?: KubeClientOptions }) {
    const cluster = deps.config.getCurrentCluster();
    if (!cluster) throw new TypeError("KubeClient: the KubeConfig has no current cluster");
    this.#timeoutMs = deps.options?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxBytes = deps.options?.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!(this.#timeoutMs > 0 && maxBytes > 0))
      throw new RangeError("KubeClient: timeoutMs and maxBodyBytes must be > 0");
    this.#server = cluster.server;
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: deps.config },
      httpApi: new BoundedHttpLibrary(this.#timeoutMs, maxBytes),
    });
    this.#apps = new AppsV1Api(configuration);
    this.#core = new CoreV1Api(configuration);
  }

  /** Reads `namespace/name`: replica counts and selector. Never rejects. */
  async readDeployment(namespace: string, name: string): Promise<KubeResult<DeploymentInfo>> {
    const what = `deployment ${namespace}/${name}`;
    const r = await this.#call(what, `"get" on deployments/${name}`, "DEPLOYMENT_NOT_FOUND", () =>
      this.#apps.readNamespacedDeployment({ namespace, name }),
    );
    if (!r.ok) return r;
    const d = r.value as {
      kind?: unknown;
      spec?: { replicas?: unknown; selector?: unknown };
      status?: Record<string, unknown>;
    };
    if (d === null || typeof d !== "object" || typeof d.spec !== "object" || d.spec === null)
      return {
        ok: false,
        code: "BAD_RESPONSE",
        message: `${what}: the API answered with something that is not a Deployment`,
      };
    const count = (v: unknown, fallback: number, field: string): number | string => {
      if (v === undefined || v === null) return fallback;
      return Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : `${field} is ${JSON.stringify(v)}`;
    };
    const desired = count(d.spec.replicas, 1, "spec.replicas");
    const current = count(d.status?.replicas, 0, "status.replicas");
    const ready = count(d.status?.readyReplicas, 0, "status.readyReplicas");
    for (const v of [desired, current, ready])
      if (typeof v === "string") return { ok: false, code: "BAD_RESPONSE", message: `${what}: ${quote(v)}` };
    const selector = selectorString(d.spec.selector);
    if (selector === null)
      return { ok: false, code: "BAD_RESPONSE", message: `${what}: spec.selector is missing, empty or malformed` };
    return { ok: true, desired: desired as number, current: current as number, ready: ready as number, selector };
  }

  /**
   * Lists the pods of `namespace` matching `selector`, {@link LIST_PAGE} at a
   * time (each page within the byte bound), at most {@link MAX_LIST_PAGES}
   * pages. Never rejects.
   */
  async listPods(namespace: string, selector: string): Promise<KubeResult<{ pods: PodInfo[] }>> {
    const what = `pods in ${namespace} (${selector})`;
    const pods: PodInfo[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const r = await this.#call(what, `"list" on pods`, "API_ERROR", () =>
        this.#core.listNamespacedPod({
          namespace,
          labelSelector: selector,
          limit: LIST_PAGE,
          ...(token === undefined ? {} : { _continue: token }),
        }),
      );
      if (!r.ok) return r;
      const list = r.value as { items?: unknown; metadata?: { _continue?: unknown } };
      if (list === null || typeof list !== "object" || !Array.isArray(list.items))
        return {
          ok: false,
          code: "BAD_RESPONSE",
          message: `${what}: the API answered with something that is not a pod list`,
        };
      for (const item of list.items as unknown[]) {
        const pod = podInfo(item);
        if (pod === null)
          return { ok: false, code: "BAD_RESPONSE", message: `${what}: a pod without a valid metadata.name` };
        pods.push(pod);
      }
      const next = list.metadata?._continue;
      if (typeof next !== "string" || next.length === 0) return { ok: true, pods };
      token = next;
    }
    return {
      ok: false,
      code: "BAD_RESPONSE",
      message: `${what}: more than ${MAX_LIST_PAGES * LIST_PAGE} pods (${MAX_LIST_PAGES} pages)`,
    };
  }

  /**
   * Sets annotation `key` of pod `namespace/name` to `value` with a JSON
   * merge patch that carries that key alone. Never rejects.
   */
  async annotatePod(namespace: string, name: string, key: string, value: string): Promise<KubeResult<object>> {
    const what = `pod ${namespace}/${name}`;
    const r = await this.#call(what, `"patch" on pods`, "POD_NOT_FOUND", () =>
      this.#core.patchNamespacedPod(
        { namespace, name, body: { metadata: { annotations: { [key]: value } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    return r.ok ? { ok: true } : r;
  }

  async #call(
    what: string,
    rule: string,
    notFound: KubeErrorCode,
    send: () => Promise<unknown>,
  ): Promise<{ ok: true; value: unknown } | ({ ok: false } & KubeError)> {
    this.requests++;
    try {
      return { ok: true, value: await send() };
    } catch (err) {
      return { ok: false, ...classify(err, what, rule, notFound, this.#server, this.#timeoutMs) };
    }
  }
}

/** One pod of a list answer, or null without a valid name. */
function podInfo(item: unknown): PodInfo | null {
  const p = item as {
    metadata?: { name?: unknown; annotations?: unknown; deletionTimestamp?: unknown };
    status?: { phase?: unknown; conditions?: unknown };
  };
  const name = p?.metadata?.name;
  if (typeof name !== "string" || name.length === 0 || name.length > 253) return null;
  const annotations: Record<string, string> = {};
  const a = p.metadata?.annotations;
  if (a !== null && typeof a === "object")
    for (const [k, v] of Object.entries(a as Record<string, unknown>)) if (typeof v === "string") annotations[k] = v;
  const conditions = Array.isArray(p.status?.conditions) ? (p.status?.conditions as unknown[]) : [];
  const ready = conditions.some((c) => {
    const cond = c as { type?: unknown; status?: unknown };
    return cond?.type === "Ready" && cond?.status === "True";
  });
  return {
    name,
    phase: typeof p.status?.phase === "string" ? p.status.phase : "Unknown",
    ready,
    terminating: p.metadata?.deletionTimestamp !== undefined && p.metadata?.deletionTimestamp !== null,
    annotations,
  };
}

function classify(
  err: unknown,
  what: string,
  rule: string,
  notFound: KubeErrorCode,
  server: string,
  timeoutMs: number,
): KubeError {
  if (err instanceof ApiException) {
    const status = err.code;
    const said = statusMessage(err.body);
    if (status === 401)
      return {
        code: "API_FORBIDDEN",
        message: `${what}: HTTP 401: the API rejected the credentials (ServiceAccount token)${said}`,
      };
    if (status === 403)
      return {
        code: "API_FORBIDDEN",
        message: `${what}: HTTP 403: the hook's ServiceAccount needs ${rule} (${ROLE})${said}`,
      };
    if (status === 404)
      return {
        code: notFound === "API_ERROR" ? "API_ERROR" : notFound,
        message: `${what}: HTTP 404: not found${said}`,
      };
    if (status >= 200 && status < 300)
      return { code: "BAD_RESPONSE", message: `${what}: the API answered HTTP ${status} with a body that is not JSON` };
    return { code: "API_ERROR", message: `${what}: HTTP ${status}${said}` };
  }
  const e = err as {
    name?: string;
    code?: string;
    message?: string;
    cause?: { code?: string; message?: string; name?: string };
  };
  const refused = err instanceof BodyRefusedError ? err : e?.cause instanceof BodyRefusedError ? e.cause : null;
  if (refused !== null) {
    if (refused.reason === "TIMEOUT" || refused.reason === "ABORTED")
      return { code: "API_TIMEOUT", message: `${what}: no complete answer from ${server} within ${timeoutMs} ms` };
    const ok = refused.status >= 200 && refused.status < 300;
    return {
      code: ok ? "BAD_RESPONSE" : refused.status === 403 ? "API_FORBIDDEN" : "API_ERROR",
      message: `${what}: ${quote(refused.message)}${refused.status === 403 ? ` (the hook's ServiceAccount needs ${rule}, ${ROLE})` : ""}`,
    };
  }
  if (e?.name === "TimeoutError" || e?.name === "AbortError" || e?.cause?.name === "TimeoutError")
    return { code: "API_TIMEOUT", message: `${what}: no complete answer from ${server} within ${timeoutMs} ms` };
  if (err instanceof SyntaxError)
    return { code: "BAD_RESPONSE", message: `${what}: the API answered with something that is not JSON` };
  const cause = e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? "unknown error";
  return { code: "API_UNREACHABLE", message: `${what}: ${server} unreachable: ${quote(String(cause))}` };
}

/**
 * `: <the Status message>` of an API error body, capped; empty when none. The
 * body has passed BoundedHttpLibrary (bytes, depth, values and keys checked)
 * before the client hands it here.
 */
function statusMessage(body: unknown): string {
  let m: unknown = null;
  if (typeof body === "string") {
    try {
      m = (JSON.parse(body) as { message?: unknown })?.message;
    } catch {
      m = null;
    }
  } else if (body !== null && typeof body === "object") m = (body as { message?: unknown }).message;
  return typeof m === "string" && m.length > 0 ? `: ${quote(m)}` : "";
}

/** A string from outside, safe to print: control characters escaped, capped. */
function quote(s: string): string {
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return clean.length > MAX_QUOTE ? `${clean.slice(0, MAX_QUOTE)}...` : clean;
}

/**
 * `spec.selector` (matchLabels and matchExpressions) as a label selector
 * string; null when empty or malformed (an empty selector would match every
 * pod of the namespace: never nudge on that).
 */
export function selectorString(selector: unknown): string | null {
  if (selector === null || typeof selector !== "object") return null;
  const s = selector as { matchLabels?: unknown; matchExpressions?: unknown };
  const parts: string[] = [];
  const token = /^([A-Za-z0-9][-A-Za-z0-9_./]{0,252})?$/;
  if (s.matchLabels !== undefined && s.matchLabels !== null) {
    if (typeof s.matchLabels !== "object") return null;
    for (const [k, v] of Object.entries(s.matchLabels as Record<string, unknown>)) {
      if (typeof v !== "string" || !token.test(k) || k.length === 0 || !token.test(v)) return null;
      parts.push(`${k}=${v}`);
    }
  }
  if (s.matchExpressions !== undefined && s.matchExpressions !== null) {
    if (!Array.isArray(s.matchExpressions)) return null;
    for (const x of s.matchExpressions as unknown[]) {
      const e = x as { key?: unknown; operator?: unknown; values?: unknown };
      if (typeof e?.key !== "string" || e.key.length === 0 || !token.test(e.key)) return null;
      const values = Array.isArray(e.values) ? (e.values as unknown[]) : [];
      if (!values.every((v) => typeof v === "string" && token.test(v))) return null;
      if (e.operator === "In" || e.operator === "NotIn") {
        if (values.length === 0) return null;
        parts.push(`${e.key} ${e.operator === "In" ? "in" : "notin"} (${values.join(",")})`);
      } else if (e.operator === "Exists") parts.push(e.key);
      else if (e.operator === "DoesNotExist") parts.push(`!${e.key}`);
      else return null;
    }
  }
  return parts.length > 0 ? parts.join(",") : null;
}
