/**
 * A werift test client for the SFU's signalling (sfu/README.md): joins a
 * room over `/ws`, answers the SFU's offers, publishes synthetic RTP on the
 * m-lines the SFU assigns, subscribes to everything it is offered and counts
 * what arrives per remote track (packets, duplicate sequence numbers, the
 * longest gap between arrivals). Reused by the e2e tests.
 *
 *   const c = await WeriftTestClient.join({ url: `ws://127.0.0.1:${port}/ws`, room: "r", name: "a" });
 *   await c.waitConnected();
 *   const pub = c.startPublishing({ kind: "video", packetsPerSecond: 150 });
 *   ... c.tracks ...
 *   await c.close();
 *
 * Media stays on 127.0.0.1. Always close() (or the process does not exit).
 */
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import {
  type MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpTransceiver,
  RtpHeader,
  RtpPacket,
  useH264,
  useOPUS,
  usePCMU,
  useVP8,
  useVP9,
} from "werift";
import { WebSocket } from "ws";

/** Options of {@link WeriftTestClient.join}. */
export interface WeriftClientOptions {
  /** Signalling URL, `ws://127.0.0.1:<port>/ws`. */
  url: string;
  room: string;
  name: string;
  /** What to publish (default audio + video). */
  publish?: { audio?: boolean; video?: boolean };
  /** Timeout of every wait (default 10 s). */
  timeoutMs?: number;
  /** Send NACKs for lost packets (default false, so duplicate counts reflect the SFU only). */
  sendNack?: boolean;
}

/** What arrived on one subscribed track. */
export interface ReceivedTrack {
  /** SFU track id (from the offer's `tracks` map). */
  trackId: string;
  participantId: string;
  kind: "audio" | "video";
  mid: string;
  /** Negotiated codec mime type. */
  codec: string;
  ssrc: number | undefined;
  packets: number;
  /** Packets whose sequence number was already seen. */
  duplicates: number;
  /** Distinct sequence numbers seen. */
  readonly seqs: Set<number>;
  /** performance.now() of the first and last arrival. */
  firstAt: number | null;
  lastAt: number | null;
  /** Longest gap between two consecutive arrivals (ms). */
  maxGapMs: number;
  /** Longest gap since {@link WeriftTestClient.resetGaps}. */
  maxGapSinceResetMs: number;
}

/** A running synthetic publisher. */
export interface Publishing {
  /** Packets written so far. */
  readonly sent: number;
  stop(): void;
}

type Msg = { type: string; [k: string]: unknown };

/** A signalling + werift client. Create with {@link WeriftTestClient.join}. */
export class WeriftTestClient {
  readonly pc: RTCPeerConnection;
  readonly ws: WebSocket;
  /** The `joined` message. */
  joined!: Msg & {
    id: string;
    iceServers: unknown[];
    participants: unknown[];
    config: { version: number; hash: string } | null;
  };
  /** Every message received, in order. */
  readonly messages: Msg[] = [];
  /** Remote tracks by SFU track id. */
  readonly tracks = new Map<string, ReceivedTrack>();
  /** Offers received from the SFU. */
  offers = 0;
  /** PLIs the SFU sent to this client's publishing senders. */
  plisReceived = 0;
  /** Codec mime types this client publishes with, by kind (after negotiation). */
  readonly publishCodecs = new Map<"audio" | "video", string>();
  readonly #publishSenders = new Map<"audio" | "video", RTCRtpTransceiver>();
  readonly #publishMids = new Set<string>();
  readonly #trackInfo = new Map<string, { id: string; participantId: string; kind: "audio" | "video" }>();
  readonly #timeout: number;
  readonly #waiters = new Set<() => void>();
  #chain = Promise.resolve();
  #closed = false;

  private constructor(ws: WebSocket, options: WeriftClientOptions) {
    this.ws = ws;
    this.#timeout = options.timeoutMs ?? 10_000;
    this.pc = new RTCPeerConnection({
      iceServers: [],
      bundlePolicy: "max-bundle",
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ["127.0.0.1"],
      iceInterfaceAddresses: { udp4: "127.0.0.1" },
      codecs: { audio: [useOPUS(), usePCMU()], video: [useVP8(), useVP9({ parameters: "profile-id=0" }), useH264()] },
      debug: options.sendNack ? {} : { disableSendNack: true },
    });
    this.pc.onIceCandidate.subscribe((c) => this.send({ type: "candidate", candidate: c ? c.toJSON() : null }));
    this.pc.onRemoteTransceiverAdded.subscribe((t) => t.onTrack.subscribe((track) => this.#onTrack(t, track)));
  }

  /** Opens the socket, sends `join` and waits for `joined` (throws on an `error` reply). */
  static async join(options: WeriftClientOptions): Promise<WeriftTestClient> {
    const ws = new WebSocket(options.url);
    await once(ws, "open");
    const client = new WeriftTestClient(ws, options);
    ws.on("message", (data) => client.#onMessage(JSON.parse(data.toString()) as Msg));
    ws.on("close", () => client.#notify());
    client.send({
      type: "join",
      room: options.room,
      name: options.name,
      publish: { audio: options.publish?.audio ?? true, video: options.publish?.video ?? true },
    });
    await client.waitFor(() => client.messages.some((m) => m.type === "joined" || m.type === "error"), "joined");
    const first = client.messages.find((m) => m.type === "joined" || m.type === "error")!;
    if (first.type === "error") {
      await client.close();
      const err = new Error(`join refused: ${first.code}: ${first.message}`) as Error & { code: unknown };
      err.code = first.code;
      throw err;
    }
    client.joined = first as WeriftTestClient["joined"];
    return client;
  }

  /** Sends a signalling message. */
  send(message: Msg): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves when `predicate` holds (re-checked on every event and every 50 ms). */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = this.#timeout): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const poll = setInterval(check, 50);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`WeriftTestClient: timed out waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearInterval(poll);
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  #onMessage(m: Msg): void {
    this.messages.push(m);
    if (m.type === "offer") {
      this.#chain = this.#chain
        .then(() => this.#answer(m))
        .catch((err) => {
          this.messages.push({ type: "client-error", message: String(err) });
        });
    } else if (m.type === "candidate") {
      const c = m.candidate as { candidate: string; sdpMid?: string; sdpMLineIndex?: number } | null;
      this.#chain = this.#chain.then(() => this.pc.addIceCandidate(c ?? undefined)).catch(() => {});
    }
    this.#notify();
  }

  async #answer(m: Msg): Promise<void> {
    if (this.#closed) return;
    this.offers++;
    const tracks = m.tracks as Record<string, { id: string; participantId: string; kind: "audio" | "video" }>;
    for (const [mid, info] of Object.entries(tracks)) this.#trackInfo.set(mid, info);
    for (const { mid } of m.publish as { mid: string }[]) this.#publishMids.add(mid);
    await this.pc.setRemoteDescription({ type: "offer", sdp: m.sdp as string });
    for (const { mid, kind } of m.publish as { mid: string; kind: "audio" | "video" }[]) {
      if (this.#publishSenders.has(kind)) continue;
      const t = this.pc.getTransceivers().find((x) => x.mid === mid);
      if (!t) continue;
      t.setDirection("sendonly");
      this.#publishSenders.set(kind, t);
      t.sender.onPictureLossIndication.subscribe(() => {
        this.plisReceived++;
        this.#notify();
      });
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    for (const [kind, t] of this.#publishSenders) {
      const codec = t.codecs[0];
      if (codec) this.publishCodecs.set(kind, codec.mimeType);
    }
    this.send({ type: "answer", sdp: this.pc.localDescription?.sdp ?? answer.sdp });
    this.#notify();
  }

  #onTrack(t: RTCRtpTransceiver, track: MediaStreamTrack): void {
    const mid = t.mid ?? "";
    if (this.#publishMids.has(mid)) return; // our own publishing m-line, not a subscription
    const info = this.#trackInfo.get(mid);
    const rec: ReceivedTrack = {
      trackId: info?.id ?? `mid-${mid}`,
      participantId: info?.participantId ?? "",
      kind: (info?.kind ?? track.kind) as "audio" | "video",
      mid,
      codec: t.codecs[0]?.mimeType ?? "",
      ssrc: track.ssrc,
      packets: 0,
      duplicates: 0,
      seqs: new Set(),
      firstAt: null,
      lastAt: null,
      maxGapMs: 0,
      maxGapSinceResetMs: 0,
    };
    this.tracks.set(rec.trackId, rec);
    track.onReceiveRtp.subscribe((p) => {
      const now = performance.now();
      rec.ssrc = p.header.ssrc;
      rec.packets++;
      if (rec.seqs.has(p.header.sequenceNumber)) rec.duplicates++;
      else rec.seqs.add(p.header.sequenceNumber);
      if (rec.lastAt !== null) {
        const gap = now - rec.lastAt;
        if (gap > rec.maxGapMs) rec.maxGapMs = gap;
        if (gap > rec.maxGapSinceResetMs) rec.maxGapSinceResetMs = gap;
      }
      rec.firstAt ??= now;
      rec.lastAt = now;
    });
    this.#notify();
  }

  /** Waits until the peer connection is connected. */
  async waitConnected(): Promise<void> {
    await this.waitFor(() => this.pc.connectionState === "connected", `${this.joined?.id} connected`);
  }

  /** Waits until the SFU assigned a publish m-line of `kind` and it is negotiated. */
  async waitPublishReady(kind: "audio" | "video" = "video"): Promise<void> {
    await this.waitFor(() => this.publishCodecs.has(kind), `publish slot ${kind}`);
    await this.waitConnected();
  }

  /** Waits for `n` remote tracks (optionally of one kind). */
  async waitForTracks(n: number, kind?: "audio" | "video"): Promise<ReceivedTrack[]> {
    const list = () => [...this.tracks.values()].filter((t) => !kind || t.kind === kind);
    await this.waitFor(() => list().length >= n, `${n} remote ${kind ?? ""} tracks`);
    return list();
  }

  /**
   * Writes synthetic RTP on the publish m-line of `kind` at `packetsPerSecond`
   * (payload `payloadBytes`). `duplicateEvery` re-sends every n-th packet once
   * more (what a NACK retransmission looks like to the SFU).
   */
  startPublishing(
    options: {
      kind?: "audio" | "video";
      packetsPerSecond?: number;
      payloadBytes?: number;
      duplicateEvery?: number;
    } = {},
  ): Publishing {
    const kind = options.kind ?? "video";
    const t = this.#publishSenders.get(kind);
    if (!t) throw new Error(`WeriftTestClient: no ${kind} publish slot negotiated`);
    const pps = options.packetsPerSecond ?? (kind === "video" ? 150 : 50);
    const payload = Buffer.alloc(options.payloadBytes ?? (kind === "video" ? 1200 : 160), 0xab);
    if (kind === "video") payload[0] = 0x10; // VP8 payload descriptor: S=1, partition 0
    const clockRate = kind === "video" ? 90_000 : 48_000;
    let seq = Math.floor(Math.random() * 65_536);
    let ts = Math.floor(Math.random() * 2 ** 31);
    let sent = 0;
    const start = performance.now();
    const tick = () => {
      const due = Math.floor(((performance.now() - start) / 1000) * pps);
      while (sent < due) {
        const header = new RtpHeader({ payloadType: 96, sequenceNumber: seq, timestamp: ts, ssrc: 1234, marker: true });
        const packet = new RtpPacket(header, payload);
        t.sender.sendRtp(packet).catch(() => {});
        sent++;
        if (options.duplicateEvery && sent % options.duplicateEvery === 0) t.sender.sendRtp(packet).catch(() => {});
        seq = (seq + 1) & 0xffff;
        ts = (ts + Math.round(clockRate / pps)) >>> 0;
      }
    };
    const timer = setInterval(tick, 5);
    return {
      get sent() {
        return sent;
      },
      stop: () => clearInterval(timer),
    };
  }

  /** Sends a PLI for a subscribed track to the SFU. */
  async sendPli(trackId: string): Promise<void> {
    const rec = this.tracks.get(trackId);
    const t = this.pc.getTransceivers().find((x) => x.mid === rec?.mid);
    if (!rec || !t || rec.ssrc === undefined) throw new Error(`WeriftTestClient: no receiving track ${trackId}`);
    await t.receiver.sendRtcpPLI(rec.ssrc);
  }

  /** Resets every track's `maxGapSinceResetMs`. */
  resetGaps(): void {
    for (const t of this.tracks.values()) t.maxGapSinceResetMs = 0;
  }

  /** Sends `leave`, waits for `left`. */
  async leave(): Promise<void> {
    this.send({ type: "leave" });
    await this.waitFor(() => this.messages.some((m) => m.type === "left"), "left");
  }

  /** Closes the socket and the peer connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      const closed = once(this.ws, "close");
      this.ws.close();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    }
    await this.pc.close();
  }
}

/** A video publisher and its receive-only subscribers in one room; see {@link joinVideoRoom}. */
export interface VideoRoom {
  pub: WeriftTestClient;
  subs: WeriftTestClient[];
}

/**
 * Joins a video-only publisher named `pub` to `room` at `url` and waits until
 * its video can be sent, then joins `subscribers` receive-only clients named
 * `sub0`, `sub1`, ... one after the other. On a failure every client joined
 * so far is closed before the error is thrown.
 */
export async function joinVideoRoom(url: string, room: string, subscribers: number): Promise<VideoRoom> {
  const joined: WeriftTestClient[] = [];
  try {
    const pub = await WeriftTestClient.join({ url, room, name: "pub", publish: { audio: false, video: true } });
    joined.push(pub);
    await pub.waitPublishReady("video");
    const subs: WeriftTestClient[] = [];
    for (let i = 0; i < subscribers; i++) {
      const sub = await WeriftTestClient.join({
        url,
        room,
        name: `sub${i}`,
        publish: { audio: false, video: false },
      });
      joined.push(sub);
      subs.push(sub);
    }
    return { pub, subs };
  } catch (err) {
    for (const c of joined) await c.close();
    throw err;
  }
}
