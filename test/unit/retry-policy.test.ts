import { describe, expect, it } from 'vitest';
import { backoffCountdown, matchesAutoretry, mayRetry, retryCountdown } from '../../src/worker/retry-policy.js';

describe('retry policy', () => {
  it('doubles the countdown per retry up to the cap, without jitter', () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffCountdown(n, 1, 600, false))).toEqual([1, 2, 4, 8, 16]);
    expect(backoffCountdown(20, 1, 600, false)).toBe(600);
    expect(backoffCountdown(3, 5, 600, false)).toBe(40);
  });

  it('draws full jitter from [0, countdown]', () => {
    expect(backoffCountdown(3, 1, 600, true, () => 0)).toBe(0);
    expect(backoffCountdown(3, 1, 600, true, () => 0.999999)).toBe(8);
    expect(backoffCountdown(3, 1, 600, true, () => 0.5)).toBe(4);
  });

  it('uses the default delay without backoff, and the factor with it', () => {
    expect(retryCountdown({}, 2)).toBe(180);
    expect(retryCountdown({ defaultRetryDelay: 7 }, 2)).toBe(7);
    expect(retryCountdown({ retryBackoff: true, retryJitter: false }, 2)).toBe(4);
    expect(retryCountdown({ retryBackoff: 3, retryJitter: false, retryBackoffMax: 10 }, 2)).toBe(10);
  });

  it('allows 3 retries by default, any number with null', () => {
    expect(mayRetry(undefined, 2)).toBe(true);
    expect(mayRetry(undefined, 3)).toBe(false);
    expect(mayRetry(0, 0)).toBe(false);
    expect(mayRetry(null, 10_000)).toBe(true);
  });

  it('matches autoretry errors by class or predicate', () => {
    class Flaky extends Error {}
    expect(matchesAutoretry([Flaky], new Flaky())).toBe(true);
    expect(matchesAutoretry([Flaky], new Error())).toBe(false);
    expect(matchesAutoretry((e) => e instanceof TypeError, new TypeError())).toBe(true);
    expect(matchesAutoretry(undefined, new Flaky())).toBe(false);
  });
});
