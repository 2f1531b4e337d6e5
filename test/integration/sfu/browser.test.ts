/**
 * The demo page in headless Chromium (Debian's /usr/bin/chromium, fake
 * camera and microphone): two pages in one room each receive the other's
 * video, show the applied config version, and keep receiving across a
 * config change.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { inboundVideo, launchChromium, pollUntil as waitFor } from "../../helpers/browser.ts";
import { type SfuUnderTest, startWithAgent, testConfig } from "./harness.ts";

describe("demo page in headless Chromium", { timeout: 90_000 }, () => {
  let sfu: SfuUnderTest;
  let browser: Browser;

  before(async () => {
    sfu = await startWithAgent(testConfig());
    browser = await launchChromium();
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
