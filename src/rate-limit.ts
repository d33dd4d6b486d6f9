/**
 * Rate limits as Celery writes them (`'10/s'`, `'100/m'`, `'1000/h'`, or a bare number per
 * second), and the token bucket that applies one: capacity 1, filled at the rate, so tasks are
 * spaced evenly with no bursts, as Celery's worker spaces them.
 */
import type { Clock } from './clock.js';
import { ConfigurationError } from './errors.js';

/** A rate limit: `'10/s'`, `'100/m'`, `'1000/h'`, or a number of tasks per second. */
export type RateLimit = `${number}/${'s' | 'm' | 'h'}` | number;

const PER_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/**
 * Tasks per second for a rate limit; null for no limit (`0`, `'0/s'`, null, as in Celery).
 *
 * @throws {@link ConfigurationError} naming `field` and the forms it takes.
 */
export function parseRate(value: RateLimit | string | null | undefined, field = 'rateLimit'): number | null {
  if (value === null || value === undefined) return null;
  const match = typeof value === 'number' ? null : /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?\s*$/.exec(value);
  const count = typeof value === 'number' ? value : match ? Number(match[1]) : NaN;
  if (!Number.isFinite(count) || count < 0) {
    throw new ConfigurationError(`${field} ${JSON.stringify(value)} is not a rate; write it as '10/s', '100/m', '1000/h' or a number per second`);
  }
  if (count === 0) return null;
  return count / PER_SECONDS[(match?.[2] ?? 's') as keyof typeof PER_SECONDS];
}

/** A token bucket of capacity 1 filled at `perSecond`, read from `clock`. */
export class TokenBucket {
  #tokens = 1;
  #filledAt: number;

  constructor(
    private perSecond: number,
    private readonly clock: Clock,
  ) {
    this.#filledAt = clock.now();
  }

  /** Changes the rate from now on. */
  setRate(perSecond: number): void {
    this.#fill();
    this.perSecond = perSecond;
  }

  /** True when it holds a whole token again: it has been idle for a full interval. */
  get full(): boolean {
    this.#fill();
    return this.#tokens >= 1;
  }

  /** Takes a token if there is one: returns 0; otherwise the ms until there will be one. */
  take(): number {
    this.#fill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.#tokens) / this.perSecond) * 1000));
  }

  #fill(): void {
    const now = this.clock.now();
    this.#tokens = Math.min(1, this.#tokens + ((now - this.#filledAt) / 1000) * this.perSecond);
    this.#filledAt = now;
  }
}
