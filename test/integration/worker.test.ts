/**
 * The worker end to end in one process on the memory broker and backend: calling, futures,
 * retries, time limits, expiry, revocation, ETA, progress, bad input and shutdown.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ALL_COMPLETED,
  asCompleted,
  Celeriac,
  createLogger,
  ManualClock,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  gather,
  SoftTimeLimitExceeded,
  TaskFailedError,
  TaskRevokedError,
  TimeoutError,
  wait,
  type Worker,
  type WorkerOptions,
} from '../../src/index.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { startTestRedis } from '../helpers/redis-server.js';
import { nextEvent, until } from '../helpers/wait.js';

const opened: Array<{ app: Celeriac; worker?: Worker }> = [];

function makeApp(clock?: ManualClock): Celeriac {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url, ...(clock ? { clock } : {}) });
  opened.push({ app });
  return app;
}

async function startWorker(app: Celeriac, options: Partial<WorkerOptions> = {}): Promise<Worker> {
  const silent = createLogger('critical');
  const worker = app.worker({ logger: silent, shutdownGrace: 2, ...options });
  opened.push({ app, worker });
  await worker.start();
  return worker;
}

afterEach(async () => {
  for (const { worker } of opened.splice(0).reverse()) await worker?.stop(0.5);
  for (const { app } of opened.splice(0)) await app.close();
});

describe('calling tasks', () => {
  it('runs delay, applyAsync with kwargs, and sendTask, returning typed results', async () => {
    const app = makeApp();
    const add = app.task('t.add', (_ctx, a: number, b: number) => a + b, { params: ['a', 'b'] });
    await startWorker(app);
    expect(await add.delay(2, 3)).toBe(5);
    expect(await add.applyAsync([1] as unknown as [number, number], { kwargs: { b: 10 } })).toBe(11);
    expect(await app.sendTask<number>('t.add', [], { a: 4, b: 4 })).toBe(8);
  });

  it('gives the handler its id, retries, kwargs and request', async () => {
    const app = makeApp();
    const inspect = app.task('t.inspect', (ctx) => ({ id: ctx.id, name: ctx.name, retries: ctx.retries, kwargs: ctx.kwargs, root: ctx.request.rootId }));
    await startWorker(app);
    const result = inspect.applyAsync([], { kwargs: { extra: 1 }, taskId: 'fixed-id' });
    expect(await result).toEqual({ id: 'fixed-id', name: 't.inspect', retries: 0, kwargs: { extra: 1 }, root: 'fixed-id' });
  });

  it('stores a thrown error as FAILURE and rethrows it from get()', async () => {
    const app = makeApp();
    const boom = app.task('t.boom', () => {
      throw new RangeError('out of range');
    });
    await startWorker(app);
    const result = boom.delay();
    const error = await result.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).excType).toBe('ValueError');
    expect((error as TaskFailedError).message).toContain('out of range');
    expect(await result.state()).toBe('FAILURE');
    expect((await result.info())?.traceback).toContain('RangeError: out of range');
  });

  it('reports PENDING for unknown ids and forgets stored results', async () => {
    const app = makeApp();
    const echo = app.task('t.echo', (_ctx, v: string) => v);
    await startWorker(app);
    expect(await app.asyncResult('nobody').state()).toBe('PENDING');
    const result = echo.delay('x');
    await result;
    expect(await result.ready()).toBe(true);
    await result.forget();
    expect(await result.state()).toBe('PENDING');
  });
});

describe('futures', () => {
  it('gathers in order, rejects on the first failure, or returns errors in place', async () => {
    const app = makeApp();
    const slow = app.task('f.slow', async (_ctx, ms: number, value: string) => {
      await sleep(ms);
      if (value === 'fail') throw new Error('failed on purpose');
      return value;
    });
    await startWorker(app);
    const ok = await gather([slow.delay(60, 'a'), slow.delay(1, 'b')] as const);
    expect(ok).toEqual(['a', 'b']);
    await expect(gather([slow.delay(1, 'a'), slow.delay(1, 'fail')])).rejects.toThrow(/failed on purpose/);
    const settled = await gather([slow.delay(1, 'a'), slow.delay(1, 'fail')], { returnExceptions: true });
    expect(settled[0]).toBe('a');
    expect(settled[1]).toBeInstanceOf(TaskFailedError);
  });

  it('waits for the first completed, the first exception, or all', async () => {
    const app = makeApp();
    const slow = app.task('f.wait', async (_ctx, ms: number, fail: boolean) => {
      await sleep(ms);
      if (fail) throw new Error('x');
      return ms;
    });
    await startWorker(app);
    const fast = slow.delay(5, false);
    const late = slow.delay(400, false);
    const first = await wait([fast, late], { returnWhen: FIRST_COMPLETED });
    expect(first.done).toEqual([fast]);
    expect(first.pending).toEqual([late]);

    const failing = slow.delay(30, true);
    const slowOk = slow.delay(500, false);
    const firstError = await wait([slowOk, failing], { returnWhen: FIRST_EXCEPTION });
    expect(firstError.done).toEqual([failing]);

    const all = await wait([fast, late, failing, slowOk], { returnWhen: ALL_COMPLETED });
    expect(all.pending).toEqual([]);

    const never = app.sendTask('f.not-registered-anywhere', [], {}, { queue: 'nobody-consumes-this' });
    const timedOut = await wait([never], { timeout: 0.05 });
    expect(timedOut.pending).toEqual([never]);
  });

  it('yields results as they complete and calls done-callbacks', async () => {
    const app = makeApp();
    const slow = app.task('f.order', async (_ctx, ms: number) => {
      await sleep(ms);
      return ms;
    });
    await startWorker(app);
    const results = [slow.delay(150), slow.delay(10), slow.delay(80)];
    const called: number[] = [];
    const callbackDone = new Promise<void>((resolve) => {
      results[1]!.onDone((r) => {
        void r.then((value) => {
          called.push(value);
          resolve();
        });
      });
    });
    const order: number[] = [];
    for await (const completed of asCompleted(results)) if (completed.ok) order.push(completed.value);
    expect(order).toEqual([10, 80, 150]);
    await callbackDone;
    expect(called).toEqual([10]);
  });

  it('times out and aborts waiting without touching the task', async () => {
    const app = makeApp();
    const result = app.sendTask('f.nobody', [], {}, { queue: 'unconsumed' });
    await expect(result.get({ timeout: 0.05 })).rejects.toBeInstanceOf(TimeoutError);
    const controller = new AbortController();
    const waiting = result.get({ signal: controller.signal });
    controller.abort(new Error('caller gave up'));
    await expect(waiting).rejects.toThrow('caller gave up');
  });
});

describe('retries', () => {
  it('retries from the handler: RETRY is stored, then SUCCESS', async () => {
    const app = makeApp();
    const flaky = app.task('r.flaky', (ctx) => {
      if (ctx.retries < 2) ctx.retry({ countdown: 0.02, error: new Error(`attempt ${ctx.retries}`) });
      return `ok after ${ctx.retries}`;
    });
    const worker = await startWorker(app);
    const states: string[] = [];
    worker.on('task-retried', () => states.push('RETRY'));
    expect(await flaky.delay()).toBe('ok after 2');
    expect(states).toEqual(['RETRY', 'RETRY']);
  });

  it('retries listed errors automatically with backoff, then fails with the original error', async () => {
    class Flaky extends Error {
      override name = 'Flaky';
    }
    const app = makeApp();
    let attempts = 0;
    const auto = app.task(
      'r.auto',
      () => {
        attempts++;
        throw new Flaky(`attempt ${attempts}`);
      },
      { autoretryFor: [Flaky], retryBackoff: 0.01, retryJitter: false, maxRetries: 3 },
    );
    const worker = await startWorker(app);
    const countdowns: number[] = [];
    worker.on('task-retried', ({ countdown }) => countdowns.push(countdown));
    const error = await auto.delay().get().catch((e: unknown) => e);
    expect(attempts).toBe(4);
    expect(countdowns).toEqual([0.01, 0.02, 0.04]);
    expect((error as TaskFailedError).excType).toBe('Flaky');
    expect((error as TaskFailedError).message).toContain('attempt 4');
  });

  it('does not retry errors that are not listed', async () => {
    const app = makeApp();
    let attempts = 0;
    const task = app.task('r.other', () => {
      attempts++;
      throw new TypeError('not listed');
    }, { autoretryFor: [RangeError] });
    await startWorker(app);
    await expect(task.delay().get()).rejects.toThrow(/not listed/);
    expect(attempts).toBe(1);
  });
});

describe('time limits, expiry, revocation and ETA', () => {
  it('fires the signal at the soft limit', async () => {
    const app = makeApp();
    const patient = app.task('l.soft', async (ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      return ctx.signal.reason instanceof SoftTimeLimitExceeded ? 'soft limit seen' : 'other';
    }, { softTimeLimit: 0.05 });
    await startWorker(app);
    expect(await patient.delay()).toBe('soft limit seen');
  });

  it('fails a task at the hard limit with TimeLimitExceeded and keeps serving', async () => {
    const app = makeApp();
    const stuck = app.task('l.hard', () => new Promise(() => undefined));
    const quick = app.task('l.quick', () => 'still serving');
    await startWorker(app, { concurrency: 1 });
    const error = await stuck.applyAsync([], { timeLimit: 0.05 }).get().catch((e: unknown) => e);
    expect((error as TaskFailedError).excType).toBe('TimeLimitExceeded');
    expect(await quick.delay()).toBe('still serving');
  });

  it('revokes an expired task without running it', async () => {
    const app = makeApp();
    let ran = false;
    const task = app.task('l.expired', () => {
      ran = true;
    });
    const result = task.applyAsync([], { expires: new Date(Date.now() - 1000) });
    await result.sent;
    await startWorker(app);
    const error = await result.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskRevokedError);
    expect((error as TaskRevokedError).reason).toBe('expired');
    expect(await result.state()).toBe('REVOKED');
    expect(ran).toBe(false);
  });

  it('revokes a waiting task, and signals a running one with terminate', async () => {
    const app = makeApp();
    let ran = 0;
    const task = app.task('l.revoke', async (ctx, wait: boolean) => {
      ran++;
      if (wait) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    });
    const waiting = task.applyAsync([false], { countdown: 0.3 });
    await waiting.sent;
    const worker = await startWorker(app);
    await waiting.revoke();
    await expect(waiting.get()).rejects.toThrow(/revoked/);
    expect(ran).toBe(0);

    const running = task.delay(true);
    await nextEvent(worker, 'task-started', ({ id }) => id === running.id);
    await running.revoke({ terminate: true });
    const error = await running.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskRevokedError);
    expect((error as TaskRevokedError).reason).toBe('terminated');
  });

  it('holds a countdown task in the broker until its ETA', async () => {
    const clock = new ManualClock();
    const app = makeApp(clock);
    const stamp = app.task('l.eta', () => clock.now());
    await startWorker(app);
    const sentAt = clock.now();
    const result = stamp.applyAsync([], { countdown: 5 });
    await result.sent;
    clock.advance(4_999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(await result.state()).toBe('PENDING');
    clock.advance(1);
    expect((await result) - sentAt).toBe(5_000);
  });
});

describe('states and progress', () => {
  it('stores STARTED when tracked, and PROGRESS as the task reports it', async () => {
    const app = makeApp();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const task = app.task('s.progress', async (ctx) => {
      ctx.progress(1, 4, { stage: 'one' });
      await gate;
      return 'done';
    }, { trackStarted: true });
    const worker = await startWorker(app);
    const result = task.delay();
    await nextEvent(worker, 'task-progress', ({ id }) => id === result.id);
    await until(async () => (await result.state()) === 'PROGRESS', 2000, 'PROGRESS stored');
    expect((await result.info())?.result).toEqual({ stage: 'one', current: 1, total: 4 });
    release();
    expect(await result).toBe('done');
  });
});

describe('bad input', () => {
  async function publishRaw(app: Celeriac, patch: (wire: ReturnType<typeof encodeTaskMessage>) => void): Promise<string> {
    const message = app.buildMessage('b.good', [], {}, {});
    const wire = encodeTaskMessage(message);
    patch(wire);
    await (await app.broker()).publish('celery', wire);
    return message.id;
  }

  function badInputApp() {
    const app = makeApp();
    const good = app.task('b.good', () => 'fine');
    const typed = app.task('b.typed', (_ctx, n: number) => n * 2, {
      validate: (args) => {
        if (typeof args[0] !== 'number') throw new TypeError(`n must be a number, got ${typeof args[0]}`);
      },
    });
    return { app, good, typed };
  }

  it('refuses each kind of bad message with a reason, records it, and keeps serving', async () => {
    const { app, good, typed } = badInputApp();
    const worker = await startWorker(app, { maxMessageBytes: 10_000 });
    const rejected: string[] = [];
    worker.on('task-rejected', ({ reason }) => rejected.push(reason));

    const notJson = await publishRaw(app, (w) => (w.body = Buffer.from('{not json')));
    const twoElements = await publishRaw(app, (w) => (w.body = Buffer.from('[[1], {}]')));
    const unknown = await publishRaw(app, (w) => (w.headers['task'] = 'b.nobody'));
    const oversized = await publishRaw(app, (w) => (w.body = Buffer.from(JSON.stringify([['x'.repeat(20_000)], {}, null]))));
    await publishRaw(app, (w) => {
      delete w.headers['id'];
      w.headers['task'] = undefined;
    });
    const wrongArgs = typed.delay('7' as unknown as number);

    await until(() => rejected.length === 6, 5000, 'six rejections');
    expect(rejected.sort()).toEqual(['invalid-arguments', 'malformed', 'oversized', 'undecodable', 'unknown-protocol', 'unknown-task']);
    expect(worker.stats.rejected).toMatchObject({ undecodable: 1, malformed: 1, 'unknown-task': 1, oversized: 1, 'invalid-arguments': 1, 'unknown-protocol': 1 });

    const failure = async (id: string) => (await app.asyncResult(id).get().catch((e: unknown) => e)) as TaskFailedError;
    expect((await failure(notJson)).message).toMatch(/not valid JSON/);
    expect((await failure(twoElements)).message).toMatch(/\[args, kwargs, embed\]; got an array of 2/);
    expect((await failure(unknown)).excType).toBe('NotRegistered');
    expect((await failure(oversized)).message).toMatch(/over the limit of 10000/);
    expect((await wrongArgs.get().catch((e: unknown) => e) as TaskFailedError).message).toMatch(/n must be a number, got string/);

    const broker = await app.broker();
    const dead = await broker.listDeadLetters!();
    expect(dead).toHaveLength(6);
    expect(dead.map((d) => d.reason).join('\n')).toMatch(/unknown-protocol: message has no "task" header/);
    expect(await good.delay()).toBe('fine');
  });
});

describe('shutdown', () => {
  it('lets running tasks finish within the grace period and hands back the rest', async () => {
    const app = makeApp();
    const sleepy = app.task('d.sleepy', async (_ctx, ms: number) => {
      await sleep(ms);
      return ms;
    });
    const worker = await startWorker(app, { concurrency: 1, prefetch: 3 });
    const first = sleepy.delay(150);
    const queued = [sleepy.delay(1), sleepy.delay(2)];
    await nextEvent(worker, 'task-started', ({ id }) => id === first.id);
    await worker.stop(5);
    expect(await first.state()).toBe('SUCCESS');
    expect(worker.stats.handedBack).toBe(2);
    expect(await (await app.broker()).queueLength('celery')).toBe(2);
    await startWorker(app);
    expect(await gather(queued)).toEqual([1, 2]);
  });

  it('fires the signal when the grace period runs out and hands the task back', async () => {
    const app = makeApp();
    const reasons: string[] = [];
    let runs = 0;
    const stubborn = app.task('d.stubborn', async (ctx) => {
      runs++;
      if (runs > 1) return 'second run';
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      reasons.push(String((ctx.signal.reason as Error).message));
      throw ctx.signal.reason;
    });
    const worker = await startWorker(app);
    const result = stubborn.delay();
    await nextEvent(worker, 'task-started');
    await worker.stop(0.05);
    expect(reasons).toEqual(['shutdown']);
    expect(await result.state()).toBe('PENDING');
    await startWorker(app);
    expect(await result).toBe('second run');
  });

  it('waits for the same shutdown when stop() is called twice, and disposes with await using', async () => {
    const app = makeApp();
    const sleepy = app.task('d.sleepy2', async (_ctx, ms: number) => {
      await sleep(ms);
      return ms;
    });
    const worker = await startWorker(app, { concurrency: 1 });
    const running = sleepy.delay(200);
    await nextEvent(worker, 'task-started');
    const first = worker.stop(5);
    await worker.stop(5); // resolves only once the first shutdown is over
    expect(await running.state()).toBe('SUCCESS');
    await first;
    {
      await using disposable = app.worker({ logger: createLogger('critical') });
      await disposable.start();
      expect(await sleepy.delay(1)).toBe(1);
    }
    await sleepy.delay(2).sent; // the disposed worker no longer takes anything
    expect(await (await app.broker()).queueLength('celery')).toBe(1);
  });

  it('can be started again after a start that failed', async () => {
    const port = 6397;
    const app = new Celeriac({ broker: `redis://127.0.0.1:${port}/0?connect_timeout=0.5`, backend: `memory://${randomUUID()}` });
    opened.push({ app });
    app.task('d.after-restart', () => 'ok');
    const worker = app.worker({ logger: createLogger('critical') });
    await expect(worker.start()).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port}`));
    const server = await startTestRedis(port);
    try {
      await worker.start();
      opened.push({ app, worker });
      expect(await app.sendTask('d.after-restart').get({ timeout: 5 })).toBe('ok');
      await worker.stop(1);
      await app.close();
    } finally {
      await server.destroy();
    }
  });
});
