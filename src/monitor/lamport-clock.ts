/** A Lamport clock, as Celery's events and control messages carry one (`clock`). */
export class LamportClock {
  #value = 0;

  /** The current value. */
  get value(): number {
    return this.#value;
  }

  /** Moves on for something this process sends; returns the new value. */
  forward(): number {
    return ++this.#value;
  }

  /** Takes in a value heard from elsewhere: the clock moves past it. */
  adjust(heard: unknown): number {
    if (typeof heard === 'number' && Number.isFinite(heard)) this.#value = Math.max(this.#value, Math.floor(heard));
    return ++this.#value;
  }
}
