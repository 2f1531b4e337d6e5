/**
 * Keeps the schemaVersion 2 and secrets-reload sections of protocol/PROTOCOL.md
 * honest: every `example:v2-*` frame parses with the protocol's parsers, the v2
 * config is normalised and hashes as written, replies echo the message they
 * answer, and the v2 field table names exactly the fields v2 adds.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { validateConfigValue } from "../../../protocol/config-loader.ts";
import { configSchemaV1 } from "../../../protocol/config-schema.ts";
import { CREDENTIAL_TTL, configSchemaV2 } from "../../../protocol/config-schema-v2.ts";
import { configHash } from "../../../protocol/hash.ts";
import { parseAgentFrame, parseSfuFrame } from "../../../protocol/messages.ts";
import { helloFeatures, SECRETS_RELOAD_FEATURE } from "../../../protocol/secrets-reload.ts";

const DOC = readFileSync(join(import.meta.dirname, "..", "..", "..", "protocol", "PROTOCOL.md"), "utf8");

/** `[side, frame]` of every `<!-- example:v2-(agent|sfu) -->` block, in document order. */
function frames(): ["agent" | "sfu", Record<string, unknown>][] {
  const re = /<!-- example:v2-(agent|sfu) -->\n```json\n([\s\S]*?)\n```/g;
  return [...DOC.matchAll(re)].map((m) => [m[1] as "agent" | "sfu", JSON.parse(m[2]!) as Record<string, unknown>]);
}

describe("PROTOCOL.md schemaVersion 2 and secrets-reload", () => {
  it("every v2 example frame parses; the v2 config is normalised and its hash is right", async () => {
    const all = frames();
    assert.ok(all.length >= 6);
    for (const [side, frame] of all) {
      const text = JSON.stringify(frame);
      const parsed = side === "agent" ? parseAgentFrame(text) : parseSfuFrame(text);
      assert.ok(parsed.ok, `${text}: ${!parsed.ok && parsed.reason}`);
      if (frame.type !== "config") continue;
      assert.equal(frame.schemaVersion, 2);
      assert.equal(configHash(frame.config), frame.hash);
      const checked = await validateConfigValue(frame.config, { checkFiles: false });
      assert.ok(checked.ok, JSON.stringify(!checked.ok && checked.problems));
      assert.deepEqual(checked.config, frame.config, "the pushed config is normalised");
    }
  });

  it("the hello advertises the feature; reloads name the applied config; replies echo them", () => {
    const all = frames();
    const hello = all.find(([, f]) => f.type === "hello")?.[1];
    assert.ok(hello);
    assert.deepEqual(helloFeatures(hello), [SECRETS_RELOAD_FEATURE]);
    const applied = hello.applied as { version: number; hash: string };
    let last: Record<string, unknown> | null = null;
    let lastNonce = 0;
    let generation = 0;
    for (const [, f] of all) {
      if (f.type === "secrets-reload") {
        assert.deepEqual({ version: f.version, hash: f.hash }, applied);
        assert.ok((f.nonce as number) > lastNonce && (f.generation as number) > generation);
        lastNonce = f.nonce as number;
        generation = f.generation as number;
        last = f;
      } else if ((f.type === "ack" || f.type === "nack") && last !== null) {
        for (const k of ["nonce", "version", "hash"]) assert.equal(f[k], last[k], k);
        if (f.type === "nack") assert.deepEqual(f.applied, applied, "the applied config stays");
        last = null;
      }
    }
    assert.equal(last, null, "every reload is answered");
  });

  it("the v2 table lists exactly what v2 adds to v1, with the documented TTL bounds", () => {
    const start = DOC.indexOf("## 16. Config schema v2");
    const rows = DOC.slice(start)
      .split("\n")
      .filter((l) => /^\| `[a-zA-Z.[\]]+` /.test(l))
      .map((l) => l.split("|")[1]!.trim().replaceAll("`", ""));
    const v2Server = Object.keys(configSchemaV2.properties.server.properties);
    const v1Server = Object.keys(configSchemaV1.properties.server.properties);
    const turn = (s: typeof configSchemaV1 | typeof configSchemaV2) =>
      Object.keys(s.properties.webrtc.properties.turnServers.items.properties);
    const added = [
      ...v2Server.filter((k) => !v1Server.includes(k)).map((k) => `server.${k}`),
      ...turn(configSchemaV2)
        .filter((k) => !turn(configSchemaV1).includes(k))
        .map((k) => `webrtc.turnServers[].${k}`),
    ];
    for (const field of added) assert.ok(rows.includes(field), `${field} documented`);
    assert.ok(DOC.includes(`integer ${CREDENTIAL_TTL.min}..${CREDENTIAL_TTL.max}`));
    assert.ok(DOC.includes(`default \`${CREDENTIAL_TTL.default}\``));
  });
});
