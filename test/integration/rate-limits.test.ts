/**
 * Rate limits on a real worker (in this process, memory broker, real time): the measured rate,
 * other tasks passing the held ones, a rate changed while tasks wait, limits per key.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, gather } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';

const silent = createLogger('critical', () => undefined);
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function memoryApp(): Celeriac {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url });
  cleanups.push(() => app.close());
  return app;
}

/** Tasks per second between the first and the last of `times`. */
function rateOf(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return ((sorted.length - 1) / (sorted.at(-1)! - sorted[0]!)) * 1000;
}

describe('rate limits on a worker', () => {
  it('runs a limited task at its rate, while an unlimited one sent after the backlog runs at once', async () => {
    const app = memoryApp();
    const ranAt: number[] = [];
    const limited = app.task('rl.limited', () => ranAt.push(Date.now()), { rateLimit: '20/s' });
    const free = app.task('rl.free', () => Date.now());
    const worker = app.worker({ logger: silent, concurrency: 2, prefetch: 4 });
    cleanups.push(() => worker.stop());
    await worker.start();
    const backlog = Array.from({ length: 30 }, () => limited.delay());
    await Promise.all(backlog.map((result) => result.sent));
    const sentAt = Date.now();
    const freeRanAt = await free.delay().get({ timeout: 5 });
    expect(freeRanAt - sentAt).toBeLessThan(500); // not behind the 1.5 s backlog: held tasks raise the prefetch
    await gather(backlog, { timeout: 10 });
    const measured = rateOf(ranAt);
    expect(measured).toBeGreaterThan(18);
    expect(measured).toBeLessThan(22);
  });

  it('applies a rate changed at run time through app.control.rateLimit', async () => {
    const app = memoryApp();
    const ranAt: number[] = [];
    const limited = app.task('rl.changed', () => ranAt.push(Date.now()), { rateLimit: '1/s' });
    const worker = app.worker({ logger: silent });
    cleanups.push(() => worker.stop());
    await worker.start();
    const results = Array.from({ length: 10 }, () => limited.delay());
    await results[0]!.get({ timeout: 5 });
    const changedAt = Date.now();
    await app.control.rateLimit('rl.changed', '50/s');
    await gather(results, { timeout: 5 });
    expect(Date.now() - changedAt).toBeLessThan(1_500); // at 1/s the other nine would take 9 s
    await app.control.rateLimit('rl.changed', null);
    const burst = Array.from({ length: 20 }, () => limited.delay());
    const burstAt = Date.now();
    await gather(burst, { timeout: 5 });
    expect(Date.now() - burstAt).toBeLessThan(1_000); // lifted: 20 at once, not 20 at 50/s
  });

  it('limits each key on its own with rateLimitKey', async () => {
    const app = memoryApp();
    const ranAt = new Map<string, number[]>();
    const perKey = app.task('rl.keyed', (_ctx, customer: string) => void ranAt.set(customer, [...(ranAt.get(customer) ?? []), Date.now()]), {
      rateLimit: '10/s',
      rateLimitKey: (customer) => customer,
    });
    const worker = app.worker({ logger: silent, concurrency: 20 });
    cleanups.push(() => worker.stop());
    await worker.start();
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const started = Date.now();
    await gather(keys.flatMap((key) => Array.from({ length: 11 }, () => perKey.delay(key))), { timeout: 10 });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThan(900); // 11 per key at 10/s: at least 1 s
    expect(elapsed).toBeLessThan(2_500); // the keys ran side by side, not 55 at 10/s
    for (const key of keys) expect(rateOf(ranAt.get(key)!)).toBeLessThan(11);
  });

  it("refuses a global limit on a broker that cannot keep it", async () => {
    const app = memoryApp();
    app.task('rl.global', () => 1, { rateLimit: '5/s', rateLimitScope: 'global' });
    await expect(app.worker({ logger: silent }).start()).rejects.toThrow(/rl\.global has a global rate limit, which the broker memory:\/\/.* cannot keep/);
  });
});
