/**
 * Media through a real TURN server with the SFU's ephemeral credentials, and
 * a secret rotation without restart, all real processes: the local stack
 * (`npm start`'s: a real agent and SFU in a pod directory, the kubelet
 * stand-in swapping the mounted Secret with the AtomicWriter's `..data`
 * rename), coturn (`use-auth-secret`, holding the old and the new shared
 * secret as during a rotation's overlap) and Chromium. Two pages force
 * `iceTransportPolicy: "relay"` (demo page `&relay=1`), so their media can
 * only flow through coturn. Then the auth secret file changes: the kubelet
 * stand-in swaps it into the pod, the agent notices and sends
 * secrets-reload, the SFU acks, and a third page joining afterwards relays
 * with a credential of the new secret while the first call keeps flowing.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { type LocalStack, startLocalStack } from "../../../scripts/local/local-stack.ts";
import { inboundVideo, launchChromium, pollUntil } from "../../helpers/browser.ts";
import { type Coturn, startCoturn } from "../../helpers/coturn.ts";
import { until } from "../../helpers/until.ts";

const OLD = "rotation-old-5d1c9e";
const NEW = "rotation-new-a83f02";

/** The ICE servers and participant id a page received in `joined`, from the frames Chromium saw. */
interface Joined {
  id: string;
  iceServers: { urls: string[]; username?: string; credential?: string }[];
}

/** Local and remote candidate types of the page's selected candidate pair. */
async function selectedPair(page: Page): Promise<{ local: string; remote: string } | null> {
  return page.evaluate(async () => {
    type Stats = Map<string, Record<string, unknown>>;
    const pc = (globalThis as unknown as { sfuDemo: { pc: { getStats(): Promise<Stats> } | null } }).sfuDemo.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pairId: string | undefined;
    stats.forEach((s) => {
      if (s.type === "transport" && typeof s.selectedCandidatePairId === "string") pairId = s.selectedCandidatePairId;
    });
    const pair = pairId ? stats.get(pairId) : undefined;
    if (!pair) return null;
    const local = stats.get(String(pair.localCandidateId));
    const remote = stats.get(String(pair.remoteCandidateId));
    return { local: String(local?.candidateType), remote: String(remote?.candidateType) };
  });
}

/** Every signalling frame the pages received (scanned for the secrets at the end). */
const framesToBrowsers: string[] = [];

/** Opens the demo page with relay only and resolves with its `joined` message. */
async function joinRelay(
  context: BrowserContext,
  httpUrl: string,
  name: string,
): Promise<{ page: Page; joined: Joined }> {
  const page = await context.newPage();
  const joined = new Promise<Joined>((resolve) => {
    page.on("websocket", (ws) =>
      ws.on("framereceived", (frame) => {
        framesToBrowsers.push(String(frame.payload));
        const m = JSON.parse(String(frame.payload)) as { type: string } & Joined;
        if (m.type === "joined") resolve({ id: m.id, iceServers: m.iceServers });
      }),
    );
  });
  await page.goto(`${httpUrl}/?room=relay&name=${name}&autojoin=1&relay=1`);
  return { page, joined: await joined };
}

const sign = (secret: string, username: string) => createHmac("sha1", secret).update(username).digest("base64");

describe("media relayed by coturn with ephemeral credentials; rotation without restart", { timeout: 180_000 }, () => {
  let turn: Coturn;
  let stack: LocalStack;
  let browser: Browser;
  let dir: string;
  let secretFile: string;
  let sfuUrl: string;
  let agentUrl: string;

  before(async () => {
    turn = await startCoturn({ secrets: [OLD, NEW] });
    dir = await mkdtemp(join(tmpdir(), "sfu-turn-relay-"));
    secretFile = join(dir, "auth-secret");
    await writeFile(secretFile, `${OLD}\n`);
    const template = await readFile(
      join(import.meta.dirname, "..", "..", "..", "scripts", "local", "config-turn.yaml"),
      "utf8",
    );
    const config = join(dir, "config.yaml");
    await writeFile(
      config,
      template
        .replace("turn:127.0.0.1:3478?transport=udp", turn.url)
        .replace(/credentialTtl: \d+/, "credentialTtl: 600"),
    );
    stack = await startLocalStack({
      pods: 1,
      kubeletDelayMs: 300,
      configFile: config,
      turnAuthSecretFile: secretFile,
      propagationTimeout: "30s",
    });
    sfuUrl = stack.pods[0]!.sfuUrl;
    agentUrl = stack.pods[0]!.agentUrl;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
    await turn?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("two relay-only pages exchange video through coturn; after a rotation a new page relays with the new secret", async () => {
    const context = await browser.newContext();
    const alice = await joinRelay(context, sfuUrl, "alice");
    const bob = await joinRelay(context, sfuUrl, "bob");
    for (const { page, joined } of [alice, bob]) {
      const [server] = joined.iceServers;
      assert.ok(server?.username && server.credential, "a TURN server with credentials");
      assert.deepEqual(server.urls, [turn.url]);
      const [expiry, participant] = server.username.split(":");
      assert.equal(participant, joined.id);
      assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 600)) < 30, `expiry ${expiry} is about now + 600 s`);
      assert.equal(server.credential, sign(OLD, server.username), "minted from the mounted (old) secret");
      await pollUntil(
        () => inboundVideo(page),
        (s) => s.frames > 5,
        "decoded remote frames over the relay",
        30_000,
      );
      const pair = await selectedPair(page);
      assert.equal(pair?.local, "relay", `selected pair ${JSON.stringify(pair)}`);
    }
    const log = await turn.log();
    for (const { joined } of [alice, bob]) {
      assert.ok(log.includes(`user <${joined.iceServers[0]!.username}>`), "coturn saw the page's username");
    }
    assert.match(log, /ALLOCATE processed, success/);

    // Rotation: the Secret changes; the kubelet stand-in swaps ..data in the pod; the agent sends secrets-reload.
    const secretsStatus = async () =>
      (
        (await (await fetch(`${agentUrl}/status`)).json()) as {
          secrets: { generation: number; applied: number | null };
        }
      ).secrets;
    const initial = await secretsStatus();
    await writeFile(secretFile, `${NEW}\n`);
    await until(
      async () => {
        const s = await secretsStatus();
        return s.generation > initial.generation && s.applied === s.generation;
      },
      30_000,
      "the agent to report the rotation acked by the SFU",
      200,
    );
    const before = await Promise.all([alice.page, bob.page].map((p) => inboundVideo(p)));
    const carol = await joinRelay(context, sfuUrl, "carol");
    const carolServer = carol.joined.iceServers[0]!;
    assert.equal(carolServer.credential, sign(NEW, carolServer.username!), "minted from the new secret");
    assert.notEqual(carolServer.credential, sign(OLD, carolServer.username!));
    await pollUntil(
      () => inboundVideo(carol.page),
      (s) => s.frames > 5,
      "the new page decodes frames over the relay",
      30_000,
    );
    assert.equal((await selectedPair(carol.page))?.local, "relay");
    assert.ok((await turn.log()).includes(`user <${carolServer.username}>`));
    // The call that started before the rotation kept flowing (its allocations used the old secret).
    for (const [i, page] of [alice.page, bob.page].entries()) {
      await pollUntil(
        () => inboundVideo(page),
        (s) => s.frames > before[i]!.frames + 20,
        "frames after the rotation on an existing page",
      );
    }
    // Neither shared secret reached a browser, the agent's or the SFU's log, /status or /metrics.
    const logs = await Promise.all(
      (await readdir(stack.workDir))
        .filter((f) => f.endsWith(".log"))
        .map((f) => readFile(join(stack.workDir, f), "utf8")),
    );
    assert.ok(
      logs.some((l) => l.includes("secrets reloaded")),
      "the SFU's log is among those scanned",
    );
    const texts = [...framesToBrowsers, ...logs];
    for (const url of [sfuUrl, agentUrl]) {
      for (const path of ["/status", "/metrics"]) texts.push(await (await fetch(`${url}${path}`)).text());
    }
    assert.ok(
      framesToBrowsers.some((f) => f.includes('"joined"')),
      "the scan saw the joined messages",
    );
    for (const text of texts) assert.ok(!text.includes(OLD) && !text.includes(NEW), "a TURN auth secret leaked");
    await context.close();
  });
});
