/**
 * Our werift SFU (sfu/cli.ts) passes the conformance kit. The SFU runs as a
 * child process exactly as a user would start it, without `--port`: with a
 * port override a pushed server.port change is acked by design (PROTOCOL.md
 * section 6), so the kit's base config carries a free port instead.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { CASES } from "../../../agent/conformance/cases.ts";
import { caseOutcomes, freePort, ROOT, spawnChild, startKit, summaryLine } from "./harness.ts";

let dir = "";
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "conformance-sfu-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("conformance kit vs the werift SFU", () => {
  it("sfu-server passes every case", { timeout: 60_000 }, async () => {
    const example = parse(await readFile(join(ROOT, "k8s", "base", "config.yaml"), "utf8")) as {
      server: { port: number };
    };
    example.server.port = await freePort();
    const configPath = join(dir, "config.json");
    await writeFile(configPath, JSON.stringify(example));
    const kit = await startKit(["--timeout", "5", "--wait", "30", "--config", configPath]);
    const sfu = spawnChild(
      process.execPath,
      [join(ROOT, "sfu", "cli.ts"), "--agent", kit.url, "--host", "127.0.0.1", "--log-level", "warn"],
      ROOT,
    );
    try {
      const code = await kit.exit;
      assert.equal(code, 0, kit.stdout() + kit.stderr() + sfu.output());
      assert.equal(summaryLine(kit.stdout()), `${CASES.length} passed, 0 failed`);
      assert.deepEqual(
        [...caseOutcomes(kit.stdout()).values()],
        CASES.map(() => "PASS"),
      );
      assert.match(kit.stdout(), /note: sfu sfu-server /);
      // The optional call-health case saw valid health frames for the last acked hash.
      assert.match(
        kit.stdout(),
        /^PASS call-health-optional\n {2}note: \d+ health frame\(s\); latest: joins 0, iceFailures 0$/m,
      );
    } finally {
      assert.equal(await sfu.stop(), 0, sfu.output());
    }
  });
});
