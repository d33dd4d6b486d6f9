// The tasks of bench/pools.ts, run by `celeriac worker -A bench/pool-tasks.js -P event|threads|processes`
// (plain JavaScript: no TypeScript loader in the worker or its slots being measured). The same
// names, and the same counting, as bench/python/pool_tasks.py, so either worker serves the same
// messages.
import { Celeriac } from 'celeriac';

export const app = new Celeriac({ defaultQueue: process.env.BENCH_QUEUE });

app.task('bench.noop', () => null);

/**
 * Counts the primes below `below` by trial division (the CPU-bound task), the same loop as the
 * Python task's. Returns [count, milliseconds the counting took], so the benchmark checks the
 * answer and reports how long one task takes in each language.
 */
app.task('bench.primes', (_ctx, below) => {
  const started = performance.now();
  let count = 0;
  for (let n = 2; n < below; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return [count, performance.now() - started];
});

export default app;
