/** Resolving a config's TURN servers into served entries and per-participant iceServers. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import type { NormalisedConfig } from "../../../protocol/index.ts";
import { iceServersFor, resolveTurnEntries, type SecretReader, sameTurnEntries } from "../../../sfu/ice-servers.ts";

const config = (turnServers: unknown[]) =>
  ({
    schemaVersion: 2,
    server: { port: 8080, allowedOrigins: [] },
    webrtc: {
      icePortRange: [20000, 20100],
      codecs: ["vp8", "opus"],
      listenIp: "0.0.0.0",
      announcedIps: [],
      turnServers,
    },
    logging: { level: "info" },
    limits: { maxRooms: 1, maxParticipantsPerRoom: 1 },
  }) as unknown as NormalisedConfig;

/** A reader over an in-memory directory, recording its calls. */
function reader(files: Record<string, string>) {
  const calls: string[] = [];
  const read: SecretReader = async (path, dir) => {
    calls.push(`${dir}|${path}`);
    const v = files[path];
    return v === undefined
      ? { ok: false, code: "NOT_FOUND", message: `${path}: secret file does not exist` }
      : { ok: true, value: Buffer.from(v) };
  };
  return { read, calls };
}

describe("resolveTurnEntries / iceServersFor", () => {
  it("keeps STUN and static entries as configured and mints REST entries per participant", async () => {
    const { read, calls } = reader({ "/s/cred": "static-pw\n", "/s/auth": "shared\n" });
    const r = await resolveTurnEntries(
      config([
        { urls: ["stun:a.example"] },
        { urls: ["turn:b.example"], username: "u", credentialFile: "/s/cred" },
        { urls: ["turn:c.example"], authSecretFile: "/s/auth", credentialTtl: 60 },
      ]),
      "/s",
      read,
    );
    assert.ok(r.ok);
    assert.deepEqual(calls, ["/s|/s/cred", "/s|/s/auth"]);
    const servers = iceServersFor(r.entries, "p9", 5_000);
    assert.deepEqual(servers[0], { urls: ["stun:a.example"] });
    assert.deepEqual(servers[1], { urls: ["turn:b.example"], username: "u", credential: "static-pw" });
    assert.deepEqual(servers[2], {
      urls: ["turn:c.example"],
      username: "65:p9",
      credential: createHmac("sha1", "shared").update("65:p9").digest("base64"),
    });
    assert.ok(!JSON.stringify(r.entries).includes("shared"), "the entries never serialise the shared secret");
  });

  it("returns the first failure with the field's pointer; an empty auth secret is refused", async () => {
    const missing = await resolveTurnEntries(
      config([{ urls: ["turn:c.example"], authSecretFile: "/s/none" }]),
      "/s",
      reader({}).read,
    );
    assert.deepEqual(missing, {
      ok: false,
      pointer: "/webrtc/turnServers/0/authSecretFile",
      message: "authSecretFile: /s/none: secret file does not exist",
    });
    const empty = await resolveTurnEntries(
      config([{ urls: ["turn:c"], authSecretFile: "/s/e" }]),
      "/s",
      reader({ "/s/e": " \n" }).read,
    );
    assert.ok(!empty.ok && /empty/.test(empty.message));
    // A whitespace-only static credential is refused too (validate refuses the same file).
    const blank = await resolveTurnEntries(
      config([{ urls: ["turn:b"], username: "u", credentialFile: "/s/blank" }]),
      "/s",
      reader({ "/s/blank": "\t \r\n" }).read,
    );
    assert.deepEqual(blank, {
      ok: false,
      pointer: "/webrtc/turnServers/0/credentialFile",
      message: "credentialFile: /s/blank: secret file is empty (or only whitespace)",
    });
  });

  it("sameTurnEntries tells a changed secret from an unchanged one", async () => {
    const a = await resolveTurnEntries(
      config([{ urls: ["turn:c"], authSecretFile: "/s/a" }]),
      "/s",
      reader({ "/s/a": "1" }).read,
    );
    const b = await resolveTurnEntries(
      config([{ urls: ["turn:c"], authSecretFile: "/s/a" }]),
      "/s",
      reader({ "/s/a": "1\n" }).read,
    );
    const c = await resolveTurnEntries(
      config([{ urls: ["turn:c"], authSecretFile: "/s/a" }]),
      "/s",
      reader({ "/s/a": "2" }).read,
    );
    assert.ok(a.ok && b.ok && c.ok);
    assert.equal(sameTurnEntries(a.entries, b.entries), true);
    assert.equal(sameTurnEntries(a.entries, c.entries), false);
  });
});
