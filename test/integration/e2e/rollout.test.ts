/**
 * Browser end to end of a halted progressive rollout over the `npm start
 * --rollout` stack (scripts/local/local-stack.ts with a rollout policy):
 * three pods (agent + SFU processes), the embedded SNS/SQS/S3, the hook
 * running `sfu-agent rollout`. Headless Chromium is in a call with a werift
 * client on a pod outside the canary cohort. A bad change (a listen address
 * no host has: new calls fail ICE on a pod running it) is committed; werift
 * callers give the canary traffic; the canary's ICE failures halt the
 * rollout at step 1 and it reverts. The browser's call never notices: its
 * inbound video keeps flowing without a gap, it is not renegotiated, and
 * its pod never applies the bad hash.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { AgentStatusDoc } from "../../../agent/fleet/fleet-status.ts";
import { cohortRank } from "../../../protocol/cohort.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { type LocalStack, startLocalStack } from "../../../scripts/local/local-stack.ts";
import { DEMO_POLICY, demoConfig, UNREACHABLE_LISTEN_IP } from "../../../scripts/local/rollout-demo.ts";
import { inboundVideo, launchChromium, pollUntil, startBrowserCall } from "../../helpers/browser.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";

const EXAMPLE = join(import.meta.dirname, "..", "..", "..", "k8s", "base", "config.yaml");

async function agentStatus(url: string): Promise<AgentStatusDoc> {
  return (await (await fetch(`${url}/status`)).json()) as AgentStatusDoc;
}

describe("a halted rollout, seen from a browser call on a pod outside the cohort", { timeout: 420_000 }, () => {
  let dir: string;
  let source: string;
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  const clients: WeriftTestClient[] = [];
  const publishers: Array<{ stop(): void }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-e2e-rollout-"));
    source = join(dir, "config.yaml");
    await writeFile(source, demoConfig(await readFile(EXAMPLE, "utf8")));
    const policy = join(dir, "rollout.yaml");
    await writeFile(policy, DEMO_POLICY);
    stack = await startLocalStack({
      pods: 3,
      kubeletDelayMs: 1000,
      configFile: source,
      propagationTimeout: "60s",
      rolloutPolicyFile: policy,
    });
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of publishers) p.stop();
    for (const c of clients) await c.close().catch(() => {});
    await browser?.close();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("the canary halts and reverts; the browser's call on another pod never notices", async () => {
    await stack.syncNow();
    const stable = await loadConfigText(await readFile(source, "utf8"));
    assert.ok(stable.ok);
    const byRank = [...stack.pods].sort((a, b) => cohortRank(a.name) - cohortRank(b.name));
    const canary = byRank[0];
    const other = byRank[2];
    assert.ok(canary && other);

    // The call: Chromium on the highest-ranked pod (last to be in any cohort), a werift viewer.
    const call = await startBrowserCall(browser, other.sfuUrl, "e2e");
    ({ page } = call);
    const { viewer, fromBrowser } = call;
    clients.push(viewer);
    publishers.push(call.publisher);
    const offersBefore = viewer.offers;

    // Callers on the canary, so that its call health counts.
    let stop = false;
    const churn = (async () => {
      for (let i = 0; !stop && i < 300; i++) {
        try {
          const c = await WeriftTestClient.join({
            url: `${canary.sfuUrl.replace("http", "ws")}/ws`,
            room: `churn-${i}`,
            name: `c${i}`,
            publish: { audio: true, video: false },
            timeoutMs: 4_000,
          });
          await c.waitConnected().catch(() => {});
          await c.close().catch(() => {});
        } catch {
          // counted by the SFU
        }
        await new Promise((r) => setTimeout(r, 700));
      }
    })();

    // The bad commit.
    const bad = (await readFile(source, "utf8")).replace(/listenIp: .*/, `listenIp: ${UNREACHABLE_LISTEN_IP}`);
    const badLoaded = await loadConfigText(bad);
    assert.ok(badLoaded.ok);
    const before = stack.lastHook();
    const versionBefore = (await agentStatus(other.agentUrl)).applied?.version;
    const beforeChange = await inboundVideo(page);
    viewer.resetGaps();
    await writeFile(source, bad);
    const hook = await pollUntil(
      async () => ({ h: stack.lastHook() }),
      ({ h }) => h !== null && h !== before,
      "the hook to start",
    );
    const run = await (hook.h as NonNullable<typeof before>);
    stop = true;
    await churn;
    assert.equal(run.code, 1, run.log);
    assert.match(run.log, new RegExp(`halted at step 1 \\(30%\\): (ice|join)-failure-rate on ${canary.name}`));

    // The canary is back on the stable config; the browser's pod never applied the bad one.
    await pollUntil(
      () => agentStatus(canary.agentUrl),
      (s) => s.applied?.hash === stable.hash,
      "the canary reverted",
      30_000,
    );
    const otherStatus = await agentStatus(other.agentUrl);
    assert.equal(otherStatus.applied?.hash, stable.hash);
    assert.equal(otherStatus.applied?.version, versionBefore, "the browser's pod got no config push at all");
    assert.ok(!otherStatus.settlements.some((x) => x.hash === badLoaded.hash && x.outcome === "applied"));

    // The call never noticed.
    await pollUntil(
      () => inboundVideo(page),
      (s) => s.packets > beforeChange.packets + 50,
      "the browser keeps receiving video",
    );
    // The pod got no push, so a gap is the machine's scheduling (Chromium and six Node
    // processes on two shared cores), not the rollout: bounded loosely.
    assert.ok(
      fromBrowser.maxGapSinceResetMs < 2500,
      `no interruption of the browser's stream (longest gap ${fromBrowser.maxGapSinceResetMs.toFixed(0)} ms)`,
    );
    assert.equal(viewer.offers, offersBefore, "the call was not renegotiated");
    assert.equal(viewer.pc.connectionState, "connected");
  });
});
