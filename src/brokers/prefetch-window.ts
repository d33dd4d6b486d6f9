/**
 * The deliveries a consumer holds against its prefetch. A delivery whose task has run
 * ({@link Delivery.ran}) stops counting while its outcome is recorded (result stored, then the
 * ack), so the next messages arrive meanwhile; at most a prefetch of those are left out, so a
 * slow result store still holds the consumer back.
 */
import type { Delivery } from './broker.js';

export class PrefetchWindow<D extends Delivery> {
  /** Every delivery handed out and not yet settled. */
  readonly outstanding = new Set<D>();
  readonly #recording = new Set<D>();

  constructor(public prefetch: number) {}

  /** Slots free now: the prefetch less what counts against it (negative when over). */
  get free(): number {
    return this.prefetch - this.#counted(this.outstanding.size, this.#recording.size);
  }

  /** Slots free once `settling` (all outstanding) are settled. */
  freeAfter(settling: readonly D[]): number {
    let recording = this.#recording.size;
    for (const delivery of settling) if (this.#recording.has(delivery)) recording--;
    return this.prefetch - this.#counted(this.outstanding.size - settling.length, recording);
  }

  add(delivery: D): void {
    this.outstanding.add(delivery);
  }

  /** `delivery`'s task ran; true when that freed a slot. */
  ran(delivery: D): boolean {
    if (!this.outstanding.has(delivery) || this.#recording.has(delivery)) return false;
    this.#recording.add(delivery);
    return this.#recording.size <= this.prefetch;
  }

  settled(delivery: D): void {
    this.outstanding.delete(delivery);
    this.#recording.delete(delivery);
  }

  #counted(outstanding: number, recording: number): number {
    return outstanding - Math.min(recording, this.prefetch);
  }
}
