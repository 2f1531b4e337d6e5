/**
 * The optional nudge policy (k8s/components/nudge-policy), added to a copy of
 * the example overlay as k8s/README.md tells users to: it renders with
 * `kubectl kustomize`, adds two valid cluster-scoped objects and changes
 * nothing else, and its CEL (evaluated here with @bufbuild/cel, a CEL
 * evaluator: the expressions use only standard CEL, no Kubernetes library)
 * admits exactly the hook's nudge: the annotation sfu-config.dev/config-hash
 * changed on an SFU pod by the hook's ServiceAccount, and refuses every other
 * change that the Role's `patch` on pods would allow.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run } from "@bufbuild/cel";
import { NUDGE_ANNOTATION } from "../../../agent/hook/pod-nudger.ts";
import {
  EXAMPLE_OVERLAY,
  findObject,
  K8S_DIR,
  type K8sObject,
  renderK8s,
  renderKustomization,
  validateWithModel,
} from "./manifests.ts";

let tmp = "";
let overlay: K8sObject[];
let withPolicy: K8sObject[];
let policy: K8sObject;
let base: K8sObject[];

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "sfu-nudge-policy-"));
  await cp(K8S_DIR, join(tmp, "k8s"), { recursive: true });
  const mine = join(tmp, "k8s", "overlays", "example");
  const k = await readFile(join(mine, "kustomization.yaml"), "utf8");
  await writeFile(join(mine, "kustomization.yaml"), `${k}\ncomponents:\n  - ../../components/nudge-policy\n`);
  [overlay, withPolicy, base] = await Promise.all([
    renderK8s(EXAMPLE_OVERLAY),
    renderKustomization(mine),
    renderK8s("base"),
  ]);
  policy = findObject(withPolicy, "ValidatingAdmissionPolicy", "sfu-config-hook-nudge");
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** JSON as CEL input: objects become maps. */
function cel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cel);
  if (v !== null && typeof v === "object") return new Map(Object.entries(v).map(([k, x]) => [k, cel(x)]));
  return v;
}

const HOOK = "system:serviceaccount:sfu:sfu-config-hook";
const HASH = `sha256:${"ab".repeat(32)}`;

function pod(): K8sObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "sfu-server-7d9f-abcde",
      namespace: "sfu",
      labels: { "app.kubernetes.io/name": "sfu-server", "pod-template-hash": "7d9f" },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "sfu-server-7d9f", uid: "1" }],
    },
    spec: { containers: [{ name: "sfu", image: "sfu-config/sfu:0.1.0" }] },
  };
}

/** What the policy answers for `user` updating `oldObject` to `object`: skipped, allowed, or the failed messages. */
function review(oldObject: K8sObject, object: K8sObject, user = HOOK): "not matched" | "allowed" | string[] {
  const vars = { object: cel(object), oldObject: cel(oldObject), request: cel({ userInfo: { username: user } }) };
  for (const c of policy.spec.matchConditions as Array<{ expression: string }>)
    if (run(c.expression, vars as never) !== true) return "not matched";
  const failed = (policy.spec.validations as Array<{ expression: string; message: string }>)
    .filter((v) => run(v.expression, vars as never) !== true)
    .map((v) => v.message);
  return failed.length === 0 ? "allowed" : failed;
}

/** `pod()` with `edit` applied. */
function edited(edit: (p: K8sObject) => void): K8sObject {
  const p = pod();
  edit(p);
  return p;
}

const nudged = (value: string) =>
  edited((p) => {
    p.metadata.annotations[NUDGE_ANNOTATION] = value;
  });

describe("k8s/components/nudge-policy", () => {
  it("renders onto the overlay, adding a valid policy and its binding only", async () => {
    for (const o of overlay) assert.deepEqual(findObject(withPolicy, o.kind, o.metadata.name), o);
    const added = withPolicy.filter(
      (o) => !overlay.some((x) => x.kind === o.kind && x.metadata.name === o.metadata.name),
    );
    assert.deepEqual(added.map((o) => o.kind).sort(), [
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]);
    for (const o of added) {
      assert.equal(o.metadata.namespace, undefined, `${o.kind} is cluster-scoped`);
      await validateWithModel(o);
    }
    const binding = findObject(withPolicy, "ValidatingAdmissionPolicyBinding", "sfu-config-hook-nudge");
    assert.equal(binding.spec.policyName, policy.metadata.name);
    assert.deepEqual(binding.spec.validationActions, ["Deny"]);
    assert.equal(policy.spec.failurePolicy, "Fail");
    assert.deepEqual(policy.spec.matchConstraints.resourceRules, [
      { apiGroups: [""], apiVersions: ["v1"], operations: ["UPDATE"], resources: ["pods"] },
    ]);
  });

  it("names the ServiceAccount the Role is bound to, and the Deployment's pod label", () => {
    const rb = findObject(base, "RoleBinding", "sfu-config-hook");
    const sa = rb.subjects[0];
    assert.equal(
      policy.spec.matchConditions[0].expression,
      `request.userInfo.username == 'system:serviceaccount:${sa.namespace}:${sa.name}'`,
    );
    assert.deepEqual(policy.spec.matchConstraints.namespaceSelector.matchLabels, {
      "kubernetes.io/metadata.name": sa.namespace,
    });
    const deployment = findObject(base, "Deployment", "sfu-server");
    assert.equal(deployment.spec.selector.matchLabels["app.kubernetes.io/name"], "sfu-server");
  });

  it("allows the hook's nudge: the one annotation set or changed on an SFU pod", () => {
    assert.equal(review(pod(), nudged(`${HASH};n=1`)), "allowed");
    assert.equal(review(nudged(`${HASH};n=1`), nudged(`${HASH};n=2`)), "allowed");
  });

  it("refuses every other change by the hook, naming the rule", () => {
    const cases: Array<[string, K8sObject, K8sObject, RegExp]> = [
      [
        "another Deployment's pod",
        edited((p) => {
          p.metadata.labels["app.kubernetes.io/name"] = "other";
        }),
        edited((p) => {
          p.metadata.labels["app.kubernetes.io/name"] = "other";
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
        }),
        /only the SFU's pods/,
      ],
      ["a value not of the hook's form", pod(), nudged("anything"), /sha256:<hex>;n=<count>/],
      [
        "another annotation changed",
        pod(),
        edited((p) => {
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
          p.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = "now";
        }),
        /no annotation but/,
      ],
      [
        "another annotation removed",
        pod(),
        edited((p) => {
          p.metadata.annotations = { [NUDGE_ANNOTATION]: `${HASH};n=1` };
        }),
        /no annotation but/,
      ],
      [
        "another annotation added",
        pod(),
        edited((p) => {
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
          p.metadata.annotations["x.example/y"] = "z";
        }),
        /no annotation but/,
      ],
      [
        "a label (taking the pod out of its ReplicaSet)",
        pod(),
        edited((p) => {
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
          p.metadata.labels["pod-template-hash"] = "x";
        }),
        /labels, finalizers or owners/,
      ],
      [
        "a finalizer",
        pod(),
        edited((p) => {
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
          p.metadata.finalizers = ["x.example/keep"];
        }),
        /labels, finalizers or owners/,
      ],
      [
        "the spec (an image)",
        pod(),
        edited((p) => {
          p.metadata.annotations[NUDGE_ANNOTATION] = `${HASH};n=1`;
          p.spec.containers[0].image = "evil:1";
        }),
        /spec/,
      ],
    ];
    for (const [name, before, after, message] of cases) {
      const r = review(before, after);
      assert.ok(Array.isArray(r), `${name}: refused`);
      assert.ok(
        (r as string[]).some((m) => message.test(m)),
        `${name}: ${JSON.stringify(r)}`,
      );
    }
  });

  it("pods are not resources of the Argo CD Application: the nudge's annotation is no drift", () => {
    // What Argo CD applies (and compares) is the overlay's render; pods come from the ReplicaSet.
    assert.deepEqual(
      withPolicy.filter((o) => o.kind === "Pod"),
      [],
    );
    const deployment = findObject(withPolicy, "Deployment", "sfu-server");
    assert.equal(
      JSON.stringify(deployment.spec.template).includes(NUDGE_ANNOTATION),
      false,
      "the pod template never carries the annotation",
    );
  });

  it("leaves everyone else's pod updates alone", () => {
    assert.equal(
      review(
        pod(),
        edited((p) => (p.spec.containers[0].image = "x")),
        "system:serviceaccount:kube-system:replicaset-controller",
      ),
      "not matched",
    );
  });
});
