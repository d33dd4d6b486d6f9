/** How long a task waits before its next attempt. */
import type { ErrorMatcher, TaskOptions } from '../task.js';

/** Celery's default pause between retries when no backoff applies, in seconds. */
export const DEFAULT_RETRY_DELAY = 180;
/** Celery's default cap on backoff, in seconds. */
export const DEFAULT_BACKOFF_MAX = 600;

/**
 * Exponential backoff: `min(max, factor × 2^retries)`, and with jitter a whole number of
 * seconds drawn uniformly from `[0, countdown]` (full jitter, as Celery does).
 */
export function backoffCountdown(retries: number, factor: number, max: number, jitter: boolean, random: () => number = Math.random): number {
  const countdown = Math.min(max, factor * 2 ** retries);
  return jitter ? Math.floor(random() * (Math.floor(countdown) + 1)) : countdown;
}

/** The countdown for the next retry of a task that has been retried `retries` times. */
export function retryCountdown(options: TaskOptions, retries: number, random?: () => number): number {
  const backoff = options.retryBackoff;
  if (backoff === undefined || backoff === false) return options.defaultRetryDelay ?? DEFAULT_RETRY_DELAY;
  const factor = backoff === true ? 1 : backoff;
  return backoffCountdown(retries, factor, options.retryBackoffMax ?? DEFAULT_BACKOFF_MAX, options.retryJitter ?? true, random);
}

/** True when `error` is one the task retries automatically. */
export function matchesAutoretry(matcher: ErrorMatcher | undefined, error: unknown): boolean {
  if (!matcher) return false;
  if (typeof matcher === 'function') return matcher(error);
  return matcher.some((errorClass) => error instanceof (errorClass as abstract new (...args: never[]) => unknown));
}

/** True when a task that has been retried `retries` times may retry again. */
export function mayRetry(maxRetries: number | null | undefined, retries: number): boolean {
  const limit = maxRetries === undefined ? 3 : maxRetries;
  return limit === null || retries < limit;
}
