/**
 * The Argo CD Application and its PostSync hook: the hook's annotations,
 * limits and mounts, and the revision stamp, reproduced as Argo CD's repo
 * server builds each source, reaching the hook Job and never the SFU
 * Deployment's pod template.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import {
  allContainers,
  EXAMPLE_HOOK,
  EXAMPLE_OVERLAY,
  findObject,
  K8S_DIR,
  type K8sObject,
  podSpec,
  REPO_ROOT,
  renderAsArgoCd,
  renderK8s,
} from "./manifests.ts";

const REVISION_ANNOTATION = "sfu-config.dev/revision";
const REV_A = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
const REV_B = "ffeeddccbbaa99887766554433221100ffeeddcc";
// biome-ignore lint/suspicious/noTemplateCurlyInString: Argo CD's envsubst syntax, not a JS template
const STAMP = "${ARGOCD_APP_REVISION}";

let app: K8sObject;
let base: K8sObject[];
let overlay: K8sObject[];
let job: K8sObject;

/** The Application's sources, each with the k8s/ directory it builds. */
function sources(): { source: K8sObject; dir: string }[] {
  return (app.spec.sources as K8sObject[]).map((source) => {
    assert.match(source.path, /^k8s\//);
    return { source, dir: source.path.slice("k8s/".length) };
  });
}

/** Renders every source of the Application as Argo CD would for Git revision `revision`. */
async function renderApplication(revision: string): Promise<Map<string, K8sObject[]>> {
  const out = new Map<string, K8sObject[]>();
  for (const { source, dir } of sources()) {
    const k = source.kustomize ?? {};
    out.set(
      dir,
      await renderAsArgoCd(dir, k.commonAnnotations ?? {}, k.commonAnnotationsEnvsubst === true, {
        ARGOCD_APP_REVISION: revision,
        ARGOCD_APP_NAME: app.metadata.name,
        ARGOCD_APP_NAMESPACE: app.spec.destination.namespace,
      }),
    );
  }
  return out;
}

/** Identity of an object for comparisons. */
const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

before(async () => {
  app = findObject(await renderK8s("argocd"), "Application", "sfu-config");
  base = await renderK8s("base");
  overlay = await renderK8s(EXAMPLE_OVERLAY);
  job = findObject(await renderK8s("hook"), "Job", "sfu-config-notify");
});

describe("Argo CD Application", () => {
  it("syncs automatically with prune and self-heal into namespace sfu, creating it", () => {
    assert.equal(app.spec.syncPolicy.automated.prune, true);
    assert.equal(app.spec.syncPolicy.automated.selfHeal, true);
    assert.ok(app.spec.syncPolicy.syncOptions.includes("CreateNamespace=true"));
    assert.equal(app.spec.destination.namespace, "sfu");
    assert.equal(app.spec.source, undefined, "multi-source: spec.sources only");
  });

  it("builds the example overlay and its hook as separate sources of one repository", () => {
    const dirs = sources().map((s) => s.dir);
    assert.deepEqual(dirs.sort(), [EXAMPLE_OVERLAY, EXAMPLE_HOOK].sort());
    const repos = new Set(sources().map((s) => `${s.source.repoURL}@${s.source.targetRevision}`));
    assert.equal(repos.size, 1, "both sources track the same repository and branch");
    for (const { dir } of sources()) assert.ok(existsSync(join(K8S_DIR, dir, "kustomization.yaml")), dir);
  });

  it("stamps ARGOCD_APP_REVISION through commonAnnotations on the hook source only", () => {
    for (const { source, dir } of sources()) {
      const k = source.kustomize ?? {};
      if (dir === EXAMPLE_HOOK) {
        assert.deepEqual(k.commonAnnotations, { [REVISION_ANNOTATION]: STAMP });
        assert.equal(k.commonAnnotationsEnvsubst, true);
      } else {
        assert.equal(k.commonAnnotations, undefined, `${dir} carries no common annotations`);
        assert.equal(k.commonLabels, undefined, `${dir} carries no common labels`);
      }
    }
  });

  it("no kustomization in Git stamps anything per commit itself", async () => {
    for (const dir of ["base", "hook", EXAMPLE_OVERLAY, EXAMPLE_HOOK]) {
      const text = await readFile(join(K8S_DIR, dir, "kustomization.yaml"), "utf8");
      const uncommented = text
        .split("\n")
        .filter((l) => !l.trimStart().startsWith("#"))
        .join("\n");
      assert.doesNotMatch(uncommented, /ARGOCD_APP_REVISION|commonAnnotations/, dir);
    }
  });
});

describe("the revision stamp, rendered as Argo CD does", () => {
  let a: Map<string, K8sObject[]>;
  let b: Map<string, K8sObject[]>;
  before(async () => {
    a = await renderApplication(REV_A);
    b = await renderApplication(REV_B);
  });

  it("reaches the hook Job's pod template, where the Job reads it through the downward API", () => {
    for (const [rendered, rev] of [
      [a, REV_A],
      [b, REV_B],
    ] as const) {
      const stamped = findObject(rendered.get(EXAMPLE_HOOK) ?? [], "Job", "sfu-config-notify");
      assert.equal(stamped.spec.template.metadata.annotations[REVISION_ANNOTATION], rev);
    }
  });

  it("never reaches the Deployment: its pod template carries no per-commit annotation and renders identically", () => {
    const depA = findObject(a.get(EXAMPLE_OVERLAY) ?? [], "Deployment", "sfu-server");
    const depB = findObject(b.get(EXAMPLE_OVERLAY) ?? [], "Deployment", "sfu-server");
    assert.deepEqual(depA.spec.template, depB.spec.template);
    assert.deepEqual(depA.spec.template, findObject(overlay, "Deployment", "sfu-server").spec.template);
    const text = JSON.stringify(depA);
    assert.ok(!text.includes(REV_A) && !text.includes(REVISION_ANNOTATION));
  });

  it("changes nothing but the hook Job between two commits", () => {
    const changed: string[] = [];
    for (const dir of a.keys()) {
      const objsB = new Map((b.get(dir) ?? []).map((o) => [key(o), o]));
      for (const o of a.get(dir) ?? []) if (!isDeepStrictEqual(o, objsB.get(key(o)))) changed.push(key(o));
    }
    assert.deepEqual(changed, ["Job/sfu/sfu-config-notify"]);
  });

  it("would roll every SFU pod if it were put on the base (the check above can fail)", async () => {
    const stamp = { [REVISION_ANNOTATION]: STAMP };
    const wrongA = await renderAsArgoCd("base", stamp, true, { ARGOCD_APP_REVISION: REV_A });
    const wrongB = await renderAsArgoCd("base", stamp, true, { ARGOCD_APP_REVISION: REV_B });
    const tA = findObject(wrongA, "Deployment", "sfu-server").spec.template;
    const tB = findObject(wrongB, "Deployment", "sfu-server").spec.template;
    assert.equal(tA.metadata.annotations[REVISION_ANNOTATION], REV_A);
    assert.notDeepEqual(tA, tB);
  });
});

describe("PostSync hook Job", () => {
  it("is an Argo CD PostSync hook deleted before re-creation and on success", () => {
    assert.equal(job.metadata.annotations["argocd.argoproj.io/hook"], "PostSync");
    assert.equal(job.metadata.annotations["argocd.argoproj.io/hook-delete-policy"], "BeforeHookCreation,HookSucceeded");
  });

  it("is bounded by activeDeadlineSeconds and backoffLimit, and never restarts in place", () => {
    // A rollout bakes for minutes per step; 40 minutes bounds the sync.
    assert.ok(job.spec.activeDeadlineSeconds > 0 && job.spec.activeDeadlineSeconds <= 2400);
    assert.ok(job.spec.backoffLimit >= 0 && job.spec.backoffLimit <= 2);
    assert.equal(podSpec(job).restartPolicy, "Never");
  });

  it("mounts the same ConfigMap as the SFU pods, read-only, as a directory", () => {
    const deploymentSpec = podSpec(findObject(base, "Deployment", "sfu-server"));
    const sfuVolume = deploymentSpec.volumes.find((v: K8sObject) => v.name === "config");
    const sfuConfigMap = sfuVolume.projected.sources.find((s: K8sObject) => s.configMap).configMap.name;
    const spec = podSpec(job);
    const [container] = spec.containers;
    const mount = container.volumeMounts.find((m: K8sObject) => m.mountPath === "/etc/sfu");
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined);
    const volume = spec.volumes.find((v: K8sObject) => v.name === mount.name);
    assert.equal(volume.configMap.name, sfuConfigMap);
    const configFlag = container.args.find((x: string) => x.startsWith("--config="));
    assert.equal(configFlag, `--config=${mount.mountPath}/config.yaml`);
    const cm = findObject(base, "ConfigMap", sfuConfigMap);
    assert.ok(container.args.includes(`--config-map=${cm.metadata.namespace}/${cm.metadata.name}`));
  });

  it("passes the revision from its pod's annotation and defines every $(VAR) it uses", () => {
    const [container] = podSpec(job).containers;
    const revision = container.env.find((e: K8sObject) => e.name === "REVISION");
    assert.equal(revision.valueFrom.fieldRef.fieldPath, `metadata.annotations['${REVISION_ANNOTATION}']`);
    assert.ok(container.args.includes("--revision=$(REVISION)"));
    const defined = new Set(container.env.map((e: K8sObject) => e.name));
    for (const arg of container.args as string[]) {
      for (const m of arg.matchAll(/\$\((\w+)\)/g)) assert.ok(defined.has(m[1]), `${m[1]} is defined`);
    }
    for (const e of container.env) {
      if (e.valueFrom?.configMapKeyRef) {
        const cm = findObject(base, "ConfigMap", e.valueFrom.configMapKeyRef.name);
        assert.equal(typeof cm.data[e.valueFrom.configMapKeyRef.key], "string", e.name);
      }
    }
  });

  it("rolls out to every ready pod of the base Deployment, within its deadline, long enough for the kubelet", () => {
    const args = podSpec(job).containers[0].args as string[];
    const value = (flag: string) => args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
    assert.equal(args[0], "rollout");
    // The policy is the ConfigMap's rollout.yaml key, in the same mount as config.yaml.
    const config = value("--config") ?? "";
    assert.equal(value("--policy"), `${config.slice(0, config.lastIndexOf("/"))}/rollout.yaml`);
    assert.equal(value("--rollout-state"), "$(ROLLOUT_STATE)");
    // The count comes from the Deployment when the hook runs: no constant to keep in step.
    assert.equal(value("--expect"), undefined);
    const deployment = findObject(base, "Deployment", "sfu-server");
    assert.equal(value("--expect-deployment"), `${deployment.metadata.namespace}/${deployment.metadata.name}`);
    const timeout = Number(value("--timeout"));
    assert.ok(timeout >= 180, "covers the 60-120 s ConfigMap propagation");
    // The wait for reverts after a halt (120 s) and start-up come on top.
    assert.ok(timeout + 120 + 60 <= job.spec.activeDeadlineSeconds, "finishes before the Job's deadline");
  });

  it("runs as the hook ServiceAccount with the restricted security profile", () => {
    const spec = podSpec(job);
    findObject(base, "ServiceAccount", spec.serviceAccountName);
    assert.equal(spec.serviceAccountName, "sfu-config-hook");
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.securityContext.seccompProfile.type, "RuntimeDefault");
    for (const c of allContainers(spec)) {
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
      assert.ok(c.resources.limits.memory && c.resources.requests.cpu);
    }
  });

  it("uses the same agent image as the SFU pods' sidecar", () => {
    const sidecar = podSpec(findObject(base, "Deployment", "sfu-server")).initContainers[0];
    assert.equal(podSpec(job).containers[0].image, sidecar.image);
    assert.ok(existsSync(join(REPO_ROOT, "Dockerfile.agent")));
  });
});
