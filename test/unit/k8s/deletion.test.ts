/**
 * Deleting the Argo CD Application must not drop live calls: the namespace
 * is never deleted by Argo CD (Prune=false, Delete=false), and the SFU
 * Deployment with everything its running pods use (ConfigMaps, the
 * ServiceAccount, the Services carrying signalling, the NetworkPolicy and
 * PodDisruptionBudget around them) is deleted only after an explicit
 * confirmation (Delete=confirm). The annotations stay off the pod template,
 * which would otherwise roll every pod once.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { findObject, type K8sObject, podSpec, renderK8s } from "./manifests.ts";

const SYNC_OPTIONS = "argocd.argoproj.io/sync-options";

/** The object's Argo CD sync options as a map (`Prune=false,Delete=false` -> {Prune: "false", Delete: "false"}). */
function syncOptions(obj: K8sObject): Record<string, string> {
  const raw: string = obj.metadata?.annotations?.[SYNC_OPTIONS] ?? "";
  const out: Record<string, string> = {};
  for (const part of raw.split(",")) {
    const [k, v] = part.trim().split("=");
    if (k) out[k] = v ?? "";
  }
  return out;
}

let base: K8sObject[];
let argocd: K8sObject[];

before(async () => {
  [base, argocd] = await Promise.all([renderK8s("base"), renderK8s("argocd")]);
});

describe("deleting the Argo CD Application", () => {
  it("never deletes or prunes the namespace", () => {
    const ns = findObject(base, "Namespace", "sfu");
    assert.deepEqual(syncOptions(ns), { Prune: "false", Delete: "false" });
  });

  it("waits for a confirmation before deleting the SFU Deployment", () => {
    assert.equal(syncOptions(findObject(base, "Deployment", "sfu-server")).Delete, "confirm");
  });

  it("protects everything the running SFU pods use, derived from the pod spec", () => {
    const deployment = findObject(base, "Deployment", "sfu-server");
    const spec = podSpec(deployment);
    const used: K8sObject[] = [findObject(base, "ServiceAccount", spec.serviceAccountName)];
    for (const v of spec.volumes ?? []) {
      for (const s of v.projected?.sources ?? [])
        if (s.configMap) used.push(findObject(base, "ConfigMap", s.configMap.name));
      if (v.configMap) used.push(findObject(base, "ConfigMap", v.configMap.name));
    }
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      for (const e of c.env ?? [])
        if (e.valueFrom?.configMapKeyRef) used.push(findObject(base, "ConfigMap", e.valueFrom.configMapKeyRef.name));
    }
    const labels = deployment.spec.template.metadata.labels as Record<string, string>;
    const selects = (selector: Record<string, string> | undefined) =>
      selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
    for (const o of base) {
      if (o.kind === "Service" && selects(o.spec.selector)) used.push(o);
      if (
        (o.kind === "NetworkPolicy" || o.kind === "PodDisruptionBudget") &&
        selects(o.spec.podSelector?.matchLabels ?? o.spec.selector?.matchLabels)
      )
        used.push(o);
    }
    const kinds = new Set(used.map((o) => o.kind));
    for (const k of ["ServiceAccount", "ConfigMap", "Service", "NetworkPolicy", "PodDisruptionBudget"])
      assert.ok(kinds.has(k), k);
    for (const o of used) {
      const del = syncOptions(o).Delete;
      assert.ok(
        del === "confirm" || del === "false",
        `${o.kind}/${o.metadata.name} has Delete=confirm or Delete=false`,
      );
    }
  });

  it("keeps the sync option off the pod template (no roll of every pod)", () => {
    const template = findObject(base, "Deployment", "sfu-server").spec.template;
    assert.equal(template.metadata.annotations?.[SYNC_OPTIONS], undefined);
  });

  it("still cleans up the rest: the Application keeps its resources finalizer and pruning", () => {
    const app = findObject(argocd, "Application", "sfu-config");
    assert.ok(app.metadata.finalizers.includes("resources-finalizer.argocd.argoproj.io"));
    assert.equal(app.spec.syncPolicy.automated.prune, true);
    // The hook's own RBAC has no protection: nothing live depends on it.
    assert.equal(syncOptions(findObject(base, "Role", "sfu-config-hook")).Delete, undefined);
  });
});
