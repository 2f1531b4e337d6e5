/**
 * End to end over the `npm start` stack (scripts/local/local-stack.ts): an
 * embedded SNS/SQS, two pods (agent in per-pod queue mode + SFU, as real
 * processes) and the simulated kubelet. Headless Chromium joins a room on
 * pod A with fake media and a werift client on pod A subscribes; the config
 * is edited through the source file like a Git change (codec list and log
 * level); every pod settles `applied`, the browser's inbound video (the
 * werift client's synthetic RTP: counted, not decodable) keeps
 * growing across the change, a new joiner negotiates the new codec set, and
 * an invalid edit is rejected by every pod with the previous config in force.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { AgentStatusDoc } from "../../../agent/fleet/fleet-status.ts";
import { loadConfigText } from "../../../protocol/config-loader.ts";
import { type LocalStack, startLocalStack } from "../../../scripts/local/local-stack.ts";
import { inboundVideo, launchChromium, pollUntil, startBrowserCall } from "../../helpers/browser.ts";
import { WeriftTestClient } from "../../helpers/werift-client.ts";

const EXAMPLE = join(import.meta.dirname, "..", "..", "..", "k8s", "base", "config.yaml");

/** The example config with media kept on loopback and the given edits. */
async function exampleWith(codecs: string, level: string): Promise<string> {
  const text = await readFile(EXAMPLE, "utf8");
  const out = text
    .replace(/listenIp: .*/, "listenIp: 127.0.0.1")
    .replace(/codecs: \[[^\]]*\]/, `codecs: [${codecs}]`)
    .replace(/level: \w+/, `level: ${level}`);
  assert.notEqual(out, text, "the example config has the fields this test edits");
  return out;
}

async function agentStatus(url: string): Promise<AgentStatusDoc> {
  const res = await fetch(`${url}/status`);
  assert.equal(res.status, 200);
  return (await res.json()) as AgentStatusDoc;
}

async function sfuStatus(url: string): Promise<{ applied: { version: number; hash: string } | null }> {
  return (await (await fetch(`${url}/status`)).json()) as { applied: { version: number; hash: string } | null };
}

describe("local stack end to end", { timeout: 180_000 }, () => {
  let dir: string;
  let source: string;
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  const clients: WeriftTestClient[] = [];
  const publishers: Array<{ stop(): void }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sfu-e2e-"));
    source = join(dir, "config.yaml");
    await writeFile(source, await exampleWith("vp8, h264, opus", "info"));
    stack = await startLocalStack({ pods: 2, kubeletDelayMs: 1000, configFile: source, propagationTimeout: "30s" });
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of publishers) p.stop();
    for (const c of clients) await c.close().catch(() => {});
    await browser?.close();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a config edit reaches every pod without interrupting a call; an invalid edit changes nothing", async () => {
    const [podA, podB] = stack.pods as [(typeof stack.pods)[0], (typeof stack.pods)[0]];
    const initial = await loadConfigText(await readFile(source, "utf8"));
    assert.ok(initial.ok);
    for (const pod of stack.pods) {
      await pollUntil(
        () => agentStatus(pod.agentUrl),
        (s) => s.applied?.hash === initial.hash,
        `${pod.name} applied the initial config`,
      );
    }

    // A call on pod A: Chromium publishes fake camera + mic, a werift client subscribes.
    const call = await startBrowserCall(browser, podA.sfuUrl, "e2e");
    ({ page } = call);
    const { viewer, fromBrowser } = call;
    clients.push(viewer);
    publishers.push(call.publisher);
    const offersBefore = viewer.offers;

    // The Git change: codec list and log level.
    await writeFile(source, await exampleWith("vp9, opus", "debug"));
    const edited = await loadConfigText(await readFile(source, "utf8"));
    assert.ok(edited.ok);
    const beforeChange = await inboundVideo(page);
    const packetsBefore = fromBrowser.packets;
    viewer.resetGaps();
    for (const pod of stack.pods) {
      const s: AgentStatusDoc = await pollUntil<AgentStatusDoc>(
        () => agentStatus(pod.agentUrl),
        (st) => st.settlements.some((x) => x.hash === edited.hash && x.outcome === "applied"),
        `${pod.name} settles the edit as applied`,
        30_000,
      );
      assert.equal(s.applied?.hash, edited.hash);
      assert.match(s.desired?.revision ?? "", /^local-\d+$/, "the revision from the reload event is shown");
      assert.equal((await sfuStatus(pod.sfuUrl)).applied?.hash, edited.hash, `${pod.name}'s SFU applied it`);
    }
    await pollUntil(
      () => inboundVideo(page),
      (s) => s.packets > beforeChange.packets + 50,
      "the browser keeps receiving video across the change",
    );
    await viewer.waitFor(() => fromBrowser.packets > packetsBefore + 50, "the viewer keeps receiving the browser");
    assert.ok(
      fromBrowser.maxGapSinceResetMs < 1000,
      `no interruption of the browser's stream (longest gap ${fromBrowser.maxGapSinceResetMs.toFixed(0)} ms)`,
    );
    assert.equal(viewer.offers, offersBefore, "the live session was not renegotiated");

    // A new joiner after the change negotiates the new codec set (VP9 only).
    const joiner = await WeriftTestClient.join({
      url: `${podA.sfuUrl.replace("http", "ws")}/ws`,
      room: "e2e",
      name: "late",
      publish: { audio: false, video: true },
      timeoutMs: 20_000,
    });
    clients.push(joiner);
    await joiner.waitPublishReady("video");
    assert.equal(joiner.publishCodecs.get("video"), "video/VP9");

    // An invalid edit: every pod rejects it and keeps the previous config.
    await writeFile(source, (await exampleWith("vp9", "debug")).replace("codecs: [vp9]", "codecs: [vp9]   # no audio"));
    for (const pod of [podA, podB]) {
      const s: AgentStatusDoc = await pollUntil<AgentStatusDoc>(
        () => agentStatus(pod.agentUrl),
        (st) => st.lastError?.code === "INVALID_CONFIG" && /audio codec/.test(st.lastError.message),
        `${pod.name} reports the invalid edit`,
        30_000,
      );
      assert.match(s.lastError?.message ?? "", /config\.yaml:\d+:\d+: \/webrtc\/codecs/);
      assert.equal(s.applied?.hash, edited.hash, "the previous config stays applied");
      assert.equal(s.desired?.hash, edited.hash, "the invalid file never becomes desired");
      assert.equal((await sfuStatus(pod.sfuUrl)).applied?.hash, edited.hash);
    }
    const stillFlowing = await inboundVideo(page);
    await pollUntil(
      () => inboundVideo(page),
      (s) => s.packets > stillFlowing.packets + 20,
      "the call survives the rejected edit",
    );
  });
});
