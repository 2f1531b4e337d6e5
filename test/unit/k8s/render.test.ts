/**
 * Every kustomization under k8s/ renders with `kubectl kustomize`, and every
 * rendered object validates against the Kubernetes / Argo CD schemas.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hasModel, KUSTOMIZATIONS, renderK8s, validateWithModel } from "./manifests.ts";

describe("k8s kustomizations", () => {
  for (const name of KUSTOMIZATIONS) {
    it(`${name} renders and every object validates against its schema`, async () => {
      const objects = await renderK8s(name);
      assert.ok(objects.length > 0, "renders objects");
      for (const obj of objects) {
        assert.equal(typeof obj.apiVersion, "string");
        assert.equal(typeof obj.kind, "string");
        assert.match(String(obj.metadata?.name), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
        // Prometheus Operator kinds have no model package here; monitoring.test.ts checks them.
        if (hasModel(obj)) await validateWithModel(obj);
        else assert.equal(String(obj.apiVersion), "monitoring.coreos.com/v1", `${obj.kind} has a schema`);
      }
    });
  }

  it("puts every namespaced object of the app in namespace sfu", async () => {
    for (const name of ["base", "hook", "monitoring", "overlays/example", "overlays/example/hook"]) {
      for (const obj of await renderK8s(name)) {
        if (obj.kind === "Namespace") continue;
        assert.equal(obj.metadata.namespace, "sfu", `${name}: ${obj.kind}/${obj.metadata.name}`);
      }
    }
  });

  it("rejects an invalid object (the validation can fail)", async () => {
    const bad = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "x" },
      spec: { selector: {}, template: { spec: { containers: [{ name: "a", ports: [{ containerPort: "http" }] }] } } },
    };
    await assert.rejects(validateWithModel(bad), /containerPort/);
    const badApp = { apiVersion: "argoproj.io/v1alpha1", kind: "Application", metadata: { name: "x" }, spec: {} };
    await assert.rejects(validateWithModel(badApp), /invalid/);
  });
});
