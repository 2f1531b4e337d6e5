/**
 * Duplicate detection for RTP sequence numbers, per SSRC. NACK
 * retransmissions (without RTX) arrive as exact duplicates of packets that
 * may already have been forwarded; a packet is forwarded only the first time
 * its (SSRC, sequence number) is seen within the last {@link WINDOW} packets.
 */

/** How many recent sequence numbers are remembered per SSRC. */
export const WINDOW = 1024;
/** A backwards jump larger than this is taken as a stream restart, not a late packet. */
const RESTART_DISTANCE = 3000;

/** Verdict on one packet. */
export type SequenceVerdict = "new" | "duplicate" | "too-old";

interface StreamWindow {
  /** Highest extended sequence number seen. */
  max: number;
  seen: Uint8Array;
}

/** Sliding-window duplicate filter keyed by SSRC. Not thread-safe (nothing in JS is). */
export class SequenceWindow {
  readonly #streams = new Map<number, StreamWindow>();

  /** Classifies (ssrc, seq) and records it when new. */
  check(ssrc: number, seq: number): SequenceVerdict {
    const s = this.#streams.get(ssrc);
    if (!s) {
      const seen = new Uint8Array(WINDOW);
      seen[seq % WINDOW] = 1;
      this.#streams.set(ssrc, { max: seq, seen });
      return "new";
    }
    const delta = ((((seq - (s.max & 0xffff)) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    if (delta > 0) {
      if (delta >= WINDOW) s.seen.fill(0);
      else for (let i = 1; i <= delta; i++) s.seen[(s.max + i) % WINDOW] = 0;
      s.max += delta;
      s.seen[s.max % WINDOW] = 1;
      return "new";
    }
    if (-delta >= WINDOW) {
      if (-delta > RESTART_DISTANCE) {
        s.seen.fill(0);
        s.max = seq + 0x10000 * Math.floor(s.max / 0x10000);
        s.seen[s.max % WINDOW] = 1;
        return "new";
      }
      return "too-old";
    }
    const ext = s.max + delta;
    const slot = ((ext % WINDOW) + WINDOW) % WINDOW;
    if (s.seen[slot] === 1) return "duplicate";
    s.seen[slot] = 1;
    return "new";
  }

  /** Forgets an SSRC. */
  forget(ssrc: number): void {
    this.#streams.delete(ssrc);
  }
}
