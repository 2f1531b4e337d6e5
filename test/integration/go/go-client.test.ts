/**
 * The Go client package (protocol/clients/go, package sfuconfig) and its
 * pion SFU example, from the Node test suite: `go vet` and `go test` on the
 * package (PROTOCOL.md's hash vectors and the escaping traps), its hash
 * against the protocol's own (protocol/hash.ts) on generated values, the example
 * built once (GOPATH mode against Debian's Go packages, offline, one shared
 * build cache), `sfu-agent conformance` against the built binary, and one
 * headless Chromium call through it while the real agent (`sfu-agent run`)
 * pushes a change: the call keeps flowing on its negotiated codec, a new
 * call gets the new one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { Browser, Page } from "playwright-core";
import { parse } from "yaml";
import { CASES } from "../../../agent/conformance/cases.ts";
import { hashVector, loadBaseConfig } from "../../../agent/conformance/test-configs.ts";
import { canonicalJson, configHash } from "../../../protocol/hash.ts";
import { AtomicWriter } from "../../../scripts/local/atomic-writer.ts";
import { agentRunArgs, freePort, NodeProcess } from "../../../scripts/local/processes.ts";
import { inboundVideo, launchChromium, pollUntil } from "../../helpers/browser.ts";
import { configHash as configTextHash } from "../../helpers/config-text.ts";
import { buildGoProgram, buildPionSfu, GO_PACKAGE_DIR, requireGo, runGo } from "../../helpers/go-toolchain.ts";
import { caseOutcomes, ROOT, spawnChild, startKit, summaryLine } from "../conformance/harness.ts";

const EXAMPLE = join(ROOT, "k8s", "base", "config.yaml");

/** The example config on loopback with `server.port`, the codec list and `limits.maxRooms` set. */
async function exampleWith(port: number, codecs: string, maxRooms: number): Promise<string> {
  const text = await readFile(EXAMPLE, "utf8");
  const out = text
    .replace(/port: 8080/, `port: ${port}`)
    .replace(/listenIp: .*/, "listenIp: 127.0.0.1")
    .replace(/codecs: \[[^\]]*\]/, `codecs: [${codecs}]`)
    .replace(/maxRooms: \d+/, `maxRooms: ${maxRooms}`);
  assert.notEqual(out, text);
  return out;
}

/** The MIME types of the video the page receives (from its peer connection's stats). */
async function inboundVideoCodecs(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    type StatsPc = { getStats(): Promise<{ forEach(cb: (s: Record<string, unknown>) => void): void }> };
    const pc = (globalThis as unknown as { sfuDemo: { pc: StatsPc | null } }).sfuDemo.pc;
    if (!pc) return [];
    const stats: Record<string, unknown>[] = [];
    (await pc.getStats()).forEach((s) => {
      stats.push(s);
    });
    const codecs = new Map(stats.filter((s) => s.type === "codec").map((s) => [s.id, String(s.mimeType)]));
    return stats
      .filter((s) => s.type === "inbound-rtp" && s.kind === "video" && s.codecId)
      .map((s) => codecs.get(s.codecId) ?? "?");
  });
}

/**
 * Reads a JSON array from stdin and prints, for each element, the package's
 * [CanonicalJSONText, HashJSON, Hash of the value decoded into any], or
 * ["error", message] when the package refuses it.
 */
const HASH_DRIVER = `package main

import (
	"bytes"
	"encoding/json"
	"os"

	sfuconfig "github.com/sfu-config/sfu-config/protocol/clients/go"
)

func main() {
	var values []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&values); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	out := make([][]string, 0, len(values))
	for _, raw := range values {
		canonical, err := sfuconfig.CanonicalJSONText(raw)
		if err != nil {
			out = append(out, []string{"error", err.Error()})
			continue
		}
		h, err := sfuconfig.HashJSON(raw)
		if err != nil {
			out = append(out, []string{"error", err.Error()})
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			out = append(out, []string{"error", err.Error()})
			continue
		}
		hv, err := sfuconfig.Hash(v)
		if err != nil {
			out = append(out, []string{"error", "Hash(any): " + err.Error()})
			continue
		}
		out = append(out, []string{string(canonical), h, hv})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
`;

/** The package's answers for each JSON text (see HASH_DRIVER). */
function goHashes(driver: string, texts: string[]): string[][] {
  const r = spawnSync(driver, [], { input: `[${texts.join(",")}]`, encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[][];
}

before(() => {
  requireGo();
});

describe("Go client package sfuconfig", { timeout: 300_000 }, () => {
  it("go vet passes on the package and the pion example; gofmt leaves them unchanged", async () => {
    const r = await runGo(["vet", "./..."]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const fmt = spawnSync("gofmt", ["-l", "."], { cwd: GO_PACKAGE_DIR, encoding: "utf8", timeout: 30_000 });
    assert.equal(fmt.status, 0, fmt.stderr);
    assert.equal(fmt.stdout, "", "files gofmt would change");
  });

  it("go test passes: PROTOCOL.md hash vectors, escaping traps, strict decoding, the client loop", async () => {
    const r = await runGo(["test", "-count=1", "-v", "."]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok\s+github\.com\/sfu-config\/sfu-config\/protocol\/clients\/go\s/m);
    assert.doesNotMatch(r.stdout, /--- (SKIP|FAIL)/, "no test skipped");
    for (const name of [
      "TestProtocolVector",
      "TestCanonicalStringTraps",
      "TestClientHelloAckNackAndRedial",
      "ExampleHash",
    ]) {
      assert.match(r.stdout, new RegExp(`^--- PASS: ${name} `, "m"), `${name} ran and passed`);
    }
  });
});

describe("sfuconfig.Hash agrees with the protocol (protocol/hash.ts)", { timeout: 120_000 }, () => {
  let driver = "";
  before(async () => {
    driver = await buildGoProgram("hash-driver", HASH_DRIVER);
  });

  it("on the PROTOCOL.md vector and the kit's hash vector", async () => {
    const doc = await readFile(join(ROOT, "protocol", "PROTOCOL.md"), "utf8");
    const input = /<!-- vector:input -->\n```json\n([\s\S]*?)\n```/.exec(doc)?.[1];
    assert.ok(input, "PROTOCOL.md has a vector:input block");
    const values = [JSON.parse(input) as unknown, hashVector(await loadBaseConfig())];
    const got = goHashes(driver, [input, JSON.stringify(values[1])]);
    values.forEach((v, i) => {
      assert.deepEqual(got[i], [canonicalJson(v), configHash(v), configHash(v)]);
    });
  });

  it("on generated JSON values (escaping traps, astral and control characters, integers, key order)", () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 20 }),
      fc.constantFrom("\u2028\u2029", "<&>/", "\u0000\b\f\u001f\u007f", "é😀𝄞", "\\u2028", '"\\'),
    );
    const integer = fc.oneof(
      fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
      fc.constantFrom(0, -0, 2 ** 53 - 1, 1e15),
    );
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof({ depthSize: "small" }, tie("leaf"), tie("array"), tie("object")),
      leaf: fc.oneof(fc.constant(null), fc.boolean(), integer, text),
      array: fc.array(tie("tree"), { maxLength: 4 }),
      object: fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }), tie("tree"), { maxKeys: 5 }),
    }));
    const values = fc.sample(tree, { numRuns: 400, seed: 24 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
    // Written as JSON.stringify writes them (raw non-ASCII), and once more with
    // every non-ASCII character \u-escaped: both must hash the same.
    const plain = values.map((v) => JSON.stringify(v));
    const escaped = plain.map((t) =>
      t.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
    );
    const got = goHashes(driver, [...plain, ...escaped]);
    values.forEach((v, i) => {
      const h = configHash(v);
      for (const a of [got[i], got[i + values.length]]) {
        assert.deepEqual(a, [canonicalJson(v), h, h], `value ${plain[i]}`);
      }
    });
  });

  it("refuses what has no canonical form: lone surrogates, fractions, integers beyond 2^53-1", () => {
    const texts = ['"\\ud800"', '{"\\udc00":1}', '["\\ud83d x"]', "1.5", "[9007199254740992]", '{"a":1e400}'];
    const got = goHashes(driver, texts);
    texts.forEach((t, i) => {
      assert.equal(got[i]?.[0], "error", `${t} is refused, not hashed`);
    });
  });
});

describe("pion SFU example (examples/pion-sfu)", { timeout: 300_000 }, () => {
  let bin = "";
  let dir = "";

  before(async () => {
    bin = await buildPionSfu();
    dir = await mkdtemp(join(tmpdir(), "go-pion-sfu-"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("passes every case of sfu-agent conformance (with a bearer token from --token-file)", async () => {
    // Without --port (a port override acks a server.port change by design), so
    // the kit's base config carries a free port.
    const example = parse(await readFile(EXAMPLE, "utf8")) as { server: { port: number } };
    example.server.port = await freePort();
    const configPath = join(dir, "conformance.json");
    await writeFile(configPath, JSON.stringify(example));
    const token = "go-conformance-token-8c2d";
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, `${token}\n`);
    const kit = await startKit(["--timeout", "5", "--wait", "30", "--config", configPath, "--token-file", tokenFile]);
    const sfu = spawnChild(
      bin,
      ["--agent", kit.url, "--token-file", tokenFile, "--host", "127.0.0.1", "--log-level", "warn"],
      ROOT,
    );
    try {
      const code = await kit.exit;
      assert.equal(code, 0, kit.stdout() + kit.stderr() + sfu.output());
      assert.equal(summaryLine(kit.stdout()), `${CASES.length} passed, 0 failed`);
      assert.deepEqual(
        [...caseOutcomes(kit.stdout())],
        CASES.map((c) => [c.name, "PASS"]),
      );
      assert.match(kit.stdout(), /note: sfu pion-sfu /);
      assert.match(kit.stdout(), /note: schemaVersions \[1,2\], features \["secrets-reload"\]/);
      assert.match(kit.stdout(), /^PASS call-health-optional\n {2}note: \d+ health frame\(s\)/m);
      assert.ok(!(kit.stdout() + kit.stderr() + sfu.output()).includes(token), "the token is never printed");
    } finally {
      assert.equal(await sfu.stop(), 0, sfu.output());
    }
  });

  it("a Chromium call keeps flowing while the agent pushes a change; a new call gets the new config", async () => {
    const configDir = join(dir, "config");
    const logs = join(dir, "logs");
    await rm(configDir, { recursive: true, force: true });
    await mkdir(configDir, { recursive: true });
    await mkdir(logs, { recursive: true });
    const [listen, http, port] = [await freePort(), await freePort(), await freePort()];
    const writer = new AtomicWriter(configDir);
    const first = await exampleWith(port, "vp8, opus", 10);
    await writer.write({ "config.yaml": first });
    const env = { PATH: process.env.PATH ?? "", POD_NAME: "go-pion" };
    const agent = new NodeProcess(
      "agent",
      agentRunArgs(configDir, `127.0.0.1:${listen}`, `127.0.0.1:${http}`, "--log-level", "info"),
      logs,
      env,
    );
    const sfu = spawnChild(bin, ["--agent", `ws://127.0.0.1:${listen}`, "--host", "127.0.0.1"], ROOT);
    let browser: Browser | null = null;
    const sfuUrl = `http://127.0.0.1:${port}`;
    const sfuApplied = async () =>
      ((await (await fetch(`${sfuUrl}/status`)).json()) as { applied: { version: number; hash: string } | null })
        .applied;
    try {
      await agent.waitHttpOk(`http://127.0.0.1:${http}/healthz`, 20_000);
      const h1 = await configTextHash(first);
      await pollUntil(
        () => sfuApplied().catch(() => null),
        (a) => a?.hash === h1,
        `pion-sfu applies the first config\n${sfu.output()}`,
      );

      browser = await launchChromium();
      const context = await browser.newContext();
      const alice = await context.newPage();
      const bob = await context.newPage();
      await alice.goto(`${sfuUrl}/?room=call&name=alice&autojoin=1`);
      await bob.goto(`${sfuUrl}/?room=call&name=bob&autojoin=1`);
      for (const page of [alice, bob]) {
        await page.waitForSelector("video.remote", { timeout: 20_000 });
        assert.equal(await page.getAttribute("#config", "data-version"), "1");
        await pollUntil(
          () => inboundVideo(page),
          (s) => s.frames > 5,
          "decoded remote frames",
        );
        assert.deepEqual(await inboundVideoCodecs(page), ["video/VP8"]);
      }

      const remoteSdp = (page: Page) =>
        page.evaluate(
          () =>
            (globalThis as unknown as { sfuDemo: { pc: { remoteDescription: { sdp: string } } } }).sfuDemo.pc
              .remoteDescription.sdp,
        );
      const sdpBefore = [await remoteSdp(alice), await remoteSdp(bob)];

      // The change: VP9 only for video, pushed by the agent from its config dir.
      const second = await exampleWith(port, "vp9, opus", 11);
      const h2 = await configTextHash(second);
      await writer.write({ "config.yaml": second });
      await pollUntil(
        () => sfuApplied().catch(() => null),
        (a) => a?.hash === h2,
        "pion-sfu applies the change",
      );
      for (const page of [alice, bob]) {
        await page.waitForSelector('#config[data-version="2"]', { timeout: 10_000 });
        const during = await inboundVideo(page);
        const later = await pollUntil(
          () => inboundVideo(page),
          (s) => s.frames > during.frames + 10,
          "frames of the live call after the change",
        );
        assert.ok(later.packets > during.packets);
        assert.deepEqual(await inboundVideoCodecs(page), ["video/VP8"], "the live call keeps its negotiated codec");
      }
      assert.deepEqual([await remoteSdp(alice), await remoteSdp(bob)], sdpBefore, "the live call was not renegotiated");

      // A new call, after the change, negotiates the new codec set.
      const carol = await context.newPage();
      const dave = await context.newPage();
      await carol.goto(`${sfuUrl}/?room=later&name=carol&autojoin=1`);
      await dave.goto(`${sfuUrl}/?room=later&name=dave&autojoin=1`);
      for (const page of [carol, dave]) {
        await page.waitForSelector("video.remote", { timeout: 20_000 });
        assert.equal(await page.getAttribute("#config", "data-version"), "2");
        await pollUntil(
          () => inboundVideo(page),
          (s) => s.frames > 5,
          "decoded frames in the new call",
        );
        assert.deepEqual(await inboundVideoCodecs(page), ["video/VP9"]);
      }

      // A participant leaving: the other's view of it goes, the SFU counts it out.
      await carol.close();
      await dave.waitForSelector("video.remote", { state: "detached", timeout: 10_000 });
      await pollUntil(
        async () => ((await (await fetch(`${sfuUrl}/status`)).json()) as { participants: number }).participants,
        (n) => n === 3,
        "pion-sfu counts carol out",
      );

      // The agent settled the change as applied.
      const status = (await (await fetch(`http://127.0.0.1:${http}/status`)).json()) as {
        applied: { hash: string } | null;
      };
      assert.equal(status.applied?.hash, h2);
      await context.close();
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n--- pion-sfu output:\n${sfu.output().slice(-4000)}\n--- agent:\n${await agent.logTail()}`,
        {
          cause: e,
        },
      );
    } finally {
      await browser?.close();
      const code = await sfu.stop();
      await agent.stop(3_000);
      assert.equal(code, 0, sfu.output());
    }
  });
});
