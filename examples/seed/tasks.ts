/**
 * The seed workloads: a prime filter, a square mapper, and a page-title fetcher. Each yields to
 * the event loop as it goes, so one worker runs many of them at once.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Celeriac } from 'celeriac';

export const app = new Celeriac({
  broker: process.env['CELERIAC_BROKER_URL'] ?? 'sqlite://.celeriac/demo.db',
});

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** The primes in [from, to]. */
export const filterPrimes = app.task('seed.filter_primes', async (ctx, from: number, to: number) => {
  const primes: number[] = [];
  for (let n = from; n <= to; n++) {
    if (isPrime(n)) primes.push(n);
    ctx.progress(n - from + 1, to - from + 1);
    await yieldToLoop();
  }
  return primes;
});

/** The squares of [from, to]. */
export const mapSquares = app.task('seed.map_squares', async (ctx, from: number, to: number) => {
  const squares: number[] = [];
  for (let n = from; n <= to; n++) {
    squares.push(n * n);
    ctx.progress(n - from + 1, to - from + 1);
    await yieldToLoop();
  }
  return squares;
});

/**
 * How many primes lie in [from, to). Pure CPU that never yields: on the event loop it holds up
 * every other task, so a worker runs it in its process pool (`-P processes`) instead.
 */
export const countPrimes = app.task('seed.count_primes', (_ctx, from: number, to: number) => {
  let count = 0;
  for (let n = from; n < to; n++) if (isPrime(n)) count++;
  return count;
});

/** The `<title>` of a page, fetched with the task's signal (so revoke and time limits stop it). */
export const fetchTitle = app.task(
  'seed.fetch_title',
  async (ctx, url: string) => {
    const response = await fetch(url, { signal: ctx.signal });
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    const html = await response.text();
    const match = /<title[^>]*>([^<]*)<\/title>/i.exec(html);
    return { url, title: match?.[1]?.trim() ?? '(no title)' };
  },
  { timeLimit: 30, softTimeLimit: 20, autoretryFor: [TypeError], retryBackoff: true, maxRetries: 2 },
);

export default app;
