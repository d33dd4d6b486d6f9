/**
 * Interop with real Python Celery (Debian's python3-celery, /usr/bin/python3) on one broker:
 * each side calls the other's tasks and reads the results; countdown, ETA, expiry, retries and
 * priorities behave as a Celery user expects; a Python and a TypeScript worker share a queue
 * without losing a task. Each broker runs it through a short test file.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Celeriac, createBroker, gather, TaskRevokedError, type Delivery } from '../../src/index.js';
import { until } from '../helpers/wait.js';
import { interopHarness } from './harness.js';

/** One broker/backend pairing, as each side spells it. */
export interface InteropSetup {
  /** URLs for celeriac. */
  broker: string;
  backend: string;
  /** URLs for Python Celery (the same servers). */
  pythonBroker: string;
  pythonBackend: string;
  /** RabbitMQ queues declared with x-max-priority by both sides. */
  maxPriority?: number;
  /** The priorities Celery users on this broker call least and most urgent. */
  priorities: { low: number; high: number };
  /** The broker routes through exchanges (RabbitMQ): run the topic-exchange scenarios. */
  exchanges?: boolean;
  /**
   * Lost messages come back after a visibility timeout (Redis): run the scenarios where each
   * side restores what a killed worker of the other held. The value is celeriac's broker URL
   * with a short `visibility_timeout`.
   */
  shortVisibilityBroker?: string;
}

export function describeCeleryInterop(name: string, setup: InteropSetup): void {
  const harness = interopHarness({
    broker: setup.broker,
    backend: setup.backend,
    module: 'celery_app',
    env: {
      CELERIAC_TEST_BROKER: setup.pythonBroker,
      CELERIAC_TEST_BACKEND: setup.pythonBackend,
      ...(setup.maxPriority ? { CELERIAC_TEST_MAX_PRIORITY: String(setup.maxPriority) } : {}),
    },
  });
  const { pythonWorker, pythonClient, app, tsWorker } = harness;

  /** A plain connection to the Redis broker, to read and adjust kombu's unacked bookkeeping. */
  function kombuRedis(url: string): Redis {
    const redis = new Redis(url.replace(/\?.*$/, ''));
    harness.defer(async () => redis.disconnect());
    return redis;
  }

  /** celeriac's side of the Python client's scenarios. */
  function tsTasks(celeriac: Celeriac, ran: string[] = []): void {
    celeriac.task('ts.add', (_ctx, a: number, b: number) => a + b, { params: ['a', 'b'] });
    celeriac.task('ts.fail', (_ctx, why: string) => {
      throw new TypeError(`refused: ${why}`);
    });
    celeriac.task('ts.stamp', () => Date.now() / 1000);
    celeriac.task('ts.flaky', (ctx, label: string) => {
      if (ctx.retries < 1) ctx.retry({ countdown: 0.3 });
      return `${label} after ${ctx.retries} retry`;
    });
    celeriac.task('ts.record', (_ctx, label: string) => void ran.push(label));
  }

  describe(`TypeScript and Python Celery on ${name}`, () => {
    afterEach(() => harness.closeApps());
    afterAll(() => harness.killPythonWorkers());

    it('a TypeScript producer calls a Python task and gets its result', async () => {
      const queue = `interop-py-${randomUUID()}`;
      await pythonWorker(queue);
      const product = app().sendTask<number>('py.mul', [6, 7], {}, { queue });
      expect(await product.get({ timeout: 30 })).toBe(42);
      expect((await product.info())?.status).toBe('SUCCESS');
    });

    it('a Python producer calls TypeScript tasks: values come back, failures re-raise', async () => {
      const queue = `interop-ts-${randomUUID()}`;
      const celeriac = app();
      tsTasks(celeriac);
      await tsWorker(celeriac, queue);
      expect(await pythonClient('calls', queue)).toEqual(['5', '15', 'TypeError refused: bad input']);
    });

    it('Python countdown and ETA wait on a TypeScript worker, and an expired task is revoked', async () => {
      const queue = `interop-timing-${randomUUID()}`;
      const celeriac = app();
      tsTasks(celeriac);
      await tsWorker(celeriac, queue);
      expect(await pythonClient('timing', queue)).toEqual(['countdown ok', 'eta ok', 'expires TaskRevokedError REVOKED']);
    });

    it('a TypeScript countdown waits on a Python worker, and an expired task is revoked there', async () => {
      const queue = `interop-py-timing-${randomUUID()}`;
      await pythonWorker(queue);
      const celeriac = app();
      const sent = Date.now() / 1000;
      const ran = await celeriac.sendTask<number>('py.stamp', [], {}, { queue, countdown: 2 }).get({ timeout: 30 });
      expect(ran - sent).toBeGreaterThanOrEqual(1.9);
      const expired = celeriac.sendTask('py.stamp', [], {}, { queue, expires: new Date(Date.now() - 5000) });
      await expect(expired.get({ timeout: 30 })).rejects.toBeInstanceOf(TaskRevokedError);
      expect(await expired.state()).toBe('REVOKED');
    });

    it("Python's control.revoke reaches a TypeScript worker", async () => {
      const queue = `interop-revoke-${randomUUID()}`;
      const celeriac = app();
      tsTasks(celeriac);
      await tsWorker(celeriac, queue);
      expect(await pythonClient('revoke', queue)).toEqual(['revoke TaskRevokedError REVOKED']);
    });

    it("celeriac's revoke reaches a Python worker", async () => {
      const queue = `interop-py-revoke-${randomUUID()}`;
      await pythonWorker(queue);
      const celeriac = app();
      const waiting = celeriac.sendTask('py.stamp', [], {}, { queue, countdown: 3 });
      await waiting.sent;
      // The Python worker holds it, waiting for its countdown, when the revoke comes.
      const broker = await celeriac.broker();
      await until(async () => (await broker.queueLength(queue)) === 0, 10_000, 'Python to take the task');
      await waiting.revoke();
      await expect(waiting.get({ timeout: 30 })).rejects.toBeInstanceOf(TaskRevokedError);
    });

    it('Python sees a TypeScript retry as RETRY, then SUCCESS', async () => {
      const queue = `interop-retry-${randomUUID()}`;
      const celeriac = app();
      tsTasks(celeriac);
      await tsWorker(celeriac, queue);
      expect(await pythonClient('retries', queue)).toEqual(['RETRY SUCCESS', 'x after 1 retry']);
    });

    it("a TypeScript worker serves Python's urgent tasks first", async () => {
      const queue = `interop-priority-${randomUUID()}`;
      const celeriac = app();
      const ran: string[] = [];
      tsTasks(celeriac, ran);
      expect(await pythonClient('priorities', queue, String(setup.priorities.low), String(setup.priorities.high))).toEqual(['sent']);
      await tsWorker(celeriac, queue, 1);
      await until(() => ran.length === 6, 30_000, 'six tasks run');
      expect(ran).toEqual(['high', 'high', 'high', 'low', 'low', 'low']);
    });

    it('a TypeScript call through a topic exchange reaches a Python worker bound to it', async ({ skip }) => {
      skip(!setup.exchanges, `${name} routes without exchanges`);
      const id = randomUUID().slice(0, 8);
      const [queue, exchange] = [`interop-images-${id}`, `interop-media-${id}`];
      await pythonWorker(queue, { CELERIAC_TEST_TOPIC_QUEUE: `${queue}:${exchange}:image.#` });
      const product = app().sendTask<number>('py.mul', [6, 7], {}, { exchange, routingKey: 'image.mul' });
      expect(await product.get({ timeout: 30 })).toBe(42);
    });

    it('a Python call through a topic exchange reaches a TypeScript worker bound to it', async ({ skip }) => {
      skip(!setup.exchanges, `${name} routes without exchanges`);
      const id = randomUUID().slice(0, 8);
      const [queue, exchange] = [`interop-images-${id}`, `interop-media-${id}`];
      const celeriac = app({ queues: [{ name: queue, exchange, exchangeType: 'topic', routingKey: 'image.#' }] });
      tsTasks(celeriac);
      await tsWorker(celeriac, queue);
      expect(await pythonClient('routed', exchange, 'image.add')).toEqual(['5']);
    });

    it('a TypeScript worker restores and runs what a killed Python worker held', async ({ skip }) => {
      skip(!setup.shortVisibilityBroker, `${name} gives back what a dead worker held as soon as its connection goes (no visibility timeout to restore after)`);
      const queue = `interop-lost-py-${randomUUID()}`;
      const python = await pythonWorker(queue);
      const celeriac = app({ broker: setup.shortVisibilityBroker! });
      celeriac.task('shared.slow', (_ctx, value: string) => `ts:${value}`);
      const result = celeriac.sendTask<string>('shared.slow', ['x'], {}, { queue });
      const broker = await celeriac.broker();
      await until(async () => (await broker.queueLength(queue)) === 0, 10_000, 'Python to take the task');
      // kombu takes a message off the list first and records it as unacked just after.
      const redis = kombuRedis(setup.broker);
      await until(async () => (await redis.hvals('unacked')).some((entry) => entry.includes(result.id)), 10_000, 'Python to record the task as unacked');
      python.kill('SIGKILL');
      await tsWorker(celeriac, queue);
      expect(await result.get({ timeout: 20 })).toBe('ts:x');
    });

    it('a Python worker restores and runs what a dead TypeScript consumer held', async ({ skip }) => {
      skip(!setup.shortVisibilityBroker, `${name} gives back what a dead consumer held as soon as its connection goes (no visibility timeout to restore after)`);
      const queue = `interop-lost-ts-${randomUUID()}`;
      const celeriac = app();
      const result = celeriac.sendTask<number>('shared.echo', [7], {}, { queue });
      await result.sent;
      // A celeriac consumer takes it and dies: its connections drop, nothing is settled.
      const doomed = await createBroker(setup.broker);
      await doomed.connect();
      harness.defer(() => doomed.close().catch(() => undefined));
      const taken: Delivery[] = [];
      const consumer = await doomed.consume([queue], (delivery) => taken.push(delivery), { prefetch: 1 });
      await until(() => taken.length === 1, 10_000, 'the doomed consumer to take the task');
      const tag = (taken[0] as unknown as { tag: string }).tag;
      const internals = doomed as unknown as { client: { disconnect(): void }; release(consumer: unknown): Promise<void> };
      internals.client.disconnect();
      // Its lease keeper thread would go on renewing the taken time; in a dead process it dies too.
      await internals.release(consumer);
      // kombu restores when its consumer starts (then every 10th 10-second tick), what was taken
      // longer ago than its visibility timeout: move the time it was taken back past Python's 2 s
      // rather than wait for them to pass.
      const redis = kombuRedis(setup.broker);
      const takenAt = Number(await redis.zscore('unacked_index', tag));
      expect(takenAt).toBeGreaterThan(0);
      await redis.zadd('unacked_index', takenAt - 3, tag);
      await pythonWorker(queue, { CELERIAC_TEST_VISIBILITY: '2' });
      expect(await result.get({ timeout: 30 })).toBe(7);
    });

    it('a Python and a TypeScript worker share one queue without losing a task', async () => {
      const queue = `interop-shared-${randomUUID()}`;
      await pythonWorker(queue);
      const celeriac = app();
      celeriac.task('shared.echo', (_ctx, value: number) => value);
      await tsWorker(celeriac, queue);
      const results = Array.from({ length: 200 }, (_, i) => celeriac.sendTask<number>('shared.echo', [i], {}, { queue }));
      expect(await gather(results, { timeout: 20 })).toEqual(Array.from({ length: 200 }, (_, i) => i));
      const metas = await Promise.all(results.map((r) => r.info()));
      const byTs = metas.filter((m) => m?.worker).length;
      expect(byTs).toBeGreaterThan(0); // celeriac stores its node name; Python (no result_extended) does not
      expect(byTs).toBeLessThan(200);
    });
  });
}

/** The Python side must be importable, or every interop test is meaningless. */
export function expectPythonCelery(): void {
  it('has Python Celery installed for the interop tests', () => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import celery, redis, amqp; print(celery.__version__)'], { encoding: 'utf8' });
    expect(probe.status).toBe(0);
  });
}
