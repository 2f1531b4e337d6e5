/**
 * The local stack with the kubelet model (`npm start`'s default,
 * `kubeletSyncMs`): real agents and SFUs, the local pod API and the real
 * hook (`sfu-agent notify --wait --expect-deployment`, through
 * @kubernetes/client-node). The periodic sync is set to an hour, so a pod
 * can only get an edit through the nudge: the hook annotates each pod (only
 * the annotation), the kubelet model syncs it at once, every agent applies
 * the edit and reports its propagation figures in /status, and the hook
 * prints its summary.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { AgentStatusDoc } from "../../../agent/fleet/fleet-status.ts";
import { NUDGE_ANNOTATION } from "../../../agent/hook/pod-nudger.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { type LocalStack, startLocalStack } from "../../../scripts/local/local-stack.ts";
import { until } from "../../helpers/until.ts";

const EXAMPLE = join(import.meta.dirname, "..", "..", "..", "k8s", "base", "config.yaml");

describe("npm start's kubelet model: the hook's nudge delivers an edit", { timeout: 120_000 }, () => {
  let dir = "";
  let source = "";
  let stack: LocalStack;
  const lines: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-kubelet-sync-"));
    source = join(dir, "config.yaml");
    await writeFile(source, (await readFile(EXAMPLE, "utf8")).replace(/listenIp: .*/, "listenIp: 127.0.0.1"));
    stack = await startLocalStack({
      pods: 2,
      kubeletDelayMs: 1000,
      kubeletSyncMs: 3_600_000,
      configFile: source,
      propagationTimeout: "60s",
      onEvent: (l) => lines.push(l),
    });
  });

  after(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("every pod applies the edit through the nudge, with its figures in /status", async () => {
    const text = (await readFile(source, "utf8")).replace(/level: \w+/, "level: debug");
    const next = await loadConfigText(text);
    assert.ok(next.ok);
    await writeFile(source, text);
    const statuses = await Promise.all(
      stack.pods.map((p) =>
        until(
          async () => {
            const s = (await (await fetch(`${p.agentUrl}/status`)).json()) as AgentStatusDoc;
            return s.applied?.hash === next.hash && s.settlements.some((x) => x.hash === next.hash) ? s : null;
          },
          60_000,
          `${p.name} applied the edit`,
          200,
        ),
      ),
    );
    for (const s of statuses) {
      const settled: AgentStatusDoc["settlements"][number] | undefined = s.settlements.findLast(
        (x) => x.hash === next.hash,
      );
      assert.equal(settled?.outcome, "applied");
      assert.equal(typeof settled?.propagationSeconds, "number");
      assert.equal(typeof settled?.eventToAppliedSeconds, "number");
    }
    const api = stack.podApi;
    assert.ok(api);
    const patches = api.requests.filter((r) => r.method === "PATCH");
    assert.deepEqual(patches.map((r) => r.path).sort(), [
      "/api/v1/namespaces/sfu/pods/sfu-local-0",
      "/api/v1/namespaces/sfu/pods/sfu-local-1",
    ]);
    for (const r of patches)
      assert.deepEqual(JSON.parse(r.body), { metadata: { annotations: { [NUDGE_ANNOTATION]: `${next.hash};n=1` } } });
    const hook = await stack.lastHook();
    assert.equal(hook?.code, 0, hook?.log);
    assert.match(hook?.log ?? "", /nudged 2\/2 pods/);
    assert.match(hook?.log ?? "", /event to applied: p50 \S+ p99 \S+ max \S+ \(2 pods\)/);
    assert.ok(lines.some((l) => /kubelet: swapped \.\.data in sfu-local-0 \(pod annotated: synced at once\)/.test(l)));
  });
});
