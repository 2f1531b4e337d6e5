/**
 * The demo page in headless Chromium (Debian's /usr/bin/chromium, fake
 * camera and microphone): two pages in one room each receive the other's
 * video, show the applied config version, and keep receiving across a
 * config change.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { type SfuUnderTest, sleep, startWithAgent, testConfig } from "./harness.ts";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

/** Sum of inbound video packets and decoded frames on the page's peer connection. */
async function inboundVideo(page: Page): Promise<{ packets: number; frames: number; bytes: number }> {
  return page.evaluate(async () => {
    // Runs in the page (DOM types are not in this project's lib).
    type StatsPc = { getStats(): Promise<{ forEach(cb: (s: Record<string, unknown>) => void): void }> };
    const pc = (globalThis as unknown as { sfuDemo: { pc: StatsPc | null } }).sfuDemo.pc;
    const out = { packets: 0, frames: 0, bytes: 0 };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.packets += Number(s.packetsReceived ?? 0);
        out.frames += Number(s.framesDecoded ?? 0);
        out.bytes += Number(s.bytesReceived ?? 0);
      }
    });
    return out;
  });
}

async function waitFor<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(250);
  }
}

describe("demo page in headless Chromium", { timeout: 90_000 }, () => {
  let sfu: SfuUnderTest;
  let browser: Browser;

  before(async () => {
    sfu = await startWithAgent(testConfig());
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await sfu?.stop();
  });

  it("two pages see each other's video, show the applied config and survive a config change", async () => {
    const context = await browser.newContext();
    const alice = await context.newPage();
    const bob = await context.newPage();
    await alice.goto(`${sfu.httpUrl}/?room=call&name=alice&autojoin=1`);
    await bob.goto(`${sfu.httpUrl}/?room=call&name=bob&autojoin=1`);
    for (const page of [alice, bob]) {
      await page.waitForSelector("video.remote", { timeout: 20_000 });
      assert.equal(await page.getAttribute("#config", "data-version"), "1");
      const first = await waitFor(
        () => inboundVideo(page),
        (s) => s.frames > 5,
        "decoded remote frames",
      );
      const later = await waitFor(
        () => inboundVideo(page),
        (s) => s.packets > first.packets + 20,
        "inbound-rtp growth",
      );
      assert.ok(later.bytes > first.bytes);
    }
    assert.equal(await alice.locator("video.remote").count(), 1, "one remote participant, one <video>");
    // Config change mid-call: both pages show version 2, both videos keep flowing, nothing renegotiates.
    const offersBefore = [...sfu.server.rooms.rooms.get("call")!.participants.values()].map((p) => p.offersSent);
    const reply = await sfu.agent!.pushAndWait(testConfig({ codecs: ["vp9", "vp8", "opus"], logLevel: "info" }));
    assert.equal(reply.type, "ack");
    for (const page of [alice, bob]) {
      await page.waitForSelector('#config[data-version="2"]', { timeout: 5000 });
      const before = await inboundVideo(page);
      await waitFor(
        () => inboundVideo(page),
        (s) => s.frames > before.frames + 10,
        "frames after the config change",
      );
    }
    assert.deepEqual(
      [...sfu.server.rooms.rooms.get("call")!.participants.values()].map((p) => p.offersSent),
      offersBefore,
    );
    await context.close();
  });
});
