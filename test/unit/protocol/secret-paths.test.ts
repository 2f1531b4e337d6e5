/**
 * Secret files live under one directory: the path shape (no `..`, under the
 * directory), symlinks resolved (kubelet-style `..data` links inside pass, a
 * link out is refused), and the bounded read. Real files in a temp directory.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  checkSecretPathShape,
  DEFAULT_SECRETS_DIR,
  MAX_SECRET_BYTES,
  readSecretFile,
  resolveSecretFile,
  secretFileRefs,
} from "../../../protocol/secret-paths.ts";

describe("checkSecretPathShape", () => {
  it("accepts a file under the directory, absolute or relative to the working directory", () => {
    assert.equal(checkSecretPathShape("/etc/sfu/secrets/turn"), null);
    assert.equal(checkSecretPathShape("/etc/sfu/secrets/sub/turn", "/etc/sfu/secrets/"), null);
    assert.equal(checkSecretPathShape("secrets/turn", join(process.cwd(), "secrets")), null);
    assert.equal(DEFAULT_SECRETS_DIR, "/etc/sfu/secrets");
  });

  it("refuses a path outside, the directory itself, a sibling with the same prefix and any '..' segment", () => {
    assert.match(checkSecretPathShape("/etc/passwd") ?? "", /^\/etc\/passwd: is outside the secrets directory/);
    assert.match(checkSecretPathShape("/etc/sfu/secrets") ?? "", /is the secrets directory itself/);
    assert.match(checkSecretPathShape("/etc/sfu/secrets-other/x") ?? "", /is outside/);
    assert.match(checkSecretPathShape("/etc/sfu/secrets/../secrets/turn") ?? "", /has a "\.\." segment/);
    assert.match(checkSecretPathShape("/etc/sfu/secrets/a/../turn") ?? "", /has a "\.\." segment/);
    assert.match(checkSecretPathShape("turn", "/etc/sfu/secrets") ?? "", /is outside/);
  });
});

describe("resolveSecretFile and readSecretFile", () => {
  let root: string;
  let secrets: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "sfu-secret-paths-"));
    secrets = join(root, "secrets");
    // A projected Secret volume as the kubelet writes it.
    mkdirSync(join(secrets, "..2026_12_02_01_00_00.000000001"), { recursive: true });
    writeFileSync(join(secrets, "..2026_12_02_01_00_00.000000001", "turn"), "shared-secret\n");
    symlinkSync("..2026_12_02_01_00_00.000000001", join(secrets, "..data"));
    symlinkSync("..data/turn", join(secrets, "turn"));
    writeFileSync(join(root, "outside"), "not a secret\n");
    symlinkSync("../outside", join(secrets, "escape"));
    symlinkSync(join(root, "outside"), join(secrets, "escape-absolute"));
    mkdirSync(join(secrets, "dir"));
    writeFileSync(join(secrets, "big"), Buffer.alloc(MAX_SECRET_BYTES + 1, 0x61));
    symlinkSync("loop", join(secrets, "loop"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("follows the kubelet's ..data symlinks inside the directory", async () => {
    const r = await resolveSecretFile(join(secrets, "turn"), secrets);
    assert.ok(r.ok);
    assert.equal(r.realPath, join(secrets, "..2026_12_02_01_00_00.000000001", "turn"));
    const read = await readSecretFile(join(secrets, "turn"), secrets);
    assert.ok(read.ok);
    assert.equal(read.value.toString("utf8"), "shared-secret\n");
  });

  it("refuses a symlink leading out of the directory, relative or absolute", async () => {
    for (const name of ["escape", "escape-absolute"]) {
      const r = await readSecretFile(join(secrets, name), secrets);
      assert.ok(!r.ok);
      assert.equal(r.code, "SYMLINK_ESCAPES");
      assert.match(r.message, /is a symlink leading outside the secrets directory/);
      assert.ok(!r.message.includes("not a secret"));
    }
  });

  it("reports a missing file, a directory, an oversized file, a symlink loop and a missing directory", async () => {
    const missing = await readSecretFile(join(secrets, "absent"), secrets);
    assert.ok(!missing.ok && missing.code === "NOT_FOUND");
    const dir = await readSecretFile(join(secrets, "dir"), secrets);
    assert.ok(!dir.ok && dir.code === "NOT_A_FILE", JSON.stringify(dir));
    const big = await readSecretFile(join(secrets, "big"), secrets);
    assert.ok(!big.ok && big.code === "TOO_LARGE");
    const loop = await readSecretFile(join(secrets, "loop"), secrets);
    assert.ok(!loop.ok && loop.code === "READ_FAILED");
    const noDir = await readSecretFile(join(root, "nodir", "x"), join(root, "nodir"));
    assert.ok(!noDir.ok && noDir.code === "NOT_FOUND");
    assert.match(noDir.message, /the secrets directory .* does not exist/);
  });

  it("works when the secrets directory itself is a symlink into a projected volume", async () => {
    // /x/volume/secrets -> ..data/secrets, ..data -> ..ts: a Secret projected into a ConfigMap's volume.
    const volume = join(root, "volume");
    mkdirSync(join(volume, "..ts", "secrets"), { recursive: true });
    writeFileSync(join(volume, "..ts", "secrets", "turn"), "projected\n");
    symlinkSync("..ts", join(volume, "..data"));
    symlinkSync("..data/secrets", join(volume, "secrets"));
    const dir = join(volume, "secrets");
    const r = await readSecretFile(join(dir, "turn"), dir);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.value.toString(), "projected\n");
    const out = await readSecretFile(join(dir, "..", "..ts", "secrets", "turn"), dir);
    assert.ok(!out.ok && out.code === "OUTSIDE_SECRETS_DIR");
  });

  it("without procfs (the identity check): kubelet links pass, links out are refused", async () => {
    const inside = await readSecretFile(join(secrets, "turn"), secrets, { procfs: false });
    assert.ok(inside.ok);
    assert.equal(inside.value.toString("utf8"), "shared-secret\n");
    for (const name of ["escape", "escape-absolute"]) {
      const r = await readSecretFile(join(secrets, name), secrets, { procfs: false });
      assert.ok(!r.ok && r.code === "SYMLINK_ESCAPES", name);
    }
  });

  it("refuses a path outside before touching the disk", async () => {
    const r = await readSecretFile("/etc/passwd", secrets);
    assert.ok(!r.ok && r.code === "OUTSIDE_SECRETS_DIR");
  });
});

describe("secretFileRefs", () => {
  it("lists every credentialFile and authSecretFile with its pointer, ignoring junk", () => {
    const refs = secretFileRefs({
      webrtc: {
        turnServers: [
          { urls: ["stun:a"] },
          { urls: ["turn:b"], username: "u", credentialFile: "/s/c" },
          null,
          { urls: ["turn:c"], authSecretFile: "/s/a", credentialTtl: 60 },
          { authSecretFile: 7 },
        ],
      },
    });
    assert.deepEqual(refs, [
      { pointer: "/webrtc/turnServers/1/credentialFile", path: "/s/c", kind: "credentialFile" },
      { pointer: "/webrtc/turnServers/3/authSecretFile", path: "/s/a", kind: "authSecretFile" },
    ]);
    assert.deepEqual(secretFileRefs(null), []);
    assert.deepEqual(secretFileRefs({ webrtc: { turnServers: "x" } }), []);
  });
});
