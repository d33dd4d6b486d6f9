/**
 * The one clock for ETA, countdown, retries, expiry and time limits. The app and its workers
 * read time and set timers through it, so a test can swap in a {@link ManualClock} and move time
 * forward instead of sleeping.
 */

/** A timer set on a {@link Clock}; pass it back to `clearTimeout`. */
export type ClockTimer = { readonly __clockTimer: true } | NodeJS.Timeout;

/** Wall time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `callback` once `ms` milliseconds have passed on this clock. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock. Its timers do not keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.min(Math.max(0, ms), 2 ** 31 - 1)),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

interface ManualTimer {
  readonly __clockTimer: true;
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
}

/**
 * A clock that moves only when told (`advance`), for tests: a countdown of an hour passes in one
 * call, and timers run in the order they fall due, each at its own time.
 */
export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Set<ManualTimer>();

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    const timer: ManualTimer = { __clockTimer: true, at: this.#now + Math.max(0, ms), order: this.#order++, callback };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(timer: ClockTimer): void {
    this.#timers.delete(timer as ManualTimer);
  }

  /** Moves time forward by `ms`, running every timer due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let next = this.#earliest(end); next; next = this.#earliest(end)) {
      this.#timers.delete(next);
      this.#now = next.at;
      next.callback();
    }
    this.#now = end;
  }

  #earliest(end: number): ManualTimer | undefined {
    let earliest: ManualTimer | undefined;
    for (const timer of this.#timers) {
      if (timer.at > end) continue;
      if (!earliest || timer.at < earliest.at || (timer.at === earliest.at && timer.order < earliest.order)) earliest = timer;
    }
    return earliest;
  }
}
