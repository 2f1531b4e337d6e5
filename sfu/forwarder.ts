/**
 * The forwarding core: one {@link TrackForwarder} per published track fans
 * its RTP out to every subscriber's sink, drops NACK-retransmission
 * duplicates, and turns subscribers' keyframe requests (PLI/FIR) into
 * rate-limited requests to the publisher.
 *
 * Deliberately independent of config loading and signalling: it knows only
 * packets, sinks and a keyframe callback, so it can be benchmarked and tested
 * alone and no config apply can reach into a running stream.
 */
import { InvalidOptionsError } from "./errors.ts";
import { SequenceWindow } from "./sequence-window.ts";

/** The parts of an RTP packet the forwarder reads. werift's `RtpPacket` satisfies it. */
export interface ForwardablePacket {
  header: { ssrc: number; sequenceNumber: number };
}

/** Where a subscriber's copy of each packet goes (e.g. a werift sender's `sendRtp`). Must not throw. */
export type RtpSink<P extends ForwardablePacket> = (packet: P) => void;

/** Clock used for rate limiting (ms). */
export interface Clock {
  now(): number;
}

/** Options of {@link TrackForwarder}. */
export interface TrackForwarderOptions {
  /** Asks the publisher for a keyframe (sends a PLI upstream). Must not throw. */
  requestKeyframe: () => void;
  /** Minimum time between two upstream keyframe requests (default 500 ms). */
  keyframeIntervalMs?: number;
  clock?: Clock;
}

/** Counters of one forwarder. */
export interface ForwarderStats {
  /** Packets received from the publisher (including duplicates). */
  received: number;
  /** Packet copies handed to sinks. */
  forwarded: number;
  /** Packets dropped as duplicates (NACK retransmissions of packets already forwarded). */
  duplicates: number;
  /** Packets dropped as too old to classify. */
  tooOld: number;
  /** Keyframe requests received from subscribers. */
  keyframeRequests: number;
  /** Keyframe requests sent to the publisher (after rate limiting). */
  keyframeRequestsSent: number;
}

/** Defaults of {@link TrackForwarderOptions}. */
export const FORWARDER_DEFAULTS = { keyframeIntervalMs: 500 } as const;

/** Fans one published track out to its subscribers. */
export class TrackForwarder<P extends ForwardablePacket = ForwardablePacket> {
  readonly #sinks = new Map<string, RtpSink<P>>();
  #sinkList: RtpSink<P>[] = [];
  readonly #window = new SequenceWindow();
  readonly #requestKeyframe: () => void;
  readonly #interval: number;
  readonly #clock: Clock;
  #lastKeyframeRequest = Number.NEGATIVE_INFINITY;
  #pendingKeyframe: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly stats: ForwarderStats = {
    received: 0,
    forwarded: 0,
    duplicates: 0,
    tooOld: 0,
    keyframeRequests: 0,
    keyframeRequestsSent: 0,
  };

  constructor(options: TrackForwarderOptions) {
    if (typeof options?.requestKeyframe !== "function") {
      throw new InvalidOptionsError("TrackForwarder: requestKeyframe must be a function");
    }
    const interval = options.keyframeIntervalMs ?? FORWARDER_DEFAULTS.keyframeIntervalMs;
    if (!Number.isFinite(interval) || interval < 0) {
      throw new InvalidOptionsError(`TrackForwarder: keyframeIntervalMs must be >= 0, got ${interval}`);
    }
    this.#requestKeyframe = options.requestKeyframe;
    this.#interval = interval;
    this.#clock = options.clock ?? { now: () => performance.now() };
  }

  /** Number of attached sinks. */
  get sinkCount(): number {
    return this.#sinks.size;
  }

  /** Attaches (or replaces) the sink of subscriber `id`. */
  addSink(id: string, sink: RtpSink<P>): void {
    if (this.#closed) return;
    this.#sinks.set(id, sink);
    this.#sinkList = [...this.#sinks.values()];
  }

  /** Detaches the sink of subscriber `id`; returns whether it was attached. */
  removeSink(id: string): boolean {
    const had = this.#sinks.delete(id);
    if (had) this.#sinkList = [...this.#sinks.values()];
    return had;
  }

  /**
   * Forwards one packet from the publisher to every sink, unless it is a
   * duplicate of one already forwarded. Returns whether it was forwarded.
   */
  push(packet: P): boolean {
    if (this.#closed) return false;
    this.stats.received++;
    const verdict = this.#window.check(packet.header.ssrc, packet.header.sequenceNumber);
    if (verdict !== "new") {
      if (verdict === "duplicate") this.stats.duplicates++;
      else this.stats.tooOld++;
      return false;
    }
    const sinks = this.#sinkList;
    for (let i = 0; i < sinks.length; i++) sinks[i]!(packet);
    this.stats.forwarded += sinks.length;
    return true;
  }

  /**
   * A subscriber asked for a keyframe (PLI or FIR). Requests reach the
   * publisher at most once per `keyframeIntervalMs`; a request inside the
   * interval is coalesced into one sent when the interval ends.
   */
  requestKeyframe(): void {
    if (this.#closed) return;
    this.stats.keyframeRequests++;
    const now = this.#clock.now();
    const wait = this.#lastKeyframeRequest + this.#interval - now;
    if (wait <= 0) {
      this.#sendKeyframeRequest(now);
      return;
    }
    if (this.#pendingKeyframe) return;
    this.#pendingKeyframe = setTimeout(() => {
      this.#pendingKeyframe = undefined;
      if (!this.#closed) this.#sendKeyframeRequest(this.#clock.now());
    }, wait);
    this.#pendingKeyframe.unref?.();
  }

  #sendKeyframeRequest(now: number): void {
    this.#lastKeyframeRequest = now;
    this.stats.keyframeRequestsSent++;
    this.#requestKeyframe();
  }

  /** Detaches every sink and stops forwarding. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#sinks.clear();
    this.#sinkList = [];
    if (this.#pendingKeyframe) clearTimeout(this.#pendingKeyframe);
    this.#pendingKeyframe = undefined;
  }
}
