/**
 * Invariants of the rendered base: the SFU Deployment with its native-sidecar
 * agent, the config mount, probes, security, drain, PDB, Services and the
 * media port range, all consistent with the example config file.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseRunOptions } from "../../../agent/commands/run-options.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import {
  allContainers,
  exampleConfigText,
  findObject,
  K8S_DIR,
  type K8sObject,
  podSpec,
  REPO_ROOT,
  renderK8s,
} from "./manifests.ts";

const run = promisify(execFile);

let objects: K8sObject[];
let deployment: K8sObject;
let spec: K8sObject;
let agent: K8sObject;
let sfu: K8sObject;
let config: { server: { port: number }; webrtc: { icePortRange: number[] } };

/** Resolves a probe's port (a number or a named container port) to a number. */
function probePort(container: K8sObject, port: number | string): number {
  if (typeof port === "number") return port;
  const p = (container.ports ?? []).find((x: K8sObject) => x.name === port);
  assert.ok(p, `container ${container.name} has a port named ${port}`);
  return p.containerPort;
}

/** The environment a container would see, ConfigMap keys resolved from the rendered objects. */
function containerEnv(container: K8sObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (typeof e.value === "string") env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef) env[e.name] = "sfu-server-7d9f-abcde";
    else if (e.valueFrom?.configMapKeyRef) {
      const cm = findObject(objects, "ConfigMap", e.valueFrom.configMapKeyRef.name);
      const value = cm.data?.[e.valueFrom.configMapKeyRef.key];
      assert.equal(typeof value, "string", `ConfigMap key ${e.valueFrom.configMapKeyRef.key} exists`);
      env[e.name] = value;
    } else assert.fail(`unsupported env source for ${e.name}`);
  }
  return env;
}

before(async () => {
  objects = await renderK8s("base");
  deployment = findObject(objects, "Deployment", "sfu-server");
  spec = podSpec(deployment);
  agent = spec.initContainers.find((c: K8sObject) => c.name === "sfu-agent");
  sfu = spec.containers.find((c: K8sObject) => c.name === "sfu");
  const loaded = await loadConfigText(await exampleConfigText(), { checkFiles: false });
  assert.ok(loaded.ok, "example config loads");
  config = loaded.config as unknown as typeof config;
});

describe("base: the sfu-config ConfigMap", () => {
  it("is generated from k8s/base/config.yaml under a stable name (no hash suffix)", async () => {
    const cm = findObject(objects, "ConfigMap", "sfu-config");
    assert.equal(cm.data["config.yaml"], await exampleConfigText());
    assert.deepEqual(Object.keys(cm.data), ["config.yaml"]);
  });

  it("passes the config loader and `sfu-agent validate`", async () => {
    const cm = findObject(objects, "ConfigMap", "sfu-config");
    const result = await loadConfigText(cm.data["config.yaml"], { source: "config.yaml", checkFiles: false });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
    const { stdout } = await run(
      process.execPath,
      [join(REPO_ROOT, "agent", "cli.ts"), "validate", join(K8S_DIR, "base", "config.yaml")],
      { timeout: 30_000 },
    );
    assert.doesNotMatch(stdout, /error/i);
  });
});

describe("base: the Deployment", () => {
  it("runs 3 replicas and rolls image upgrades one surge pod at a time", () => {
    assert.equal(deployment.spec.replicas, 3);
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  });

  it("runs the agent as a native sidecar gated by a startup probe on /readyz", () => {
    assert.ok(agent, "an init container named sfu-agent");
    assert.equal(agent.restartPolicy, "Always");
    assert.equal(spec.initContainers.length, 1);
    assert.equal(agent.startupProbe?.httpGet?.path, "/readyz");
    assert.equal(agent.livenessProbe?.httpGet?.path, "/healthz");
    assert.deepEqual(agent.args.slice(0, 1), ["run"]);
  });

  it("gives the agent valid `run` options whose ports match the probes and container ports", () => {
    const parsed = parseRunOptions(agent.args.slice(1), containerEnv(agent), "ignored-host");
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error.message);
    const o = parsed.options;
    assert.equal(o.podName, "sfu-server-7d9f-abcde", "POD_NAME from the downward API");
    assert.equal(o.listen.host, "127.0.0.1", "the push server stays inside the pod");
    assert.equal(probePort(agent, agent.startupProbe.httpGet.port), o.http.port);
    assert.equal(probePort(agent, agent.livenessProbe.httpGet.port), o.http.port);
    assert.match(String(o.topicArn), /^arn:aws:sns:[a-z0-9-]+:\d{12}:[\w-]+$/);
    assert.equal(o.queuePrefix, "sfu-config-");
    const mount = agent.volumeMounts.find((m: K8sObject) => m.name === "config");
    assert.equal(o.configDir, mount.mountPath);
    // The state cache lives in the pod's emptyDir (kept across container restarts, never in the image).
    const tmp = agent.volumeMounts.find((m: K8sObject) => m.name === "tmp");
    assert.ok(String(o.rolloutStateCache).startsWith(`${tmp.mountPath}/`), String(o.rolloutStateCache));
    assert.ok(spec.volumes.find((v: K8sObject) => v.name === "tmp").emptyDir);
    const sfuAgentUrl = sfu.args.find((a: string) => a.startsWith("--agent="));
    assert.equal(sfuAgentUrl, `--agent=ws://${o.listen.host}:${o.listen.port}`);
  });

  it("takes POD_NAME from the downward API", () => {
    const podName = agent.env.find((e: K8sObject) => e.name === "POD_NAME");
    assert.equal(podName.valueFrom.fieldRef.fieldPath, "metadata.name");
  });

  it("probes the SFU on /healthz and /readyz at server.port", () => {
    const port = config.server.port;
    assert.equal(probePort(sfu, "http"), port, "container port http = server.port");
    assert.equal(sfu.startupProbe.httpGet.path, "/healthz");
    assert.equal(sfu.livenessProbe.httpGet.path, "/healthz");
    assert.equal(sfu.readinessProbe.httpGet.path, "/readyz");
    for (const p of [sfu.startupProbe, sfu.livenessProbe, sfu.readinessProbe]) {
      assert.equal(probePort(sfu, p.httpGet.port), port);
    }
  });

  it("mounts the config volume read-only as a directory (never subPath) in both containers", () => {
    for (const c of allContainers(spec)) {
      for (const m of c.volumeMounts ?? []) {
        assert.equal(m.subPath, undefined, `${c.name}: ${m.name} has no subPath`);
        assert.equal(m.subPathExpr, undefined, `${c.name}: ${m.name} has no subPathExpr`);
      }
      const mount = c.volumeMounts.find((m: K8sObject) => m.name === "config");
      assert.ok(mount, `${c.name} mounts config`);
      assert.equal(mount.mountPath, "/etc/sfu");
      assert.equal(mount.readOnly, true);
    }
  });

  it("projects the sfu-config ConfigMap and the optional TURN Secret where the example config expects it", async () => {
    const volume = spec.volumes.find((v: K8sObject) => v.name === "config");
    const sources = volume.projected.sources as K8sObject[];
    const cmSource = sources.find((s) => s.configMap);
    assert.equal(cmSource?.configMap.name, "sfu-config");
    assert.equal(cmSource?.configMap.items, undefined, "every key, so config.yaml is always there");
    const secretSource = sources.find((s) => s.secret)?.secret;
    assert.equal(secretSource.optional, true);
    const mounted = (key: string) => {
      const item = (secretSource.items as K8sObject[]).find((i) => i.key === key);
      return item ? `/etc/sfu/${item.path}` : null;
    };
    const text = await exampleConfigText();
    const documented = /credentialFile:\s*(\S+)/.exec(text)?.[1];
    assert.equal(
      mounted("credential"),
      documented,
      "config.yaml's credentialFile example points at the mounted Secret",
    );
    const authSecret = /authSecretFile:\s*(\S+)/.exec(text)?.[1];
    assert.equal(
      mounted("auth-secret"),
      authSecret,
      "config.yaml's authSecretFile example points at the mounted Secret",
    );
    // Both under the directory both containers are told secret files live in.
    for (const c of allContainers(spec)) {
      const flag = (c.args as string[]).find((a) => a.startsWith("--secrets-dir="));
      assert.equal(flag, "--secrets-dir=/etc/sfu/secrets", `${c.name} --secrets-dir`);
    }
    for (const p of [documented, authSecret]) assert.ok(p?.startsWith("/etc/sfu/secrets/"), p);
  });

  it("carries nothing that could change per commit in the pod template", () => {
    const meta = deployment.spec.template.metadata;
    assert.equal(meta.annotations, undefined, "no pod template annotations (checksums, revision stamps)");
    const names = JSON.stringify(spec.volumes);
    assert.doesNotMatch(names, /sfu-config-[a-z0-9]{10}/, "no hash-suffixed ConfigMap name");
  });

  it("sets requests and limits on every container", () => {
    for (const c of allContainers(spec)) {
      for (const kind of ["requests", "limits"]) {
        assert.ok(c.resources?.[kind]?.cpu, `${c.name} ${kind}.cpu`);
        assert.ok(c.resources?.[kind]?.memory, `${c.name} ${kind}.memory`);
      }
    }
  });

  it("runs non-root with a read-only root filesystem, no capabilities and RuntimeDefault seccomp", () => {
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.ok(spec.securityContext.runAsUser > 0);
    assert.equal(spec.securityContext.seccompProfile.type, "RuntimeDefault");
    assert.equal(spec.automountServiceAccountToken, false);
    for (const c of allContainers(spec)) {
      const sc = c.securityContext;
      assert.equal(sc.readOnlyRootFilesystem, true, c.name);
      assert.equal(sc.allowPrivilegeEscalation, false, c.name);
      assert.deepEqual(sc.capabilities.drop, ["ALL"], c.name);
      assert.equal(sc.capabilities.add, undefined, c.name);
      assert.equal(sc.privileged, undefined, c.name);
      const tmp = c.volumeMounts.find((m: K8sObject) => m.mountPath === "/tmp");
      assert.ok(tmp, `${c.name} has a writable /tmp`);
    }
  });

  it("uses the IRSA ServiceAccount", () => {
    assert.equal(spec.serviceAccountName, "sfu-server");
    const sa = findObject(objects, "ServiceAccount", "sfu-server");
    assert.match(sa.metadata.annotations["eks.amazonaws.com/role-arn"], /^arn:aws:iam::\d{12}:role\/[\w+=,.@-]+$/);
    const hookSa = findObject(objects, "ServiceAccount", "sfu-config-hook");
    assert.match(hookSa.metadata.annotations["eks.amazonaws.com/role-arn"], /^arn:aws:iam::\d{12}:role\/[\w+=,.@-]+$/);
  });
});

describe("base: draining live calls", () => {
  it("gives calls a long grace period and drains in preStop", () => {
    assert.ok(spec.terminationGracePeriodSeconds >= 600);
    const command = sfu.lifecycle?.preStop?.exec?.command as string[];
    assert.deepEqual(command.slice(0, 2), ["node", "-e"]);
    assert.match(command[2] as string, new RegExp(`127\\.0\\.0\\.1:${config.server.port}/status`));
  });

  it("the preStop script waits until /status reports no participants, then exits 0", async () => {
    const answers = [2, 1, 0];
    let polls = 0;
    const server = createServer((_req, res) => {
      const participants = answers[Math.min(polls++, answers.length - 1)];
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ applied: null, rooms: 1, participants }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const script = (sfu.lifecycle.preStop.exec.command[2] as string)
        .replace(`127.0.0.1:${config.server.port}`, `127.0.0.1:${port}`)
        .replace("setTimeout(poll, 5000)", "setTimeout(poll, 20)");
      assert.notEqual(script, sfu.lifecycle.preStop.exec.command[2], "the script was pointed at the test server");
      await run(process.execPath, ["-e", script], { timeout: 20_000 });
      assert.equal(polls, 3, "polled until participants reached 0");
    } finally {
      server.close();
    }
  });
});

describe("base: disruption budget, Services and media ports", () => {
  it("has a PodDisruptionBudget over the SFU pods allowing one disruption", () => {
    const pdb = findObject(objects, "PodDisruptionBudget", "sfu-server");
    assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    assert.equal(pdb.spec.maxUnavailable, 1);
  });

  it("exposes signalling through Services that select the pods and target a real port", () => {
    const services = objects.filter((o) => o.kind === "Service");
    assert.ok(services.length >= 1);
    for (const svc of services) {
      assert.deepEqual(svc.spec.selector, deployment.spec.selector.matchLabels, svc.metadata.name);
      for (const p of svc.spec.ports) {
        assert.equal(p.protocol, "TCP", "media never goes through a Service");
        assert.equal(probePort(sfu, p.targetPort), config.server.port);
      }
    }
  });

  it("opens exactly the config's icePortRange for media, plus signalling and the agent's HTTP", () => {
    const np = findObject(objects, "NetworkPolicy", "sfu-server");
    assert.deepEqual(np.spec.podSelector.matchLabels, deployment.spec.selector.matchLabels);
    const ports = np.spec.ingress.flatMap((r: K8sObject) => r.ports) as K8sObject[];
    const udp = ports.filter((p) => p.protocol === "UDP");
    assert.deepEqual(
      udp.map((p) => [p.port, p.endPort]),
      [config.webrtc.icePortRange],
    );
    const tcp = ports
      .filter((p) => p.protocol === "TCP")
      .map((p) => p.port)
      .sort();
    assert.deepEqual(tcp, [config.server.port, probePort(agent, "agent-http")].sort());
  });
});
