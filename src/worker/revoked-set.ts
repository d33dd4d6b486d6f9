/** The ids a worker has been told to revoke: bounded in size and in age, like Celery's. */
export class RevokedSet {
  readonly #expiries = new Map<string, number>();

  constructor(
    private readonly maxSize: number,
    private readonly ttlSeconds: number,
  ) {}

  add(id: string, now = Date.now()): void {
    this.#expiries.delete(id);
    this.#expiries.set(id, now + this.ttlSeconds * 1000);
    // Maps iterate in insertion order, so the first entries are the oldest.
    for (const oldest of this.#expiries.keys()) {
      if (this.#expiries.size <= this.maxSize) break;
      this.#expiries.delete(oldest);
    }
  }

  has(id: string, now = Date.now()): boolean {
    if (this.#expiries.size === 0) return false;
    const expiry = this.#expiries.get(id);
    if (expiry === undefined) return false;
    if (expiry > now) return true;
    this.#expiries.delete(id);
    return false;
  }

  /** The ids still revoked. */
  ids(now = Date.now()): string[] {
    return [...this.#expiries].filter(([, expiry]) => expiry > now).map(([id]) => id);
  }
}
