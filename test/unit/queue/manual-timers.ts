/**
 * A manual clock for unit tests of the queue module: timers fire only when
 * the test advances time, in due order.
 */
import type { TimerHandle, Timers } from "../../../agent/shared/timers.ts";

interface Entry {
  id: number;
  at: number;
  fn: () => void;
}

/** {@link Timers} driven by {@link ManualTimers.advance}. */
export class ManualTimers implements Timers {
  #now: number;
  #seq = 0;
  #entries: Entry[] = [];

  constructor(start = Date.parse("2026-11-26T21:00:00Z")) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const entry = { id: ++this.#seq, at: this.#now + Math.max(0, ms), fn };
    this.#entries.push(entry);
    return entry.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#entries = this.#entries.filter((e) => e.id !== handle);
  }

  /** Pending timers. */
  get pending(): number {
    return this.#entries.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      this.#entries.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.#entries[0];
      if (!next || next.at > end) break;
      this.#entries.shift();
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }
}
