import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalise } from "../../../protocol/index.ts";
import type { ConfigSnapshot } from "../../../sfu/config-state.ts";
import { announcedCandidates, buildCodecs, codecNameOfMime, peerOptionsFor } from "../../../sfu/peer-options.ts";

function snapshot(webrtc: Record<string, unknown>): ConfigSnapshot {
  const config = normalise({
    schemaVersion: 1,
    server: { port: 8080 },
    webrtc: { icePortRange: [20000, 20100], codecs: ["vp8", "opus"], ...webrtc },
  } as never);
  return {
    version: 1,
    hash: "sha256:0",
    revision: null,
    config,
    iceServers: [],
    appliedAt: 0,
  } as unknown as ConfigSnapshot;
}

describe("peer options", () => {
  it("builds max-bundle options with no ICE servers, the port range and the codecs in order", () => {
    const o = peerOptionsFor(snapshot({ codecs: ["vp9", "opus", "vp8", "pcmu"] }));
    assert.equal(o.bundlePolicy, "max-bundle");
    assert.deepEqual(o.iceServers, []);
    assert.deepEqual(o.icePortRange, [20000, 20100]);
    assert.deepEqual(
      o.codecs?.video?.map((c) => c.mimeType),
      ["video/VP9", "video/VP8"],
    );
    assert.deepEqual(
      o.codecs?.audio?.map((c) => c.mimeType),
      ["audio/OPUS", "audio/PCMU"],
    );
    assert.equal(o.iceUseIpv6, false);
  });

  it("binds ICE to loopback and adds it as a host address", () => {
    const o = peerOptionsFor(snapshot({ listenIp: "127.0.0.1" }));
    assert.deepEqual(o.iceInterfaceAddresses, { udp4: "127.0.0.1" });
    assert.deepEqual(o.iceAdditionalHostAddresses, ["127.0.0.1"]);
  });

  it("appends extra codecs still published in the room", () => {
    const o = peerOptionsFor(snapshot({ codecs: ["vp9", "opus"] }), { extraCodecs: ["vp8", "vp9"] });
    assert.deepEqual(
      o.codecs?.video?.map((c) => c.mimeType),
      ["video/VP9", "video/VP8"],
    );
  });

  it("returns fresh codec objects on every call (werift mutates them)", () => {
    const a = buildCodecs(["vp8", "opus"]);
    const b = buildCodecs(["vp8", "opus"]);
    assert.notEqual(a.video[0], b.video[0]);
  });

  it("maps mime types back to config names", () => {
    assert.equal(codecNameOfMime("video/VP8"), "vp8");
    assert.equal(codecNameOfMime("audio/opus"), "opus");
    assert.equal(codecNameOfMime("video/rtx"), null);
  });

  it("adds announced addresses for host candidates only", () => {
    const host = "1 1 udp 2130706431 10.0.0.5 40000 typ host";
    assert.deepEqual(announcedCandidates(host, ["203.0.113.7"]), ["11 1 udp 2130706431 203.0.113.7 40000 typ host"]);
    assert.deepEqual(announcedCandidates("1 1 udp 1 10.0.0.5 4 typ srflx raddr 0.0.0.0 rport 0", ["203.0.113.7"]), []);
  });
});
