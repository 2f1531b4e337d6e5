/**
 * Config schemaVersion 2 through the one loader: v1 configs keep their exact
 * hashes (recorded before v2 existed), v2 fields validate and normalise, the
 * credential rules hold, and secret files are checked against the secrets
 * directory. The invalid v2 corpus (test/fixtures/invalid/v2-*.yaml) runs
 * through the CLI in test/unit/cli/validate.test.ts.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { stringify as yamlStringify } from "yaml";
import { loadConfigFile, loadConfigText, validateConfigValue } from "../../../protocol/config-loader.ts";
import { SUPPORTED_SCHEMA_VERSIONS } from "../../../protocol/config-schema.ts";
import { CREDENTIAL_TTL, checkOrigin, normaliseV2, type SfuConfigV2 } from "../../../protocol/config-schema-v2.ts";
import { configHash } from "../../../protocol/hash.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");

/** Hashes of the v1 fixtures computed by the loader before schemaVersion 2 was added. */
const V1_HASHES: Record<string, string> = {
  "test/fixtures/valid/defaults-explicit.yaml":
    "sha256:ff850be933139c9ff16d7bf8a4f79e750053cc8ba43b111712ebc6e6983d0ec7",
  "test/fixtures/valid/full.yaml": "sha256:b3d355b6adba38ed9f68ac728fe3000bdcfa006976fcc2df600c5e73f88aa86b",
  "test/fixtures/valid/inline-credential.yaml":
    "sha256:d9b7869735fb613dd735c8a61a8fc5b4df13615a1d4df001e53a5a3c4d077223",
  "test/fixtures/valid/minimal.yaml": "sha256:ff850be933139c9ff16d7bf8a4f79e750053cc8ba43b111712ebc6e6983d0ec7",
  "test/fixtures/valid/minimal.json": "sha256:ff850be933139c9ff16d7bf8a4f79e750053cc8ba43b111712ebc6e6983d0ec7",
  "k8s/base/config.yaml": "sha256:3eedf4c1bb0d5fae00dc7eab3a61e865a56e60cadea590ec17b2cc1ebaebc4dc",
};

const V2_HEAD =
  "schemaVersion: 2\nserver:\n  port: 8080\nwebrtc:\n  icePortRange: [20000, 20100]\n  codecs: [vp8, opus]\n";

describe("schemaVersion 1 is unchanged", () => {
  it("every v1 fixture hashes exactly as before v2 existed", async () => {
    for (const [file, hash] of Object.entries(V1_HASHES)) {
      const r = await loadConfigFile(join(ROOT, file), { checkFiles: false });
      assert.ok(r.ok, file);
      assert.equal(r.config.schemaVersion, 1);
      assert.equal(r.hash, hash, file);
    }
  });

  it("v2 fields are unknown keys in a v1 config", async () => {
    const r = await loadConfigText(
      V2_HEAD.replace("schemaVersion: 2", "schemaVersion: 1").replace(
        "  port: 8080\n",
        "  port: 8080\n  allowedOrigins: [https://a.example]\n",
      ),
    );
    assert.ok(!r.ok);
    assert.deepEqual(
      r.problems.map((p) => [p.pointer, p.message]),
      [["/server/allowedOrigins", 'unknown key "allowedOrigins"']],
    );
  });

  it("the loader accepts exactly schemaVersion 1 and 2", () => {
    assert.deepEqual([...SUPPORTED_SCHEMA_VERSIONS], [1, 2]);
  });
});

describe("schemaVersion 2", () => {
  let dir: string;
  let secrets: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sfu-config-v2-"));
    secrets = join(dir, "secrets");
    mkdirSync(join(secrets, "..2026_12_02"), { recursive: true });
    writeFileSync(join(secrets, "..2026_12_02", "turn-auth-secret"), "s3cr3t\n");
    symlinkSync("..2026_12_02", join(secrets, "..data"));
    symlinkSync("..data/turn-auth-secret", join(secrets, "turn-auth-secret"));
    writeFileSync(join(dir, "elsewhere"), "x\n");
    symlinkSync(join(dir, "elsewhere"), join(secrets, "out"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const withTurn = (entry: string) =>
    `${V2_HEAD}  turnServers:\n    - urls: ["turn:turn.example.com:3478", "turns:turn.example.com:5349"]\n${entry}`;

  it("normalises: allowedOrigins [] when absent, credentialTtl 3600 on a REST server, keys sorted", async () => {
    const r = await loadConfigText(withTurn(`      authSecretFile: ${join(secrets, "turn-auth-secret")}\n`), {
      secretsDir: secrets,
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    assert.deepEqual(r.config, {
      limits: { maxParticipantsPerRoom: 16, maxRooms: 100 },
      logging: { level: "info" },
      schemaVersion: 2,
      server: { allowedOrigins: [], port: 8080 },
      webrtc: {
        announcedIps: [],
        codecs: ["vp8", "opus"],
        icePortRange: [20000, 20100],
        listenIp: "0.0.0.0",
        turnServers: [
          {
            authSecretFile: join(secrets, "turn-auth-secret"),
            credentialTtl: CREDENTIAL_TTL.default,
            urls: ["turn:turn.example.com:3478", "turns:turn.example.com:5349"],
          },
        ],
      },
    });
    assert.equal(JSON.stringify(r.config), JSON.stringify(normaliseV2(r.config as unknown as SfuConfigV2)));
    assert.equal(r.hash, configHash(r.config));
    // Spelling the default out does not change the hash.
    const explicit = await loadConfigText(
      withTurn(`      authSecretFile: ${join(secrets, "turn-auth-secret")}\n      credentialTtl: 3600\n`).replace(
        "  port: 8080\n",
        "  port: 8080\n  allowedOrigins: []\n",
      ),
      { secretsDir: secrets },
    );
    assert.ok(explicit.ok);
    assert.equal(explicit.hash, r.hash);
    // The hash is of the config text only: the secret's content is in no part of the result.
    assert.ok(!JSON.stringify(r).includes("s3cr3t"));
  });

  it("v2 keeps the static credential forms, with the inline warning", async () => {
    const r = await loadConfigText(withTurn("      username: u\n      credential: inline-value\n"), {
      secretsDir: secrets,
    });
    assert.ok(r.ok);
    assert.deepEqual(
      r.warnings.map((w) => w.pointer),
      ["/webrtc/turnServers/0/credential"],
    );
    assert.ok(!r.warnings.some((w) => w.message.includes("inline-value")));
  });

  it("authSecretFile is checked against the secrets directory, symlinks resolved", async () => {
    const outside = await loadConfigText(withTurn("      authSecretFile: /etc/passwd\n"), { secretsDir: secrets });
    assert.ok(!outside.ok);
    assert.equal(outside.problems[0]?.pointer, "/webrtc/turnServers/0/authSecretFile");
    assert.match(outside.problems[0]?.message ?? "", /is outside the secrets directory/);
    assert.equal(outside.problems[0]?.line, 9);

    const escaping = await loadConfigText(withTurn(`      authSecretFile: ${join(secrets, "out")}\n`), {
      secretsDir: secrets,
    });
    assert.ok(!escaping.ok);
    assert.match(escaping.problems[0]?.message ?? "", /symlink leading outside the secrets directory/);
    // Without file checks only the shape counts: the symlink is not followed.
    const shapeOnly = await loadConfigText(withTurn(`      authSecretFile: ${join(secrets, "out")}\n`), {
      secretsDir: secrets,
      checkFiles: false,
    });
    assert.ok(shapeOnly.ok);

    const missing = await loadConfigText(withTurn(`      authSecretFile: ${join(secrets, "absent")}\n`), {
      secretsDir: secrets,
    });
    assert.ok(!missing.ok);
    assert.match(missing.problems[0]?.message ?? "", /does not exist/);
  });

  it("credentialTtl bounds and exclusions are reported with their pointers", async () => {
    const file = join(secrets, "turn-auth-secret");
    const cases: [string, string, RegExp][] = [
      [
        `      authSecretFile: ${file}\n      credentialTtl: 86401\n`,
        "/webrtc/turnServers/0/credentialTtl",
        /<= 86400/,
      ],
      [`      authSecretFile: ${file}\n      credentialTtl: 1.5\n`, "/webrtc/turnServers/0/credentialTtl", /integer/],
      [
        `      authSecretFile: ${file}\n      credential: x\n`,
        "/webrtc/turnServers/0/credential",
        /not with authSecretFile/,
      ],
      [
        "      username: u\n      credentialFile: x\n      credentialTtl: 60\n",
        "/webrtc/turnServers/0/credentialTtl",
        /only/,
      ],
    ];
    for (const [entry, pointer, message] of cases) {
      const r = await loadConfigText(withTurn(entry), { secretsDir: secrets, checkFiles: false });
      assert.ok(!r.ok, entry);
      const p = r.problems.find((q) => q.pointer === pointer);
      assert.ok(p, `${entry}: ${JSON.stringify(r.problems)}`);
      assert.match(p.message, message);
    }
  });

  it("allowedOrigins takes serialised http(s) origins only, unique", async () => {
    assert.equal(checkOrigin("https://app.example.com"), null);
    assert.equal(checkOrigin("http://localhost:8080"), null);
    assert.equal(checkOrigin("http://[::1]:8080"), null);
    assert.match(checkOrigin("https://app.example.com:443") ?? "", /write it as "https:\/\/app\.example\.com"/);
    assert.match(checkOrigin("https://App.example.com") ?? "", /write it as/);
    assert.match(checkOrigin("app.example.com") ?? "", /not an origin|scheme must be/);
    assert.match(checkOrigin("*") ?? "", /not an origin/);
    assert.match(checkOrigin("null") ?? "", /not an origin/);
    const dup = await validateConfigValue({
      schemaVersion: 2,
      server: { port: 8080, allowedOrigins: ["https://a.example", "https://a.example"] },
      webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"] },
    });
    assert.ok(!dup.ok);
    assert.equal(dup.problems[0]?.pointer, "/server/allowedOrigins/1");
  });

  it("a v2 config value validates as pushed (what an SFU does with a config message)", async () => {
    const loaded = await loadConfigText(
      `${V2_HEAD.replace("  port: 8080\n", "  port: 8080\n  allowedOrigins: [https://a.example]\n")}`,
    );
    assert.ok(loaded.ok);
    const again = await validateConfigValue(JSON.parse(JSON.stringify(loaded.config)));
    assert.ok(again.ok);
    assert.equal(again.hash, loaded.hash);
  });
});

describe("schemaVersion 2 properties", () => {
  const validConfig = fc.record({
    server: fc.record({ port: fc.integer({ min: 1, max: 65535 }) }),
    webrtc: fc.record(
      {
        icePortRange: fc
          .uniqueArray(fc.integer({ min: 1024, max: 65535 }), { minLength: 2, maxLength: 2 })
          .map((r) => r.sort((a, b) => a - b)),
        codecs: fc.constantFrom(["vp8", "opus"], ["opus", "h264", "vp9"], ["av1", "pcmu"]),
        listenIp: fc.oneof(fc.ipV4(), fc.ipV6()),
        announcedIps: fc.uniqueArray(fc.ipV4(), { maxLength: 2 }),
        turnServers: fc.array(
          fc.oneof(
            fc.record({ urls: fc.constant(["stun:stun.example.com"]) }),
            fc.record({
              urls: fc.constant(["turns:t.example.com:5349"]),
              username: fc.string({ minLength: 1, maxLength: 8 }),
              credentialFile: fc.constant("/etc/sfu/secrets/c"),
            }),
          ),
          { maxLength: 2 },
        ),
      },
      { requiredKeys: ["icePortRange", "codecs"] },
    ),
    logging: fc.record({ level: fc.constantFrom("debug", "info", "warn") }, { requiredKeys: [] }),
  });
  const origin = fc.constantFrom("https://app.example.com", "http://localhost:8080", "https://[2001:db8::1]:8443");
  const restServer = fc.record(
    {
      urls: fc.constant(["turn:turn.example.com:3478"]),
      authSecretFile: fc.constantFrom("/etc/sfu/secrets/a", "/etc/sfu/secrets/sub/b"),
      credentialTtl: fc.integer({ min: CREDENTIAL_TTL.min, max: CREDENTIAL_TTL.max }),
    },
    { requiredKeys: ["urls", "authSecretFile"] },
  );
  const validV2 = fc
    .tuple(
      validConfig,
      fc.option(fc.uniqueArray(origin, { maxLength: 3 }), { nil: undefined }),
      fc.array(restServer, { maxLength: 2 }),
    )
    .map(([v1, origins, rest]) => {
      const server = origins === undefined ? { ...v1.server } : { ...v1.server, allowedOrigins: origins };
      const turn = [...(v1.webrtc.turnServers ?? []), ...rest];
      return {
        ...v1,
        schemaVersion: 2,
        server,
        webrtc: { ...v1.webrtc, ...(turn.length > 0 ? { turnServers: turn } : {}) },
      } as unknown as SfuConfigV2;
    });

  it("valid v2 configs load; normalising is idempotent and the normalised config revalidates with the same hash", async () => {
    await fc.assert(
      fc.asyncProperty(validV2, async (c) => {
        const r = await validateConfigValue(c, { checkFiles: false });
        assert.ok(r.ok, `${JSON.stringify(c)}\n${JSON.stringify(!r.ok && r.problems)}`);
        assert.deepEqual(normaliseV2(r.config as unknown as SfuConfigV2), r.config);
        const again = await validateConfigValue(JSON.parse(JSON.stringify(r.config)), { checkFiles: false });
        assert.ok(again.ok);
        assert.equal(again.hash, r.hash);
        const fromYaml = await loadConfigText(yamlStringify(c), { checkFiles: false });
        assert.ok(fromYaml.ok);
        assert.equal(fromYaml.hash, r.hash);
      }),
      { numRuns: 150 },
    );
  });

  it("random values claiming schemaVersion 2 never make the loader throw", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.jsonValue(), fc.jsonValue(), async (server, webrtc, extra) => {
        const r = await validateConfigValue({ schemaVersion: 2, server, webrtc, extra }, { checkFiles: false });
        assert.equal(r.ok, false);
        assert.ok(!r.ok && r.problems.length > 0);
      }),
      { numRuns: 300 },
    );
  });
});
