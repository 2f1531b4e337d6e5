/**
 * The conformance kit against the Python reference client
 * (protocol/examples/python): the conformant client passes every case; each
 * deliberately broken mode fails the case that targets its mistake.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CASES } from "../../../agent/conformance/cases.ts";
import {
  caseOutcomes,
  failedCases,
  PYTHON_SKIPPED,
  requirePythonWebsockets,
  spawnPythonSfu,
  startKit,
  summaryLine,
} from "./harness.ts";

const TIMEOUT = { timeout: 40_000 };
const TOKEN = "conformance-test-token-5f1e";
let dir = "";

before(async () => {
  requirePythonWebsockets();
  dir = await mkdtemp(join(tmpdir(), "conformance-"));
  await writeFile(join(dir, "token"), `${TOKEN}\n`);
  await writeFile(join(dir, "wrong-token"), "not-the-token\n");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the kit against the Python example with `sfuArgs`; returns the kit's output and exit code. */
async function run(sfuArgs: string[], kitArgs: string[] = []) {
  const kit = await startKit(["--timeout", "3", "--wait", "15", ...kitArgs]);
  const sfu = spawnPythonSfu(kit.url, sfuArgs);
  try {
    const code = await kit.exit;
    return { code, stdout: kit.stdout(), stderr: kit.stderr(), sfu };
  } finally {
    await sfu.stop();
  }
}

describe("conformance kit vs the Python reference client", () => {
  it("passes every case (with a bearer token)", TIMEOUT, async () => {
    const r = await run(["--token-file", join(dir, "token")], ["--token-file", join(dir, "token")]);
    assert.equal(r.code, 0, r.stdout + r.stderr + r.sfu.output());
    const skipped = PYTHON_SKIPPED.length;
    assert.equal(
      summaryLine(r.stdout),
      `${CASES.length - skipped} passed, 0 failed, ${skipped} skipped (not applicable)`,
    );
    const outcomes = caseOutcomes(r.stdout);
    assert.deepEqual(
      [...outcomes.keys()],
      CASES.map((c) => c.name),
    );
    assert.deepEqual(
      [...outcomes].filter(([, o]) => o !== "PASS").map(([name, o]) => `${o} ${name}`),
      PYTHON_SKIPPED.map((name) => `SKIP ${name}`),
      "only the v2 and secrets-reload cases are skipped, never counted as passes",
    );
    assert.match(r.stdout, /^SKIP v2-config-acked: not applicable: hello\.schemaVersions \[1\] does not list 2/m);
    assert.match(r.stdout, /^SKIP secrets-reload-acked: not applicable: hello\.features does not list secrets-reload/m);
    assert.match(r.stdout, /^listening on ws:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(r.stdout, /note: re-dial gaps \d+, \d+, \d+ ms/);
    assert.ok(!(r.stdout + r.stderr).includes(TOKEN), "the token never appears in the kit's output");
    // The reference client reports call health when the kit advertises it.
    assert.match(
      r.stdout,
      /^PASS call-health-optional\n {2}note: \d+ health frame\(s\); latest: joins 0, iceFailures 0$/m,
    );
  });

  it("without call health (--no-health) the optional case passes with a note", TIMEOUT, async () => {
    const r = await run(["--no-health"]);
    assert.equal(r.code, 0, r.stdout + r.stderr + r.sfu.output());
    assert.match(r.stdout, /^PASS call-health-optional\n {2}note: no health frame: the optional call-health feature/m);
  });

  it("wrong-hash (ASCII-escaped JSON) fails exactly the canonical-hash case", TIMEOUT, async () => {
    const r = await run(["--broken", "wrong-hash"]);
    assert.equal(r.code, 1);
    assert.deepEqual(failedCases(r.stdout), ["canonical-hash"], r.stdout);
    assert.match(r.stdout, /^FAIL canonical-hash: nacked INVALID_CONFIG: hash mismatch/m);
    assert.equal(
      summaryLine(r.stdout),
      `${CASES.length - 1 - PYTHON_SKIPPED.length} passed, 1 failed, ${PYTHON_SKIPPED.length} skipped (not applicable)`,
    );
  });

  it("missing-nonce fails the nonce case (and every reply-checking case)", TIMEOUT, async () => {
    const r = await run(["--broken", "missing-nonce"]);
    assert.equal(r.code, 1);
    const failed = failedCases(r.stdout);
    assert.ok(failed.includes("nonce-echoed"), r.stdout);
    assert.match(r.stdout, /^FAIL nonce-echoed: .*must have required property 'nonce'/m);
    for (const name of ["config-acked", "restart-required-nacked", "unsupported-schema-nacked", "wrong-hash-nacked"]) {
      assert.ok(failed.includes(name), `${name} fails too`);
    }
    assert.equal(caseOutcomes(r.stdout).get("hello"), "PASS");
  });

  it("crash-on-bad-frame fails the malformed-frame case and the cases after it", TIMEOUT, async () => {
    const r = await run(["--broken", "crash-on-bad-frame"]);
    assert.equal(r.code, 1);
    assert.equal(await r.sfu.exited, 70, "the broken client really crashed");
    const names = CASES.map((c) => c.name);
    const at = names.indexOf("malformed-frame-redial");
    assert.deepEqual(failedCases(r.stdout), names.slice(at), r.stdout);
    assert.match(r.stdout, /^FAIL malformed-frame-redial: .*did not re-dial/m);
    assert.match(r.stdout, /^FAIL unknown-type-redial: the SFU is gone/m);
  });

  it("an SFU with the wrong token is refused with 401 and the hello case fails", TIMEOUT, async () => {
    const kit = await startKit(["--timeout", "2", "--wait", "2", "--token-file", join(dir, "token")]);
    const sfu = spawnPythonSfu(kit.url, ["--token-file", join(dir, "wrong-token")]);
    try {
      assert.equal(await kit.exit, 1);
      assert.match(kit.stdout(), /^FAIL hello: no SFU dialed in within 2000 ms$/m);
      assert.match(kit.stdout(), /^FAIL config-acked: no SFU ever dialed in$/m);
      assert.equal(summaryLine(kit.stdout()), `0 passed, ${CASES.length} failed`);
      assert.match(kit.stderr(), /refused a dial-in with HTTP 401: missing or wrong bearer token/);
      assert.ok(!(kit.stdout() + kit.stderr()).includes(TOKEN));
    } finally {
      await sfu.stop();
    }
  });
});
