/**
 * ETA tasks parked in Redis until they are due, instead of in a worker's memory.
 *
 * kombu's Redis layout has no delayed delivery: a Celery worker takes an ETA task at once and
 * holds it until its time. A celeriac worker does the same for a task due within a second, and
 * postpones one due later: a script moves it, in one step, from `unacked` into the sorted set
 * `celeriac.delayed.<list key>`, scored by its ETA in ms. Every celeriac consumer of the queue
 * moves what is due back to the head of the list (a timer at the earliest ETA it knows of, and a
 * look every {@link LOOK_EVERY_MS} for what others parked), where any worker, Python's included,
 * takes it as a fresh message. Producers are not involved: an ETA task published by anyone
 * lands in the queue as kombu expects.
 */
import type { ScriptedClient } from './scripts.js';

/** The sorted set where a list's postponed messages wait. */
export const delayedKeyOf = (listKey: string): string => `celeriac.delayed.${listKey}`;

/** How often a consumer looks for parked messages come due that it did not park itself. */
const LOOK_EVERY_MS = 1_000;
/** At most this many due messages move per script call. */
const MOVE_BATCH = 1_000;

/** Moves the due messages of the lists a broker's consumers serve back into them, on time. */
export class DelayedMessages {
  /** The list keys watched, each with how many consumers watch it. */
  readonly #watched = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires (ms since the epoch). */
  #timerAt = Infinity;
  #moving: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly client: () => ScriptedClient,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** A consumer starts on these lists: their parked messages come back when due. */
  watch(listKeys: readonly string[]): void {
    for (const key of listKeys) this.#watched.set(key, (this.#watched.get(key) ?? 0) + 1);
    this.#wakeAt(Date.now());
  }

  /** A consumer stopped; lists no consumer watches are left to others. */
  unwatch(listKeys: readonly string[]): void {
    for (const key of listKeys) {
      const count = (this.#watched.get(key) ?? 0) - 1;
      if (count > 0) this.#watched.set(key, count);
      else this.#watched.delete(key);
    }
    if (this.#watched.size === 0) this.#stop();
  }

  /** A message was parked for `at`: move it then, whoever looks first. */
  parked(at: number): void {
    this.#wakeAt(at);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stop();
    await this.#moving;
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #wakeAt(at: number): void {
    if (this.#closed || this.#watched.size === 0 || at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#moving ??= this.#moveDue()
      .then(
        (next) => this.#wakeAt(Math.min(next, Date.now() + LOOK_EVERY_MS)),
        (error: unknown) => {
          this.onError(error);
          this.#wakeAt(Date.now() + LOOK_EVERY_MS);
        },
      )
      .finally(() => (this.#moving = undefined));
  }

  /** Moves what is due on every watched list, in one call per batch; resolves with the earliest ETA still parked. */
  async #moveDue(): Promise<number> {
    const keys = [...this.#watched.keys()].flatMap((listKey) => [delayedKeyOf(listKey), listKey]);
    for (;;) {
      const earliest = await this.client().celeriacMoveDue(keys.length, ...keys, Date.now(), MOVE_BATCH);
      if (earliest === null) return Infinity;
      if (Number(earliest) > Date.now()) return Number(earliest);
    }
  }
}
