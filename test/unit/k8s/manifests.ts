/**
 * Test helpers for the Kubernetes manifests under k8s/: render a
 * kustomization with the machine's `kubectl kustomize`, validate rendered
 * objects against the Kubernetes / Argo CD OpenAPI schemas
 * (kubernetes-models, @kubernetes-models/argo-cd), and reproduce what Argo CD
 * does to a source with `kustomize.commonAnnotations` +
 * `commonAnnotationsEnvsubst`.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse, parseAllDocuments } from "yaml";

const run = promisify(execFile);

/** Repository root. */
export const REPO_ROOT = join(import.meta.dirname, "..", "..", "..");
/** The k8s/ directory. */
export const K8S_DIR = join(REPO_ROOT, "k8s");

/** Every kustomization the project ships, relative to k8s/. */
export const KUSTOMIZATIONS = [
  "base",
  "hook",
  "monitoring",
  "argocd",
  "overlays/example",
  "overlays/example/hook",
] as const;

/** The overlay users copy and edit, which the Argo CD Application deploys (relative to k8s/). */
export const EXAMPLE_OVERLAY = "overlays/example";
/** The overlay's hook source (relative to k8s/). */
export const EXAMPLE_HOOK = "overlays/example/hook";

/** A rendered Kubernetes object (loosely typed: tests navigate it). */
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are navigated dynamically in tests
export type K8sObject = Record<string, any>;

/** Renders `dir` with `kubectl kustomize` and returns its objects. Throws with kubectl's stderr on failure. */
export async function renderKustomization(dir: string): Promise<K8sObject[]> {
  let stdout: string;
  try {
    ({ stdout } = await run("kubectl", ["kustomize", dir], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr || e.message}`);
  }
  return parseAllDocuments(stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`bad YAML from kustomize: ${d.errors[0]?.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Renders the kustomization `k8s/<name>` (e.g. `base`, `hook`); see {@link renderKustomization}. */
export function renderK8s(name: string): Promise<K8sObject[]> {
  return renderKustomization(join(K8S_DIR, name));
}

/** Finds the one object of `kind` named `name`; throws when absent. */
export function findObject(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind}/${name}, found ${found.length}`);
  return found[0] as K8sObject;
}

/** Module path of the kubernetes-models class for an apiVersion, or null when no model package covers it. */
function modelModule(apiVersion: string): string | null {
  if (apiVersion === "v1") return "kubernetes-models/v1";
  if (apiVersion.startsWith("argoproj.io/")) return `@kubernetes-models/argo-cd/${apiVersion}`;
  if (apiVersion.startsWith("monitoring.coreos.com/")) return null;
  return `kubernetes-models/${apiVersion}`;
}

/** True when a model package (kubernetes-models or the Argo CD models) covers `obj`'s apiVersion. */
export function hasModel(obj: K8sObject): boolean {
  return modelModule(String(obj.apiVersion)) !== null;
}

/**
 * Validates `obj` against its OpenAPI schema by constructing the model class
 * and calling `.validate()`. Throws an Error naming the object and the
 * failing JSON paths; throws too when no model class exists for it.
 */
export async function validateWithModel(obj: K8sObject): Promise<void> {
  const where = `${obj.apiVersion} ${obj.kind}/${obj.metadata?.name}`;
  const path = modelModule(String(obj.apiVersion));
  if (path === null) throw new Error(`no model package for ${where}`);
  const mod = (await import(path)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[String(obj.kind)];
  if (typeof Model !== "function") throw new Error(`no model class for ${where}`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${where} is invalid: ${(err as Error).message}`);
  }
}

/** Replaces `${VAR}` / `$VAR` with values from `env` (unknown variables become ""), like Argo CD's envsubst. */
export function envsubst(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_m, a: string | undefined, b: string | undefined) => env[a ?? b ?? ""] ?? "",
  );
}

/**
 * Renders `k8s/<source>` the way Argo CD's repo server does for a source with
 * `kustomize.commonAnnotations` (and `commonAnnotationsEnvsubst`): in a copy
 * of the directory it adds the annotations, values substituted from `env`
 * (the build environment, e.g. ARGOCD_APP_REVISION), to the kustomization's
 * `commonAnnotations` (as `kustomize edit add annotation --force` does), then
 * builds it. The whole k8s/ tree is copied, so overlays find their bases;
 * the copy is removed afterwards.
 */
export async function renderAsArgoCd(
  source: string,
  commonAnnotations: Record<string, string>,
  envsubstEnabled: boolean,
  env: Record<string, string>,
): Promise<K8sObject[]> {
  const dir = await mkdtemp(join(tmpdir(), "sfu-k8s-"));
  try {
    await cp(K8S_DIR, join(dir, "k8s"), { recursive: true });
    const copy = join(dir, "k8s", source);
    const file = join(copy, "kustomization.yaml");
    const kustomization = parse(await readFile(file, "utf8")) as K8sObject;
    const merged: Record<string, string> = { ...(kustomization.commonAnnotations ?? {}) };
    for (const [k, v] of Object.entries(commonAnnotations)) merged[k] = envsubstEnabled ? envsubst(v, env) : v;
    kustomization.commonAnnotations = merged;
    await writeFile(file, JSON.stringify(kustomization));
    return await renderKustomization(copy);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The example config file the ConfigMap is generated from. */
export async function exampleConfigText(): Promise<string> {
  return readFile(join(K8S_DIR, "base", "config.yaml"), "utf8");
}

/** The pod spec of a Deployment or Job. */
export function podSpec(obj: K8sObject): K8sObject {
  const spec = obj.spec?.template?.spec;
  if (!spec) throw new Error(`${obj.kind}/${obj.metadata?.name} has no pod template`);
  return spec;
}

/** All containers of a pod spec, init containers (sidecars) first. */
export function allContainers(spec: K8sObject): K8sObject[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}
