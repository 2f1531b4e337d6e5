/**
 * What users deploy without editing k8s/base: the example overlay
 * (k8s/overlays/example), copied and edited as its comments say, and the
 * sidecar Component (k8s/components/sidecar) rendered onto a Deployment of
 * someone else's SFU that the test writes. Rendered with `kubectl kustomize`
 * and validated against the Kubernetes schemas.
 */
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import {
  EXAMPLE_HOOK,
  EXAMPLE_OVERLAY,
  findObject,
  K8S_DIR,
  type K8sObject,
  podSpec,
  renderK8s,
  renderKustomization,
  validateWithModel,
} from "./manifests.ts";

const SYNC_OPTIONS = "argocd.argoproj.io/sync-options";
const COMPONENT = join(K8S_DIR, "components", "sidecar");

let tmp = "";
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "sfu-overlay-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Every file under `dir` (relative path -> content). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, "utf8"));
  }
  return out;
}

/**
 * Drops every `image` field and the config's first line (its `$schema` path
 * is relative to where the file lives), to compare objects that differ only
 * in registry.
 */
function withoutImages(o: K8sObject): K8sObject {
  return JSON.parse(
    JSON.stringify(o, (k, v) => {
      if (k === "image") return undefined;
      if (k === "config.yaml" && typeof v === "string") return v.replace(/^# yaml-language-server: .*\n/, "");
      return v;
    }),
  ) as K8sObject;
}

describe("the example overlay", () => {
  let base: K8sObject[];
  let overlay: K8sObject[];
  before(async () => {
    [base, overlay] = await Promise.all([renderK8s("base"), renderK8s(EXAMPLE_OVERLAY)]);
  });

  it("renders the base with the overlay's registry and nothing else changed", () => {
    assert.equal(overlay.length, base.length);
    for (const o of overlay) {
      const b = findObject(base, o.kind, o.metadata.name);
      assert.deepEqual(withoutImages(o), withoutImages(b), `${o.kind}/${o.metadata.name}`);
    }
    for (const c of [
      ...podSpec(findObject(overlay, "Deployment", "sfu-server")).initContainers,
      ...podSpec(findObject(overlay, "Deployment", "sfu-server")).containers,
    ])
      assert.match(c.image, /^111122223333\.dkr\.ecr\.us-east-1\.amazonaws\.com\/sfu-config\/(agent|sfu):0\.1\.0$/);
  });

  it("ships a valid config, the same as the base's example", async () => {
    const text = await readFile(join(K8S_DIR, EXAMPLE_OVERLAY, "config.yaml"), "utf8");
    const loaded = await loadConfigText(text, { checkFiles: false });
    assert.ok(loaded.ok, JSON.stringify(loaded));
    const baseText = await readFile(join(K8S_DIR, "base", "config.yaml"), "utf8");
    const body = (t: string) => t.split("\n").slice(1).join("\n");
    assert.equal(body(text), body(baseText), "only the $schema path differs");
  });

  it("its hook runs the same agent image as its SFU pods' sidecar", async () => {
    const job = findObject(await renderK8s(EXAMPLE_HOOK), "Job", "sfu-config-notify");
    const sidecar = podSpec(findObject(overlay, "Deployment", "sfu-server")).initContainers[0];
    assert.equal(podSpec(job).containers[0].image, sidecar.image);
  });

  it("a copy edited as its comments say deploys the edits, and k8s/base stays untouched", async () => {
    const k8s = join(tmp, "copy", "k8s");
    await cp(K8S_DIR, k8s, { recursive: true });
    const baseBefore = await snapshot(join(k8s, "base"));
    const prod = join(k8s, "overlays", "prod");
    await cp(join(k8s, "overlays", "example"), prod, { recursive: true });
    const config = (await readFile(join(prod, "config.yaml"), "utf8")).replace(/level: \w+/, "level: debug");
    await writeFile(join(prod, "config.yaml"), config);
    const awsEnv = (await readFile(join(prod, "aws.env"), "utf8")).replaceAll("111122223333", "444455556666");
    await writeFile(join(prod, "aws.env"), awsEnv);
    const kustomization = (await readFile(join(prod, "kustomization.yaml"), "utf8"))
      .replaceAll("111122223333.dkr.ecr.us-east-1", "444455556666.dkr.ecr.eu-west-1")
      .replace("count: 3", "count: 5");
    await writeFile(join(prod, "kustomization.yaml"), kustomization);

    const rendered = await renderKustomization(prod);
    const cm = findObject(rendered, "ConfigMap", "sfu-config");
    assert.equal(cm.data["config.yaml"], config);
    assert.match(cm.data["config.yaml"], /level: debug/);
    assert.equal(cm.metadata.annotations[SYNC_OPTIONS], "Delete=confirm");
    const aws = findObject(rendered, "ConfigMap", "sfu-aws");
    assert.match(aws.data.TOPIC_ARN, /:444455556666:/);
    assert.equal(aws.metadata.annotations[SYNC_OPTIONS], "Delete=confirm");
    const roleOf = (name: string) =>
      findObject(rendered, "ServiceAccount", name).metadata.annotations["eks.amazonaws.com/role-arn"];
    assert.equal(roleOf("sfu-server"), "arn:aws:iam::444455556666:role/sfu-config-agent");
    assert.equal(roleOf("sfu-config-hook"), "arn:aws:iam::444455556666:role/sfu-config-hook");
    const deployment = findObject(rendered, "Deployment", "sfu-server");
    assert.equal(deployment.spec.replicas, 5);
    for (const c of [...podSpec(deployment).initContainers, ...podSpec(deployment).containers])
      assert.ok(c.image.startsWith("444455556666.dkr.ecr.eu-west-1.amazonaws.com/sfu-config/"), c.image);
    // A config edit never reaches the pod template (no hash suffix, no checksum).
    const example = findObject(overlay, "Deployment", "sfu-server");
    assert.deepEqual(withoutImages(deployment.spec.template), withoutImages(example.spec.template));
    for (const o of rendered) await validateWithModel(o);
    assert.deepEqual(await snapshot(join(k8s, "base")), baseBefore);
  });
});

describe("the sidecar Component on a Deployment of someone else's SFU", () => {
  const theirs = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "their-sfu", labels: { app: "their-sfu" } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "their-sfu" } },
      template: {
        metadata: { labels: { app: "their-sfu" } },
        spec: {
          containers: [
            {
              name: "sfu",
              image: "registry.example/their-sfu:4.2",
              args: ["--config-agent=ws://127.0.0.1:7070"],
              ports: [{ name: "http", containerPort: 8443 }],
              volumeMounts: [{ name: "data", mountPath: "/data" }],
            },
          ],
          volumes: [{ name: "data", emptyDir: {} }],
        },
      },
    },
  };
  let app = "";
  let rendered: K8sObject[];

  /** Writes a kustomization in `dir` that uses the component on `deployments`, and renders it. */
  async function renderWithComponent(dir: string, deployments: object[], config: string): Promise<K8sObject[]> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "deployments.yaml"), deployments.map((d) => JSON.stringify(d)).join("\n---\n"));
    await writeFile(join(dir, "config.yaml"), config);
    await writeFile(
      join(dir, "aws.env"),
      "TOPIC_ARN=arn:aws:sns:eu-west-1:444455556666:reload\nSTATUS_TOPIC_ARN=\nAGENT_ROLE_ARN=arn:aws:iam::444455556666:role/their-agent\n",
    );
    const kustomization = {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      namespace: "media",
      resources: ["deployments.yaml"],
      components: [relative(dir, COMPONENT)],
      configMapGenerator: [
        { name: "sfu-config", files: ["config.yaml"], options: { disableNameSuffixHash: true } },
        { name: "sfu-aws", envs: ["aws.env"], options: { disableNameSuffixHash: true } },
      ],
    };
    await writeFile(join(dir, "kustomization.yaml"), JSON.stringify(kustomization));
    return renderKustomization(dir);
  }

  before(async () => {
    app = join(tmp, "their-app");
    rendered = await renderWithComponent(app, [theirs], await readFile(join(K8S_DIR, "base", "config.yaml"), "utf8"));
  });

  it("adds the agent sidecar, its volumes and ServiceAccount, and leaves their SFU container and volume as they were", async () => {
    const deployment = findObject(rendered, "Deployment", "their-sfu");
    const spec = podSpec(deployment);
    assert.deepEqual(spec.containers, theirs.spec.template.spec.containers);
    assert.deepEqual(
      spec.initContainers.map((c: K8sObject) => [c.name, c.restartPolicy]),
      [["sfu-agent", "Always"]],
    );
    assert.deepEqual(spec.volumes.map((v: K8sObject) => v.name).sort(), ["data", "sfu-agent-tmp", "sfu-config"]);
    assert.equal(spec.serviceAccountName, "sfu-agent");
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(deployment.spec.template.metadata, theirs.spec.template.metadata);
    for (const o of rendered) await validateWithModel(o);
  });

  it("adds only a ServiceAccount besides: the role ARN and queue settings come from their sfu-aws ConfigMap", () => {
    assert.deepEqual(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      "ConfigMap/sfu-aws",
      "ConfigMap/sfu-config",
      "Deployment/their-sfu",
      "ServiceAccount/sfu-agent",
    ]);
    const sa = findObject(rendered, "ServiceAccount", "sfu-agent");
    assert.equal(sa.metadata.namespace, "media");
    assert.equal(sa.metadata.annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::444455556666:role/their-agent");
    assert.equal(sa.automountServiceAccountToken, false);
    const agent = podSpec(findObject(rendered, "Deployment", "their-sfu")).initContainers[0];
    const env = Object.fromEntries(
      agent.env.map((e: K8sObject) => [e.name, e.valueFrom?.configMapKeyRef ?? e.valueFrom?.fieldRef]),
    );
    assert.deepEqual(env.SFU_AGENT_TOPIC_ARN, { name: "sfu-aws", key: "TOPIC_ARN" });
    assert.deepEqual(env.SFU_AGENT_STATUS_TOPIC_ARN, { name: "sfu-aws", key: "STATUS_TOPIC_ARN" });
    assert.deepEqual(env.POD_NAME, { fieldPath: "metadata.name" });
    const aws = findObject(rendered, "ConfigMap", "sfu-aws");
    for (const key of ["TOPIC_ARN", "STATUS_TOPIC_ARN"]) assert.equal(typeof aws.data[key], "string", key);
  });

  it("mounts the config directory read-only, never with subPath, from the sfu-config ConfigMap", () => {
    const spec = podSpec(findObject(rendered, "Deployment", "their-sfu"));
    const agent = spec.initContainers[0];
    const mount = agent.volumeMounts.find((m: K8sObject) => m.mountPath === "/etc/sfu");
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined);
    const volume = spec.volumes.find((v: K8sObject) => v.name === mount.name);
    const sources = volume.projected.sources;
    assert.equal(sources.find((s: K8sObject) => s.configMap).configMap.name, "sfu-config");
    assert.ok(agent.args.includes("--config-dir=/etc/sfu"));
    findObject(rendered, "ConfigMap", "sfu-config");
  });

  it("runs the same agent container as k8s/base (only volume names and the user id differ)", async () => {
    const baseDeployment = findObject(await renderK8s("base"), "Deployment", "sfu-server");
    const baseAgent = structuredClone(podSpec(baseDeployment).initContainers[0]);
    const agent = structuredClone(podSpec(findObject(rendered, "Deployment", "their-sfu")).initContainers[0]);
    // The base sets the user at pod level; the component cannot assume their pod's.
    assert.equal(agent.securityContext.runAsUser, baseDeployment.spec.template.spec.securityContext.runAsUser);
    delete agent.securityContext.runAsUser;
    delete agent.securityContext.runAsGroup;
    const names = (c: K8sObject) => c.volumeMounts.map((m: K8sObject) => m.mountPath);
    assert.deepEqual(names(agent), names(baseAgent));
    for (const c of [agent, baseAgent]) for (const m of c.volumeMounts) m.name = m.mountPath;
    assert.deepEqual(agent, baseAgent);
  });

  it("patches every Deployment of the kustomization, and a config change leaves their pod templates alone", async () => {
    const second = structuredClone(theirs);
    second.metadata.name = "their-sfu-eu";
    const configA = await readFile(join(K8S_DIR, "base", "config.yaml"), "utf8");
    const a = await renderWithComponent(join(tmp, "two-a"), [theirs, second], configA);
    const b = await renderWithComponent(
      join(tmp, "two-b"),
      [theirs, second],
      configA.replace(/level: \w+/, "level: warn"),
    );
    for (const name of ["their-sfu", "their-sfu-eu"]) {
      const da = findObject(a, "Deployment", name);
      assert.equal(podSpec(da).initContainers[0].name, "sfu-agent");
      assert.deepEqual(da.spec.template, findObject(b, "Deployment", name).spec.template);
    }
    assert.notEqual(
      findObject(a, "ConfigMap", "sfu-config").data["config.yaml"],
      findObject(b, "ConfigMap", "sfu-config").data["config.yaml"],
    );
  });

  it("documents every queue setting it reads in aws.env.example", async () => {
    const example = await readFile(join(COMPONENT, "aws.env.example"), "utf8");
    const keys = new Set([...example.matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]));
    const kustomization = parse(await readFile(join(COMPONENT, "kustomization.yaml"), "utf8")) as K8sObject;
    const agent = podSpec(findObject(rendered, "Deployment", "their-sfu")).initContainers[0];
    const read = [
      ...agent.env
        .filter((e: K8sObject) => e.valueFrom?.configMapKeyRef)
        .map((e: K8sObject) => e.valueFrom.configMapKeyRef.key),
      ...kustomization.replacements.map((r: K8sObject) => String(r.source.fieldPath).replace("data.", "")),
    ];
    for (const key of read) assert.ok(keys.has(key), `${key} is in aws.env.example`);
  });
});
