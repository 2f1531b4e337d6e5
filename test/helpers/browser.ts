/**
 * Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven
 * by playwright-core with fake camera and microphone, media on loopback, and
 * no background networking (the machine has no internet).
 */
import { type Browser, chromium, type Page } from "playwright-core";
import { chromiumDependency, requireSystemDependency } from "./system-deps.ts";
import { type ReceivedTrack, WeriftTestClient } from "./werift-client.ts";

/** Chromium flags: headless, fake media, loopback ICE allowed, nothing phoning home. */
export const CHROMIUM_ARGS = [
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

/**
 * Launches Debian's Chromium (`apt-get install -y chromium`; `SFU_TEST_CHROMIUM`
 * overrides the path). Rejects at once, naming the install command, when it
 * is not installed.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.SFU_TEST_CHROMIUM || "/usr/bin/chromium";
  requireSystemDependency(chromiumDependency(executablePath));
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

/** Inbound video totals of the demo page's peer connection (`window.sfuDemo.pc`). */
export async function inboundVideo(page: Page): Promise<{ packets: number; frames: number; bytes: number }> {
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

/** Polls `fn` every 250 ms until `ok` holds; throws with the last value after `timeoutMs`. */
export async function pollUntil<T>(
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A call between a browser and a werift client on one SFU (see {@link startBrowserCall}). */
export interface BrowserCall {
  page: Page;
  viewer: WeriftTestClient;
  /** The browser's video as the viewer receives it. */
  fromBrowser: ReceivedTrack;
  /** The viewer's video publisher (100 packets/s). */
  publisher: { stop(): void };
}

/**
 * A call in `room` on the SFU at `sfuUrl`: Chromium joins with its fake
 * camera and microphone, a werift client joins publishing video; resolves
 * once the viewer has the browser's track and the browser receives the
 * viewer's video. The caller closes `page`, `viewer` and `publisher`.
 */
export async function startBrowserCall(browser: Browser, sfuUrl: string, room: string): Promise<BrowserCall> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${sfuUrl}/?room=${room}&name=browser&autojoin=1`);
  const viewer = await WeriftTestClient.join({
    url: `${sfuUrl.replace("http", "ws")}/ws`,
    room,
    name: "viewer",
    publish: { audio: false, video: true },
    timeoutMs: 20_000,
  });
  let publisher: { stop(): void } | null = null;
  try {
    await viewer.waitConnected();
    publisher = viewer.startPublishing({ kind: "video", packetsPerSecond: 100 });
    const [fromBrowser] = await viewer.waitForTracks(1, "video");
    if (!fromBrowser) throw new Error("the viewer got no video track from the browser");
    await pollUntil(
      () => inboundVideo(page),
      (s) => s.packets > 50,
      "the browser receives the viewer's video",
    );
    return { page, viewer, fromBrowser, publisher };
  } catch (err) {
    publisher?.stop();
    await viewer.close().catch(() => {});
    throw err;
  }
}
