/**
 * A media client with a realistic reconnect policy, built on
 * test/helpers/werift-client.ts: when its signalling socket closes (the SFU
 * went away) it drops the dead session and joins again at the address the
 * "Service" currently resolves to, at once and then every `retryMs` until it
 * succeeds (LiveKit's and mediasoup-demo's clients retry immediately, then
 * on a short fixed or growing delay). A publisher re-publishes its synthetic
 * video after every re-join; a subscriber takes whatever the SFU offers.
 *
 * Each successful join is one *incarnation*; {@link ReconnectingClient.gapInWindow}
 * measures the longest interval without a received video packet over a
 * time window, across incarnations (the last packet of the old session to
 * the first packet of the new one counts as a gap).
 */
import { performance } from "node:perf_hooks";
import { type Publishing, WeriftTestClient } from "../../test/helpers/werift-client.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Options of {@link ReconnectingClient}. */
export interface ReconnectingClientOptions {
  /**
   * Signalling URL to (re)join, asked on every attempt (the Service address);
   * null when the Service has no ready endpoint (the attempt fails, as a
   * refused connection would).
   */
  url: () => string | null;
  room: string;
  name: string;
  role: "publisher" | "subscriber";
  /** Delay between failed attempts after the first, immediate one (default 250 ms). */
  retryMs?: number;
  /** Publisher only: synthetic video packets per second (default 150). */
  packetsPerSecond?: number;
  /** Timeout of each join/negotiation wait (default 10 s). */
  timeoutMs?: number;
}

/** One joined session of a {@link ReconnectingClient}. */
export interface Incarnation {
  client: WeriftTestClient;
  /** performance.now() once `joined` arrived. */
  joinedAt: number;
  /** performance.now() when its signalling socket closed without us closing it, else null. */
  droppedAt: number | null;
}

/** A publisher or subscriber that re-joins when the SFU drops it. Create, then {@link start}. */
export class ReconnectingClient {
  readonly name: string;
  /** Every session, oldest first. */
  readonly incarnations: Incarnation[] = [];
  /** Sessions lost because the signalling socket closed under us. */
  drops = 0;
  /** Join attempts that failed (e.g. nothing listening yet). */
  failedAttempts = 0;
  readonly #o: Required<ReconnectingClientOptions>;
  #publishing: Publishing | null = null;
  #stopped = false;
  #reconnecting: Promise<void> | null = null;

  constructor(options: ReconnectingClientOptions) {
    this.#o = { retryMs: 250, packetsPerSecond: 150, timeoutMs: 10_000, ...options };
    if (!(this.#o.retryMs > 0)) throw new RangeError("ReconnectingClient: retryMs must be > 0");
    this.name = options.name;
  }

  /** The live session, or null while reconnecting. */
  get current(): Incarnation | null {
    const last = this.incarnations.at(-1);
    return last && last.droppedAt === null ? last : null;
  }

  /** Joins for the first time (throws if that fails: the benchmark cannot start). */
  async start(): Promise<void> {
    await this.#join();
  }

  /** Resolves once a session joined after `since` exists (and, for a publisher, is publishing). */
  async waitRejoined(since: number, timeoutMs: number): Promise<Incarnation> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const cur = this.current;
      if (cur && cur.joinedAt > since && (this.#o.role === "subscriber" || this.#publishing)) return cur;
      if (performance.now() > deadline) throw new Error(`${this.name}: not re-joined within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  /** Resolves once a video packet arrived after `since` (in any session). */
  async waitVideoAfter(since: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.incarnations.some((inc) => (videoStats(inc.client).lastAt ?? -1) > since)) {
      if (performance.now() > deadline) throw new Error(`${this.name}: no video packet within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  /** Starts a gap measurement window on the live session (resets its per-track gap counters). */
  markWindow(): number {
    this.current?.client.resetGaps();
    return performance.now();
  }

  /**
   * Longest interval without a received video packet between `from` (a
   * {@link markWindow} result) and `to`: within each session (its gap counter
   * since the mark), between sessions (last packet of one to the first of the
   * next), and from the last packet to `to`.
   */
  gapInWindow(from: number, to: number): number {
    let gap = 0;
    let prevLast = from;
    for (const inc of this.incarnations) {
      const v = videoStats(inc.client);
      if (v.lastAt === null || v.lastAt < from) continue;
      if (v.firstAt !== null) gap = Math.max(gap, Math.max(v.firstAt, from) - prevLast);
      gap = Math.max(gap, v.maxGapSinceReset);
      prevLast = v.lastAt;
    }
    return Math.max(gap, to - prevLast);
  }

  /** Stops reconnecting and publishing, closes the live session. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#publishing?.stop();
    this.#publishing = null;
    await this.#reconnecting?.catch(() => undefined);
    await Promise.all(this.incarnations.map((i) => i.client.close().catch(() => undefined)));
  }

  async #join(): Promise<void> {
    const url = this.#o.url();
    if (url === null) throw new Error(`${this.name}: no ready endpoint`);
    const client = await WeriftTestClient.join({
      url,
      room: this.#o.room,
      name: this.#o.name,
      publish: { audio: false, video: this.#o.role === "publisher" },
      timeoutMs: this.#o.timeoutMs,
    });
    // A reset socket must not crash the process; the close event below does the work.
    client.ws.on("error", () => undefined);
    const inc: Incarnation = { client, joinedAt: performance.now(), droppedAt: null };
    this.incarnations.push(inc);
    client.ws.once("close", () => this.#onClose(inc));
    if (this.#stopped) {
      await client.close();
      return;
    }
    if (this.#o.role !== "publisher") return;
    try {
      await client.waitPublishReady("video");
    } catch (err) {
      // Not negotiated: give this session up (the caller retries with a fresh one).
      inc.droppedAt ??= performance.now();
      await client.close();
      throw err;
    }
    if (this.#stopped || inc.droppedAt !== null) return;
    this.#publishing = client.startPublishing({ kind: "video", packetsPerSecond: this.#o.packetsPerSecond });
  }

  #onClose(inc: Incarnation): void {
    if (this.#stopped || inc.droppedAt !== null) return;
    inc.droppedAt = performance.now();
    this.drops++;
    this.#publishing?.stop();
    this.#publishing = null;
    void inc.client.close().catch(() => undefined);
    this.#reconnecting ??= this.#reconnectLoop().finally(() => {
      this.#reconnecting = null;
    });
  }

  async #reconnectLoop(): Promise<void> {
    for (let attempt = 0; !this.#stopped; attempt++) {
      if (attempt > 0) await sleep(this.#o.retryMs);
      if (this.#stopped) return;
      try {
        await this.#join();
        return;
      } catch {
        this.failedAttempts++;
      }
    }
  }
}

function videoStats(client: WeriftTestClient): {
  firstAt: number | null;
  lastAt: number | null;
  maxGapSinceReset: number;
} {
  let firstAt: number | null = null;
  let lastAt: number | null = null;
  let maxGapSinceReset = 0;
  for (const t of client.tracks.values()) {
    if (t.kind !== "video") continue;
    if (t.firstAt !== null && (firstAt === null || t.firstAt < firstAt)) firstAt = t.firstAt;
    if (t.lastAt !== null && (lastAt === null || t.lastAt > lastAt)) lastAt = t.lastAt;
    maxGapSinceReset = Math.max(maxGapSinceReset, t.maxGapSinceResetMs);
  }
  return { firstAt, lastAt, maxGapSinceReset };
}
