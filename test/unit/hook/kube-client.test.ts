/**
 * The hook's Kubernetes client configuration (agent/hook/kube-client.ts):
 * inside a pod, the mounted ServiceAccount (token and cluster CA) over HTTPS,
 * with a rotated token picked up without a restart; outside, KUBECONFIG like
 * kubectl; a clear NOT_IN_CLUSTER otherwise. The in-cluster API here is an
 * HTTPS server on 127.0.0.1 with a certificate from a test CA (the pod's
 * ca.crt), which answers with the Deployment and records each bearer token.
 * Also: the Deployment's selector as a label selector string.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KubeClient, loadKubeConfig, SERVICE_ACCOUNT_DIR, selectorString } from "../../../agent/hook/kube-client.ts";
import { makeCa, makeServerCert } from "../../helpers/tls-certs.ts";

let dir = "";
let root = "";
let server: Server;
let port = 0;
const tokens: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kube-client-"));
  const ca = await makeCa(dir);
  const cert = await makeServerCert(dir, ca, "apiserver");
  root = join(dir, "root");
  const sa = join(root, SERVICE_ACCOUNT_DIR);
  await mkdir(sa, { recursive: true });
  await writeFile(join(sa, "ca.crt"), ca.cert);
  await writeFile(join(sa, "token"), "token-1");
  await writeFile(join(sa, "namespace"), "sfu");
  server = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    tokens.push(req.headers.authorization ?? "");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "Deployment",
        spec: { replicas: 3, selector: { matchLabels: { app: "sfu-server" } } },
        status: { replicas: 3, readyReplicas: 2 },
      }),
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("loadKubeConfig and KubeClient", () => {
  it("inside a pod: the ServiceAccount's token over HTTPS trusting its CA; a rotated token is used without a restart", async (t) => {
    // The client re-reads the token file once a minute (as client-go): the clock is mocked to get there.
    t.mock.timers.enable({ apis: ["Date"], now: Date.now() });
    const env = { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: String(port) };
    const loaded = loadKubeConfig(env, root);
    assert.ok(loaded.ok, loaded.ok ? "" : loaded.message);
    const client = new KubeClient({ config: loaded.config, options: { timeoutMs: 5_000 } });
    const first = await client.readDeployment("sfu", "sfu-server");
    assert.deepEqual(first, { ok: true, desired: 3, current: 3, ready: 2, selector: "app=sfu-server" });
    // The kubelet rotates the projected token file (the old token stays valid for a while).
    await writeFile(join(root, SERVICE_ACCOUNT_DIR, "token"), "token-2");
    assert.ok((await client.readDeployment("sfu", "sfu-server")).ok);
    t.mock.timers.tick(61_000);
    assert.ok((await client.readDeployment("sfu", "sfu-server")).ok);
    assert.deepEqual(tokens, ["Bearer token-1", "Bearer token-1", "Bearer token-2"]);
    assert.equal(client.requests, 3);
  });

  it("refuses a server whose certificate the pod's CA did not sign", async () => {
    const other = await mkdtemp(join(tmpdir(), "kube-client-other-"));
    try {
      const otherCa = await makeCa(other, "other");
      const otherRoot = join(other, "root");
      await mkdir(join(otherRoot, SERVICE_ACCOUNT_DIR), { recursive: true });
      await writeFile(join(otherRoot, SERVICE_ACCOUNT_DIR, "ca.crt"), otherCa.cert);
      await writeFile(join(otherRoot, SERVICE_ACCOUNT_DIR, "token"), "t");
      const loaded = loadKubeConfig(
        { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: String(port) },
        otherRoot,
      );
      assert.ok(loaded.ok);
      const r = await new KubeClient({ config: loaded.config }).readDeployment("sfu", "sfu-server");
      assert.equal(r.ok ? "ok" : r.code, "API_UNREACHABLE");
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("says what is missing: no token in the pod, no configuration at all, an unreadable KUBECONFIG", async () => {
    const empty = await mkdtemp(join(tmpdir(), "kube-client-empty-"));
    try {
      const noToken = loadKubeConfig({ KUBERNETES_SERVICE_HOST: "10.100.0.1" }, empty);
      assert.ok(!noToken.ok && noToken.code === "NOT_IN_CLUSTER");
      assert.match(noToken.message, /no ServiceAccount token in .*: set automountServiceAccountToken: true/);
      const none = loadKubeConfig({ HOME: empty });
      assert.ok(!none.ok);
      assert.match(none.message, /not in a pod \(KUBERNETES_SERVICE_HOST unset\), no KUBECONFIG, no ~\/\.kube\/config/);
      const bad = loadKubeConfig({ KUBECONFIG: join(empty, "missing") });
      assert.ok(!bad.ok);
      assert.match(bad.message, /kubeconfig unreadable/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("selectorString: matchLabels and matchExpressions; null for an empty or malformed selector (never all pods)", () => {
    assert.equal(
      selectorString({
        matchLabels: { "app.kubernetes.io/name": "sfu-server" },
        matchExpressions: [
          { key: "tier", operator: "In", values: ["media", "edge"] },
          { key: "canary", operator: "DoesNotExist" },
          { key: "zone", operator: "NotIn", values: ["x"] },
          { key: "role", operator: "Exists" },
        ],
      }),
      "app.kubernetes.io/name=sfu-server,tier in (media,edge),!canary,zone notin (x),role",
    );
    for (const bad of [
      null,
      {},
      { matchLabels: {} },
      { matchLabels: { a: "b,c" } },
      { matchExpressions: [{ key: "a", operator: "In", values: [] }] },
      { matchExpressions: [{ key: "a", operator: "Near" }] },
    ])
      assert.equal(selectorString(bad), null, JSON.stringify(bad));
  });
});
