/**
 * `celeriac/testing` and eager mode, as a user's own tests use them: a worker in the test's
 * process on a fresh in-memory broker, waited on until idle; and an eager app whose calls run at
 * once, with results, retries, errors and time limits as on a worker.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Celeriac, TaskFailedError } from 'celeriac';
import { startTestWorker } from 'celeriac/testing';

function defineTasks(app: Celeriac) {
  const done: number[] = [];
  const record = app.task('t.record', (_ctx, n: number) => void done.push(n));
  const fanOut = app.task('t.fan-out', (_ctx, n: number) => {
    for (let i = 0; i < n; i++) record.delay(i);
  });
  const add = app.task('t.add', (_ctx, a: number, b: number) => a + b);
  let attempts = 0;
  const flaky = app.task('t.flaky', (ctx) => {
    attempts++;
    if (ctx.retries < 2) ctx.retry({ countdown: 60 });
    return `after ${ctx.retries} retries`;
  });
  const fail = app.task('t.fail', () => {
    throw new TypeError('no');
  });
  const slow = app.task('t.slow', async (ctx) => sleep(5_000, 'late', { signal: ctx.signal }), { timeLimit: 0.05 });
  return { done, record, fanOut, add, flaky, fail, slow, attempts: () => attempts };
}

describe('celeriac/testing', () => {
  it('runs tasks on an in-memory worker and waits until everything they started has run', async () => {
    const app = new Celeriac({ broker: 'redis://127.0.0.1:1/0' }); // never used: the helper swaps in memory
    const tasks = defineTasks(app);
    let stopped = false;
    {
      await using worker = await startTestWorker(app);
      worker.worker.once('worker-offline', () => (stopped = true));
      expect(app.brokerUrl).toMatch(/^memory:\/\//);
      expect(await tasks.add.delay(2, 3)).toBe(5);
      tasks.fanOut.delay(50);
      await worker.untilIdle();
      expect(tasks.done.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    }
    expect(stopped).toBe(true); // `await using` stopped it
  });
});

describe('eager mode', () => {
  it('runs calls at once in this process: results, retries without their countdown, errors, time limits', async () => {
    const app = new Celeriac({ broker: 'redis://127.0.0.1:1/0' });
    app.configure({ eager: true });
    const tasks = defineTasks(app);
    try {
      const started = Date.now();
      expect(await tasks.add.applyAsync([1, 2], { countdown: 60 })).toBe(3);
      expect(await tasks.flaky.delay()).toBe('after 2 retries');
      expect(tasks.attempts()).toBe(3);
      expect(Date.now() - started).toBeLessThan(5_000);
      await expect(tasks.fail.delay()).rejects.toThrow(TaskFailedError);
      await expect(tasks.fail.delay()).rejects.toThrow(/TypeError: no/);
      await expect(tasks.slow.delay()).rejects.toThrow(/TimeLimitExceeded/);
      expect(app.eager).toBe(true);
    } finally {
      await app.close();
    }
  });
});
