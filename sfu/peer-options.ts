/**
 * Turns an applied config snapshot into werift RTCPeerConnection options.
 * Called once per peer connection at creation: a connection keeps the options
 * it was created with for its whole life (changing codecs or ICE settings
 * under a live connection would force a renegotiation or an ICE restart and
 * interrupt the call), so a config change affects only connections created
 * after it.
 */
import {
  type PeerConfig,
  type RTCRtpCodecParameters,
  useAV1,
  useH264,
  useOPUS,
  usePCMA,
  usePCMU,
  useVP8,
  useVP9,
} from "werift";
import type { CodecName } from "../protocol/index.ts";
import type { ConfigSnapshot } from "./config-state.ts";

/** Config codec name -> werift codec factory. Each call returns a fresh object (werift mutates them). */
const CODEC_FACTORIES: Record<CodecName, () => RTCRtpCodecParameters> = {
  vp8: () => useVP8(),
  vp9: () => useVP9({ parameters: "profile-id=0" }),
  h264: () => useH264(),
  av1: () => useAV1(),
  opus: () => useOPUS(),
  pcmu: () => usePCMU(),
  pcma: () => usePCMA(),
};

/** The media kind of a config codec name. */
export function codecKind(name: CodecName): "audio" | "video" {
  return name === "opus" || name === "pcmu" || name === "pcma" ? "audio" : "video";
}

/** The config codec name of a werift/SDP mime type (`video/VP8` -> `vp8`), or null. */
export function codecNameOfMime(mimeType: string): CodecName | null {
  const name = mimeType.split("/")[1]?.toLowerCase();
  return name !== undefined && name in CODEC_FACTORIES ? (name as CodecName) : null;
}

/** Fresh werift codec parameters for `names`, split by kind, in the given order. */
export function buildCodecs(names: readonly CodecName[]): {
  audio: RTCRtpCodecParameters[];
  video: RTCRtpCodecParameters[];
} {
  const audio: RTCRtpCodecParameters[] = [];
  const video: RTCRtpCodecParameters[] = [];
  for (const name of names) (codecKind(name) === "audio" ? audio : video).push(CODEC_FACTORIES[name]());
  return { audio, video };
}

/** Extra inputs of {@link peerOptionsFor}. */
export interface PeerOptionsExtra {
  /**
   * Codecs other participants publish that the config no longer lists. They
   * are appended after the configured codecs so this connection can still
   * receive those tracks; the client's own publishing is restricted to the
   * configured codecs with codec preferences.
   */
  extraCodecs?: readonly CodecName[];
}

/**
 * werift options for a peer connection created under `snapshot`:
 * `bundlePolicy: "max-bundle"` (one UDP socket per connection), no ICE
 * servers for the SFU itself (TURN is for clients), ICE bound to `listenIp`
 * (loopback added as a host address when it is 127.0.0.1), the configured
 * port range and codecs.
 */
export function peerOptionsFor(snapshot: ConfigSnapshot, extra: PeerOptionsExtra = {}): Partial<PeerConfig> {
  const w = snapshot.config.webrtc;
  const names = [...w.codecs, ...(extra.extraCodecs ?? []).filter((c) => !w.codecs.includes(c))];
  const options: Partial<PeerConfig> = {
    iceServers: [],
    bundlePolicy: "max-bundle",
    codecs: buildCodecs(names),
    icePortRange: [w.icePortRange[0], w.icePortRange[1]],
  };
  const ip = w.listenIp;
  const v6 = ip.includes(":");
  if (ip === "0.0.0.0") {
    options.iceUseIpv4 = true;
    options.iceUseIpv6 = false;
  } else if (ip === "::") {
    options.iceUseIpv4 = true;
    options.iceUseIpv6 = true;
  } else if (v6) {
    options.iceUseIpv4 = false;
    options.iceUseIpv6 = true;
    options.iceInterfaceAddresses = { udp6: ip };
    if (ip === "::1") options.iceAdditionalHostAddresses = [ip];
  } else {
    options.iceUseIpv4 = true;
    options.iceUseIpv6 = false;
    options.iceInterfaceAddresses = { udp4: ip };
    if (ip.startsWith("127.")) options.iceAdditionalHostAddresses = [ip];
  }
  return options;
}

/**
 * Candidate lines to add for `announcedIps` (NAT 1:1): for a host candidate
 * line, one copy per announced address with the address replaced and the
 * foundation suffixed. Other candidate types yield nothing.
 */
export function announcedCandidates(candidate: string, announcedIps: readonly string[]): string[] {
  const parts = candidate.split(" ");
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
  if (parts.length < 8 || parts[6] !== "typ" || parts[7] !== "host") return [];
  return announcedIps
    .filter((ip) => ip !== parts[4])
    .map((ip, i) => {
      const copy = [...parts];
      copy[0] = `${parts[0]}${i + 1}`;
      copy[4] = ip;
      return copy.join(" ");
    });
}
