/**
 * The one clock: with a ManualClock an app's countdown, ETA, expiry, retry countdown and time
 * limits all move with `advance()`, so none of these tests waits for real time to pass.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, createLogger, ManualClock, TaskRevokedError, type Worker } from '../../src/index.js';
import { nextEvent } from '../helpers/wait.js';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(): Promise<{ app: Celeriac; clock: ManualClock; worker: Worker; ran: string[]; signalled: string[] }> {
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url, clock });
  const ran: string[] = [];
  app.task('clock.record', (_ctx, label: string) => {
    ran.push(label);
    return label;
  });
  app.task('clock.flaky', (ctx) => {
    if (ctx.retries === 0) ctx.retry({ countdown: 600 });
    return `retried ${ctx.retries}`;
  });
  const signalled: string[] = [];
  // Never ends by itself; notes why its signal fired.
  app.task('clock.stuck', (ctx) => new Promise(() => ctx.signal.addEventListener('abort', () => signalled.push((ctx.signal.reason as Error).name))), {
    softTimeLimit: 30,
    timeLimit: 60,
  });
  const worker = app.worker({ logger: createLogger('critical') });
  await worker.start();
  closers.push(() => app.close(), () => worker.stop(1));
  return { app, clock, worker, ran, signalled };
}

/** Lets the worker and broker act on what the clock just released. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('a ManualClock', () => {
  it('holds a countdown of an hour until the clock passes it', async () => {
    const { app, clock, ran } = await setup();
    const later = app.sendTask('clock.record', ['later'], {}, { countdown: 3600 });
    await later.sent;
    clock.advance(3_599_000);
    await settle();
    expect(ran).toEqual([]);
    clock.advance(1_000);
    expect(await later.get({ timeout: 5 })).toBe('later');
  });

  it('expires a task whose expiry the clock passed before it ran', async () => {
    const { app, clock, ran } = await setup();
    const expiring = app.sendTask('clock.record', ['never'], {}, { countdown: 120, expires: 60 });
    await expiring.sent;
    clock.advance(120_000);
    await expect(expiring.get({ timeout: 5 })).rejects.toBeInstanceOf(TaskRevokedError);
    expect(ran).toEqual([]);
  });

  it("runs a retry once its countdown has passed on the clock", async () => {
    const { app, clock, worker } = await setup();
    const flaky = app.sendTask('clock.flaky');
    await nextEvent(worker, 'task-retried');
    clock.advance(600_000);
    expect(await flaky.get({ timeout: 5 })).toBe('retried 1');
  });

  it('fires the soft limit, then fails the task at the hard limit, as the clock passes them', async () => {
    const { app, clock, worker, signalled } = await setup();
    const stuck = app.sendTask('clock.stuck');
    await nextEvent(worker, 'task-started');
    clock.advance(30_000);
    expect(signalled).toEqual(['SoftTimeLimitExceeded']);
    expect(await stuck.state()).toBe('PENDING');
    clock.advance(30_000);
    await expect(stuck.get({ timeout: 5 })).rejects.toThrow(/TimeLimitExceeded/);
  });
});
