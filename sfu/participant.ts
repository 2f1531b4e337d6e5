/**
 * One participant: a single werift RTCPeerConnection carrying both what the
 * client publishes (recvonly m-lines on the SFU side) and every subscription
 * (sendonly m-lines). The SFU is the only offerer: changes are queued and one
 * offer is in flight at a time, so there is never glare. The connection keeps
 * the options of the config snapshot it was created under.
 */
import type { Logger } from "pino";
import {
  type MediaStreamTrack,
  PictureLossIndication,
  type RTCIceCandidate,
  RTCPeerConnection,
  type RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  type RtpPacket,
} from "werift";
import type { CodecName } from "../protocol/index.ts";
import { type HealthOutcome, ICE_CONNECT_TIMEOUT_MS } from "./call-health.ts";
import type { ConfigSnapshot } from "./config-state.ts";
import { TrackForwarder } from "./forwarder.ts";
import { announcedCandidates, codecNameOfMime, peerOptionsFor } from "./peer-options.ts";
import type { CandidateInit, ParticipantInfo, PublishRequest, ServerMessage, TrackInfo } from "./signal-messages.ts";

/** RTCP payload-specific feedback packet type and the PLI and FIR formats. */
const RTCP_PSFB = 206;
const PLI_FMT = 1;
const FIR_FMT = 4;
/**
 * Sender SSRC of the PLIs the SFU sends upstream. werift's own receiver uses
 * its paired sender's SSRC, which a werift publisher routes to its receiver
 * instead of its sender; 1 is what libwebrtc uses for receive-only RTCP.
 */
const RTCP_RECEIVER_SSRC = 1;

/** A track a participant publishes, with its forwarder. */
export interface PublishedTrack {
  readonly info: TrackInfo;
  readonly codec: RTCRtpCodecParameters;
  readonly forwarder: TrackForwarder<RtpPacket>;
}

interface Subscription {
  readonly track: PublishedTrack;
  readonly transceiver: RTCRtpTransceiver;
  readonly dispose: () => void;
}

/** Dependencies and options of a {@link Participant}. */
export interface ParticipantOptions {
  id: string;
  name: string;
  room: string;
  logger: Logger;
  /** The config snapshot the peer connection is created under. */
  snapshot: ConfigSnapshot;
  /** Codecs published in the room that the snapshot no longer lists (see peer-options.ts). */
  extraCodecs?: readonly CodecName[];
  /** Sends a signalling message to the client. Must not throw. */
  send: (message: ServerMessage) => void;
  /** Called once when this participant publishes a new track. */
  onTrackPublished: (track: PublishedTrack) => void;
  /** Called when the participant cannot continue (answer timeout, ICE failure). */
  onFailed: (reason: string) => void;
  /** How long the client has to answer an offer (default 15 s). */
  answerTimeoutMs?: number;
  /** Minimum interval between keyframe requests sent to this publisher (default 500 ms). */
  keyframeIntervalMs?: number;
  /**
   * Receives this participant's call-health outcomes (sfu/call-health.ts): at
   * most one of `iceConnected`, `iceFailure` (connection failed, or not
   * connected within `iceConnectTimeoutMs` of the first answer) and
   * `joinFailure` (dropped before connecting for another reason).
   */
  onHealth?: (outcome: Exclude<HealthOutcome, "join">) => void;
  /** See `onHealth` (default {@link ICE_CONNECT_TIMEOUT_MS}). */
  iceConnectTimeoutMs?: number;
}

let trackCounter = 0;

/** A client in a room. Create, then call {@link Participant.negotiate}; {@link Participant.close} releases everything. */
export class Participant {
  readonly id: string;
  readonly name: string;
  readonly room: string;
  /** The snapshot this participant's peer connection was created under. */
  readonly snapshot: ConfigSnapshot;
  readonly pc: RTCPeerConnection;
  readonly published = new Map<string, PublishedTrack>();
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #publishSlots = new Map<"audio" | "video", RTCRtpTransceiver>();
  /** Subscriptions by the SSRC the SFU sends them with (PLI/FIR carry it as media SSRC). */
  readonly #bySenderSsrc = new Map<number, Subscription>();
  readonly #rtcpTransports = new WeakSet<object>();
  readonly #options: ParticipantOptions;
  readonly #log: Logger;
  #offerInFlight = false;
  #again = false;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The call-health verdict given for this participant (one at most). */
  #verdict: Exclude<HealthOutcome, "join"> | null = null;
  #iceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Offers sent to the client (the first one and every renegotiation). */
  offersSent = 0;

  constructor(options: ParticipantOptions) {
    this.#options = options;
    this.id = options.id;
    this.name = options.name;
    this.room = options.room;
    this.snapshot = options.snapshot;
    this.#log = options.logger.child({ participant: options.id, room: options.room });
    this.pc = new RTCPeerConnection(peerOptionsFor(options.snapshot, { extraCodecs: options.extraCodecs ?? [] }));
    const announced = options.snapshot.config.webrtc.announcedIps;
    this.pc.onIceCandidate.subscribe((candidate: RTCIceCandidate | undefined) => {
      if (this.#closed) return;
      if (!candidate) {
        this.#options.send({ type: "candidate", candidate: null });
        return;
      }
      const init = candidate.toJSON() as CandidateInit;
      this.#options.send({ type: "candidate", candidate: init });
      for (const extra of announcedCandidates(init.candidate.replace(/^candidate:/, ""), announced)) {
        this.#options.send({ type: "candidate", candidate: { ...init, candidate: `candidate:${extra}` } });
      }
    });
    this.pc.connectionStateChange.subscribe((state) => {
      this.#log.debug({ state }, "peer connection state");
      if (state === "connected") this.#judge("iceConnected");
      if (state === "failed" && !this.#closed) {
        this.#judge("iceFailure");
        this.#options.onFailed("ICE/DTLS connection failed");
      }
    });
  }

  /** Gives this participant's call-health verdict, once. */
  #judge(outcome: Exclude<HealthOutcome, "join">): void {
    if (this.#verdict !== null || this.#closed) return;
    this.#verdict = outcome;
    clearTimeout(this.#iceTimer);
    this.#options.onHealth?.(outcome);
  }

  /** The SFU gives up on this participant: before it connected, that is a failed join. */
  #fail(reason: string): void {
    this.#judge("joinFailure");
    this.#options.onFailed(reason);
  }

  /** What other participants see of this one. */
  info(): ParticipantInfo {
    return { id: this.id, name: this.name, tracks: [...this.published.values()].map((t) => t.info) };
  }

  /** Number of subscriptions (remote tracks sent to this client). */
  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  /** Adds recvonly m-lines for the kinds the client wants to publish (once per kind). */
  requestPublish(publish: PublishRequest): boolean {
    let changed = false;
    for (const kind of ["audio", "video"] as const) {
      if (!publish[kind] || this.#publishSlots.has(kind) || this.#closed) continue;
      const transceiver = this.pc.addTransceiver(kind, { direction: "recvonly" });
      const allowed = new Set<string>(this.snapshot.config.webrtc.codecs);
      const prefs = (this.pc.config.codecs[kind] ?? []).filter((c) => allowed.has(codecNameOfMime(c.mimeType) ?? ""));
      if (prefs.length > 0) transceiver.setCodecPreferences(prefs);
      transceiver.onTrack.subscribe((track: MediaStreamTrack) => this.#onRemoteTrack(kind, transceiver, track));
      this.#publishSlots.set(kind, transceiver);
      changed = true;
    }
    return changed;
  }

  #onRemoteTrack(kind: "audio" | "video", transceiver: RTCRtpTransceiver, track: MediaStreamTrack): void {
    if (this.#closed) return;
    const codec = transceiver.codecs[0];
    if (!codec) {
      this.#log.warn({ kind }, "remote track without a negotiated codec; ignored");
      return;
    }
    let lastSsrc: number | undefined;
    const forwarder = new TrackForwarder<RtpPacket>({
      keyframeIntervalMs: this.#options.keyframeIntervalMs ?? 500,
      requestKeyframe: () => {
        const ssrc = track.ssrc ?? lastSsrc;
        if (ssrc === undefined || this.#closed) return;
        const pli = new RtcpPayloadSpecificFeedback({
          feedback: new PictureLossIndication({ senderSsrc: RTCP_RECEIVER_SSRC, mediaSsrc: ssrc }),
        });
        transceiver.receiver.dtlsTransport.sendRtcp([pli]).catch(() => {});
      },
    });
    track.onReceiveRtp.subscribe((packet: RtpPacket) => {
      lastSsrc = packet.header.ssrc;
      forwarder.push(packet);
    });
    const id = `${this.id}-${kind}-${++trackCounter}`;
    const published: PublishedTrack = {
      info: { id, participantId: this.id, kind, codec: codec.mimeType },
      codec,
      forwarder,
    };
    this.published.set(id, published);
    this.#log.info({ track: id, codec: codec.mimeType }, "track published");
    this.#options.onTrackPublished(published);
  }

  /**
   * Subscribes this client to `track`: a sendonly m-line restricted to the
   * publisher's codec. Returns false when this connection cannot carry that
   * codec (it was created under a config without it) or is closed.
   */
  subscribe(track: PublishedTrack): boolean {
    if (this.#closed || this.#subscriptions.has(track.info.id)) return false;
    const kind = track.info.kind;
    const mime = track.codec.mimeType.toLowerCase();
    const prefs = (this.pc.config.codecs[kind] ?? []).filter((c) => c.mimeType.toLowerCase() === mime);
    if (prefs.length === 0) {
      this.#log.warn({ track: track.info.id, codec: track.codec.mimeType }, "cannot subscribe: codec not negotiable");
      return false;
    }
    const transceiver = this.pc.addTransceiver(kind, { direction: "sendonly" });
    transceiver.setCodecPreferences(prefs);
    const sender = transceiver.sender;
    track.forwarder.addSink(this.id, (packet) => {
      sender.sendRtp(packet).catch(() => {});
    });
    const subscription: Subscription = {
      track,
      transceiver,
      dispose: () => {
        track.forwarder.removeSink(this.id);
        this.#bySenderSsrc.delete(sender.ssrc);
      },
    };
    this.#subscriptions.set(track.info.id, subscription);
    this.#bySenderSsrc.set(sender.ssrc, subscription);
    return true;
  }

  /** Drops every subscription to tracks of `participantId`; returns whether any existed. */
  unsubscribeFrom(participantId: string): boolean {
    let changed = false;
    for (const [id, sub] of this.#subscriptions) {
      if (sub.track.info.participantId !== participantId) continue;
      sub.dispose();
      sub.transceiver.stop();
      this.#subscriptions.delete(id);
      changed = true;
    }
    return changed;
  }

  /**
   * Sends an offer reflecting every queued change. With an offer in flight the
   * call only marks that another offer is needed once the answer arrives.
   */
  async negotiate(): Promise<void> {
    if (this.#closed) return;
    if (this.#offerInFlight) {
      this.#again = true;
      return;
    }
    this.#offerInFlight = true;
    this.#again = false;
    try {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      if (this.#closed) return;
      this.#watchRtcp();
      const publish: { mid: string; kind: "audio" | "video" }[] = [];
      for (const [kind, t] of this.#publishSlots) if (t.mid !== null) publish.push({ mid: t.mid, kind });
      const tracks: Record<string, TrackInfo> = {};
      for (const sub of this.#subscriptions.values()) {
        if (sub.transceiver.mid !== null) tracks[sub.transceiver.mid] = sub.track.info;
      }
      this.offersSent++;
      this.#options.send({ type: "offer", sdp: this.pc.localDescription?.sdp ?? offer.sdp, publish, tracks });
      this.#answerTimer = setTimeout(
        () => this.#fail("no answer to the SFU's offer in time"),
        this.#options.answerTimeoutMs ?? 15_000,
      );
    } catch (err) {
      this.#offerInFlight = false;
      if (!this.#closed) {
        this.#log.error({ err }, "creating an offer failed");
        this.#fail("creating an offer failed");
      }
    }
  }

  /**
   * Keyframe requests are taken from the transport's RTCP, keyed by media
   * SSRC. werift's own router delivers PSFB by *sender* SSRC first, which for
   * a browser that also publishes is its video SSRC, i.e. our receiver, and
   * the request would be lost.
   */
  #watchRtcp(): void {
    for (const transport of this.pc.dtlsTransports) {
      if (this.#rtcpTransports.has(transport)) continue;
      this.#rtcpTransports.add(transport);
      transport.onRtcp.subscribe((packet: RtcpPacket) => {
        const p = packet as {
          type?: number;
          feedback?: { count?: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
        };
        if (p.type !== RTCP_PSFB || !p.feedback) return;
        if (p.feedback.count === PLI_FMT && p.feedback.mediaSsrc !== undefined) {
          this.#bySenderSsrc.get(p.feedback.mediaSsrc)?.track.forwarder.requestKeyframe();
        } else if (p.feedback.count === FIR_FMT) {
          for (const entry of p.feedback.fir ?? [])
            this.#bySenderSsrc.get(entry.ssrc)?.track.forwarder.requestKeyframe();
        }
      });
    }
  }

  /** Applies the client's answer to the offer in flight. Returns an error message or null. */
  async handleAnswer(sdp: string): Promise<string | null> {
    if (this.#closed) return null;
    if (!this.#offerInFlight) return "no offer is waiting for an answer";
    clearTimeout(this.#answerTimer);
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (err) {
      this.#offerInFlight = false;
      return `answer rejected: ${(err as Error).message}`;
    }
    this.#offerInFlight = false;
    if (this.#verdict === null && this.#iceTimer === undefined && !this.#closed) {
      this.#iceTimer = setTimeout(() => {
        if (this.pc.connectionState !== "connected") this.#judge("iceFailure");
      }, this.#options.iceConnectTimeoutMs ?? ICE_CONNECT_TIMEOUT_MS);
    }
    if (this.#again) await this.negotiate();
    return null;
  }

  /** Adds a trickled remote candidate (null = end of candidates). Returns an error message or null. */
  async handleCandidate(candidate: CandidateInit | null): Promise<string | null> {
    if (this.#closed) return null;
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
      return null;
    } catch (err) {
      return `candidate rejected: ${(err as Error).message}`;
    }
  }

  /** Releases the peer connection, forwarders and subscriptions. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#iceTimer);
    for (const sub of this.#subscriptions.values()) sub.dispose();
    this.#subscriptions.clear();
    for (const t of this.published.values()) t.forwarder.close();
    await this.pc.close();
  }
}
