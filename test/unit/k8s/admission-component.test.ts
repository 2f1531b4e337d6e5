/**
 * The admission webhook component (k8s/components/admission), added to a
 * copy of the example overlay the way k8s/README.md tells users to: it
 * renders with `kubectl kustomize`, validates against the Kubernetes
 * schemas, leaves every object of the overlay as it was, and is wired
 * together: the webhook configuration asks only about the sfu-config
 * ConfigMap, reaches the Deployment's HTTPS port through the Service, trusts
 * the CA cert-manager injects from the serving Certificate, whose Secret the
 * pods mount whole; the pods run the agent image with the agent's own flags
 * under the restricted Pod Security profile; Argo CD ignores the injected
 * caBundle and registers the webhook before the ConfigMap.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  EXAMPLE_OVERLAY,
  findObject,
  hasModel,
  K8S_DIR,
  type K8sObject,
  podSpec,
  renderK8s,
  renderKustomization,
  validateWithModel,
} from "./manifests.ts";

const WAVE = "argocd.argoproj.io/sync-wave";
let tmp = "";
let overlay: K8sObject[];
let withAdmission: K8sObject[];
let app: K8sObject;

/** The value of `--flag=value` in `args`. */
function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "sfu-admission-k8s-"));
  await cp(K8S_DIR, join(tmp, "k8s"), { recursive: true });
  const mine = join(tmp, "k8s", "overlays", "example");
  const k = await readFile(join(mine, "kustomization.yaml"), "utf8");
  await writeFile(join(mine, "kustomization.yaml"), `${k}\ncomponents:\n  - ../../components/admission\n`);
  [overlay, withAdmission, app] = await Promise.all([
    renderK8s(EXAMPLE_OVERLAY),
    renderKustomization(mine),
    renderK8s("argocd").then((o) => findObject(o, "Application", "sfu-config")),
  ]);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("k8s/components/admission", () => {
  it("renders onto the overlay, adding objects only, each valid against its schema", async () => {
    for (const o of overlay) assert.deepEqual(findObject(withAdmission, o.kind, o.metadata.name), o);
    const added = withAdmission.filter(
      (o) => !overlay.some((b) => b.kind === o.kind && b.metadata.name === o.metadata.name),
    );
    assert.deepEqual(added.map((o) => o.kind).sort(), [
      "Certificate",
      "Certificate",
      "Deployment",
      "Issuer",
      "Issuer",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "Service",
      "ServiceAccount",
      "ValidatingWebhookConfiguration",
    ]);
    for (const o of added) {
      assert.match(String(o.metadata.name), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
      if (o.kind !== "ValidatingWebhookConfiguration") assert.equal(o.metadata.namespace, "sfu", o.kind);
      // cert-manager kinds have no model package here: their wiring is checked below.
      if (hasModel(o) && !String(o.apiVersion).startsWith("cert-manager.io/")) await validateWithModel(o);
      else assert.equal(o.apiVersion, "cert-manager.io/v1", `${o.kind} has a schema`);
      assert.equal(o.metadata.annotations?.[WAVE], "-1", `${o.kind}/${o.metadata.name} syncs before the ConfigMap`);
    }
    assert.equal(findObject(withAdmission, "ConfigMap", "sfu-config").metadata.annotations?.[WAVE], undefined);
  });

  it("asks about the sfu-config ConfigMap only, on CREATE and UPDATE, and fails closed within a small timeout", () => {
    const vwc = findObject(withAdmission, "ValidatingWebhookConfiguration", "sfu-config-admission");
    assert.equal(vwc.webhooks.length, 1);
    const [w] = vwc.webhooks;
    assert.deepEqual(w.rules, [
      {
        apiGroups: [""],
        apiVersions: ["v1"],
        operations: ["CREATE", "UPDATE"],
        resources: ["configmaps"],
        scope: "Namespaced",
      },
    ]);
    const cm = findObject(withAdmission, "ConfigMap", "sfu-config");
    assert.deepEqual(w.namespaceSelector, { matchLabels: { "kubernetes.io/metadata.name": cm.metadata.namespace } });
    assert.deepEqual(w.matchConditions, [
      { name: "the-sfu-config-configmap-only", expression: `object.metadata.name == '${cm.metadata.name}'` },
    ]);
    assert.equal(w.sideEffects, "None");
    assert.equal(w.failurePolicy, "Fail");
    assert.deepEqual(w.admissionReviewVersions, ["v1"]);
    assert.ok(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 5, `timeoutSeconds ${w.timeoutSeconds}`);
    const args: string[] = podSpec(findObject(withAdmission, "Deployment", "sfu-config-admission")).containers[0].args;
    const timeout = Number(/^(\d+)s$/.exec(flag(args, "request-timeout") ?? "")?.[1]);
    assert.ok(timeout < w.timeoutSeconds, "the webhook answers before the API server gives up");
  });

  it("reaches the webhook's HTTPS port through the Service, trusting the injected CA of the serving certificate", () => {
    const [w] = findObject(withAdmission, "ValidatingWebhookConfiguration", "sfu-config-admission").webhooks;
    const svc = findObject(withAdmission, "Service", w.clientConfig.service.name);
    assert.equal(w.clientConfig.service.namespace, svc.metadata.namespace);
    assert.equal(w.clientConfig.service.path, "/validate");
    assert.equal(w.clientConfig.caBundle, undefined, "cert-manager injects it");
    const port = svc.spec.ports.find((p: K8sObject) => p.port === w.clientConfig.service.port);
    const deployment = findObject(withAdmission, "Deployment", "sfu-config-admission");
    for (const [k, v] of Object.entries(svc.spec.selector))
      assert.equal(deployment.spec.template.metadata.labels[k], v);
    const container = podSpec(deployment).containers[0];
    const target = container.ports.find((p: K8sObject) => p.name === port.targetPort);
    assert.equal(flag(container.args, "listen"), `0.0.0.0:${target.containerPort}`);
    const vwc = findObject(withAdmission, "ValidatingWebhookConfiguration", "sfu-config-admission");
    const [ns, certName] = vwc.metadata.annotations["cert-manager.io/inject-ca-from"].split("/");
    const cert = findObject(withAdmission, "Certificate", certName);
    assert.equal(cert.metadata.namespace, ns);
    assert.ok(
      cert.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`),
      "the name the API server dials",
    );
    const issuer = findObject(withAdmission, "Issuer", cert.spec.issuerRef.name);
    const ca = withAdmission.find((o) => o.kind === "Certificate" && o.spec.secretName === issuer.spec.ca.secretName);
    assert.equal(ca?.spec.isCA, true);
    assert.ok(findObject(withAdmission, "Issuer", ca?.spec.issuerRef.name).spec.selfSigned);
    const tls = podSpec(deployment).volumes.find((v: K8sObject) => v.secret?.secretName === cert.spec.secretName);
    const mount = container.volumeMounts.find((m: K8sObject) => m.name === tls.name);
    assert.equal(mount.subPath, undefined, "the whole directory: a renewal arrives as a ..data swap");
    assert.equal(flag(container.args, "tls-cert-file"), `${mount.mountPath}/tls.crt`);
    assert.equal(flag(container.args, "tls-key-file"), `${mount.mountPath}/tls.key`);
  });

  it("runs the agent image with the agent's own keys and secrets directory, 2 replicas, a PDB, restricted PSS", () => {
    const deployment = findObject(withAdmission, "Deployment", "sfu-config-admission");
    const spec = podSpec(deployment);
    const container = spec.containers[0];
    const agent = podSpec(findObject(withAdmission, "Deployment", "sfu-server")).initContainers.find(
      (c: K8sObject) => c.name === "sfu-agent",
    );
    assert.equal(container.image, agent.image, "the same agent image, registry and tag");
    assert.equal(container.args[0], "admission");
    for (const name of ["config-key", "secrets-dir"])
      assert.equal(flag(container.args, name), flag(agent.args, name), name);
    assert.equal(
      flag(container.args, "rollout-key") ?? "rollout.yaml",
      flag(agent.args, "rollout-key") ?? "rollout.yaml",
    );
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
    const pdb = findObject(withAdmission, "PodDisruptionBudget", "sfu-config-admission");
    assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < deployment.spec.replicas);
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ["ALL"]);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(spec.automountServiceAccountToken, false, "no Kubernetes API access");
    assert.equal(container.readinessProbe.httpGet.scheme, "HTTPS");
    assert.ok(
      findObject(withAdmission, "Namespace", "sfu").metadata.labels["pod-security.kubernetes.io/enforce"] ===
        "restricted",
    );
  });

  it("has Argo CD ignore the injected caBundle and keep it on sync", () => {
    const entry = (app.spec.ignoreDifferences ?? []).find(
      (d: K8sObject) => d.kind === "ValidatingWebhookConfiguration" && d.name === "sfu-config-admission",
    );
    assert.equal(entry?.group, "admissionregistration.k8s.io");
    assert.deepEqual(entry?.jqPathExpressions, [".webhooks[]?.clientConfig.caBundle"]);
    assert.ok(app.spec.syncPolicy.syncOptions.includes("RespectIgnoreDifferences=true"));
  });
});
