/**
 * `--token-file` of both binaries is read through protocol's readTokenFile:
 * trimmed, bounded like a secret file (a file over MAX_SECRET_BYTES and a
 * FIFO are refused at once instead of read whole or blocking), empty or
 * whitespace-only refused; the agent's readToken gives its typed error.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AgentError } from "../../../agent/shared/errors.ts";
import { readToken } from "../../../agent/sidecar/agent.ts";
import { MAX_SECRET_BYTES, readTokenFile } from "../../../protocol/secret-paths.ts";

describe("readTokenFile", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sfu-token-file-"));
    writeFileSync(join(dir, "token"), "  tok-123\n");
    writeFileSync(join(dir, "blank"), " \n");
    writeFileSync(join(dir, "big"), Buffer.alloc(MAX_SECRET_BYTES + 1, 0x61));
    execFileSync("mkfifo", [join(dir, "fifo")]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("trims a token; refuses empty, too large, a FIFO, a directory and a missing file with a code", async () => {
    assert.deepEqual(await readTokenFile(join(dir, "token")), { ok: true, value: "tok-123" });
    const code = async (name: string) => {
      const r = await readTokenFile(join(dir, name));
      return r.ok ? "ok" : r.code;
    };
    assert.equal(await code("blank"), "EMPTY");
    assert.equal(await code("big"), "TOO_LARGE");
    assert.equal(await code("fifo"), "NOT_A_FILE");
    assert.equal(await code("."), "NOT_A_FILE");
    assert.equal(await code("absent"), "NOT_FOUND");
  });

  it("the agent's readToken throws AgentError TOKEN_FILE naming the file, never its content", async () => {
    assert.equal(await readToken(join(dir, "token")), "tok-123");
    await assert.rejects(readToken(join(dir, "big")), (err: unknown) => {
      assert.ok(err instanceof AgentError && err.code === "TOKEN_FILE");
      assert.match(err.message, /^--token-file .*big: secret file is \d+ bytes; the limit is 65536$/);
      return true;
    });
    await assert.rejects(readToken(join(dir, "blank")), /--token-file .*blank: secret file is empty/);
  });
});
