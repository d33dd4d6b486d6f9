/**
 * Remote control and events with a worker in this process (memory broker): every inspect
 * command answers in Celery's shape, control commands change the worker, task events and
 * heartbeats reach a receiver and a State.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, State, type CeleryEvent, type Worker } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { until } from '../helpers/wait.js';

const silent = createLogger('critical', () => undefined);
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fleet(options: Parameters<Celeriac['worker']>[0] = {}, taskSentEvents = false): Promise<{ app: Celeriac; worker: Worker; node: string }> {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url, taskSentEvents });
  app.task('rc.sleep', async (ctx, ms: number) => {
    await sleep(ms, undefined, { signal: ctx.signal }).catch(() => undefined);
    return ms;
  });
  app.task('rc.add', (_ctx, a: number, b: number) => a + b, { rateLimit: '100/s' });
  app.task('rc.fail', (_ctx, message: string) => {
    throw new RangeError(message);
  });
  const node = `w-${randomUUID().slice(0, 8)}@test`;
  const worker = app.worker({ logger: silent, hostname: node, concurrency: 2, ...options });
  await worker.start();
  cleanups.push(() => app.close(), () => worker.stop(1));
  return { app, worker, node };
}

describe('inspect', () => {
  it('answers ping, registered, stats, clock, conf and active_queues per node', async () => {
    const { app, node } = await fleet();
    const inspect = app.control.inspect({ timeout: 2, limit: 1 }); // one worker: done at its reply
    expect(await inspect.ping()).toEqual({ [node]: { ok: 'pong' } });
    expect((await inspect.registered())[node]).toEqual(expect.arrayContaining(['rc.sleep', 'rc.add']));
    const stats = (await inspect.stats())[node]!;
    expect(stats).toMatchObject({ pid: process.pid, pool: { 'max-concurrency': 2 }, prefetch_count: 8 });
    expect((await inspect.clock())[node]!.clock).toBeGreaterThanOrEqual(0);
    expect((await inspect.conf())[node]).toMatchObject({ worker_concurrency: 2 });
    expect((await inspect.activeQueues())[node]!.map((queue) => queue.name)).toEqual(['celery']);
  });

  it('lists active, reserved and scheduled tasks, and finds them by id', async () => {
    const { app, node } = await fleet({ concurrency: 1 });
    const running = app.sendTask('rc.sleep', [5_000]);
    const waiting = app.sendTask('rc.sleep', [10]);
    // As a Python client sends an ETA task: straight to the queue, for the worker to hold.
    const later = app.buildMessage('rc.sleep', [10], { eta: new Date(Date.now() + 900) }, {});
    await Promise.all([running.sent, waiting.sent, (await app.broker()).publish('celery', encodeTaskMessage(later))]);
    const inspect = app.control.inspect({ timeout: 2, limit: 1 });
    await until(async () => (await inspect.active())[node]?.length === 1, 5_000, 'one active task');
    const active = (await inspect.active())[node]!;
    expect(active[0]).toMatchObject({ id: running.id, name: 'rc.sleep', args: [5_000], hostname: node, worker_pid: process.pid });
    expect((await inspect.reserved())[node]!.map((task) => task.id)).toEqual([waiting.id]);
    expect((await inspect.scheduled())[node]!.map((entry) => entry.request.id)).toEqual([later.id]);
    const found = (await inspect.queryTask([running.id, waiting.id, 'nope']))[node]!;
    expect(Object.keys(found).sort()).toEqual([running.id, waiting.id].sort());
    expect(found[running.id]![0]).toBe('active');
    await app.control.revoke([running.id], { terminate: true });
    expect((await inspect.revoked())[node]).toContain(running.id);
  });

  it('answers an unknown command with an error and ignores expired ones', async () => {
    const { app, node } = await fleet();
    expect(await app.control.request('no_such_thing', {}, { timeout: 2, limit: 1 })).toEqual({ [node]: { error: 'No such command: no_such_thing' } });
    const broker = await app.broker();
    let resolve!: () => void;
    const heard = new Promise<void>((done) => (resolve = done));
    const inbox = await broker.control!.openInbox!();
    inbox.listen(() => resolve());
    await broker.control!.broadcast({ method: 'ping', arguments: {}, destination: null, replyTo: inbox.address, ticket: 't', expiresAt: Date.now() - 1 });
    expect(await Promise.race([heard.then(() => 'replied'), sleep(300).then(() => 'silent')])).toBe('silent');
    await inbox.close();
  });

  it('answers only the nodes named in destination, and stops at limit', async () => {
    const { app, node } = await fleet();
    expect(await app.control.inspect({ timeout: 0.3, destination: ['someone-else@host'] }).ping()).toEqual({});
    expect(await app.control.inspect({ timeout: 0.3, destination: [node] }).ping()).toEqual({ [node]: { ok: 'pong' } });
    const started = Date.now();
    await app.control.inspect({ timeout: 5, limit: 1 }).ping();
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('control', () => {
  it('sets rate and time limits, grows and shrinks the pool, adds and cancels consumers', async () => {
    const { app, worker, node } = await fleet();
    expect(await app.control.request('rate_limit', { task_name: 'rc.add', rate_limit: '5/s' }, { timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'new rate limit set successfully' } });
    expect(await app.control.request('rate_limit', { task_name: 'nope', rate_limit: '5/s' }, { timeout: 2, limit: 1 })).toEqual({ [node]: { error: 'unknown task nope' } });
    expect((await app.control.request<{ error: string }>('rate_limit', { task_name: 'rc.add', rate_limit: 'fast' }, { timeout: 2, limit: 1 }))[node]!.error).toMatch(/invalid rate limit/);

    expect(await app.control.timeLimit('rc.sleep', { hard: 0.3 }, { timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'time limits set successfully' } });
    await expect(app.sendTask('rc.sleep', [5_000]).get({ timeout: 5 })).rejects.toThrow(/TimeLimitExceeded/);

    expect(await app.control.poolGrow(3, { timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'pool will grow' } });
    expect((await app.control.inspect({ timeout: 2, limit: 1 }).stats())[node]).toMatchObject({ pool: { 'max-concurrency': 5 } });
    await app.control.poolShrink(1, { timeout: 2, limit: 1 });
    expect((await app.control.inspect({ timeout: 2, limit: 1 }).stats())[node]).toMatchObject({ pool: { 'max-concurrency': 4 } });

    expect(await app.control.addConsumer('extra', { timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'add consumer extra' } });
    expect(await app.sendTask('rc.add', [2, 2], {}, { queue: 'extra' }).get({ timeout: 5 })).toBe(4);
    expect(await app.control.cancelConsumer('extra', { timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'no longer consuming from extra' } });
    expect((await app.control.inspect({ timeout: 2, limit: 1 }).activeQueues())[node]!.map((queue) => queue.name)).toEqual(['celery']);
    expect(worker.options.queues).toEqual(['celery']);
  });

  it('shuts a worker down', async () => {
    const { app, worker } = await fleet();
    const offline = new Promise((resolve) => worker.once('worker-offline', resolve));
    await app.control.shutdown();
    await offline;
  });
});

describe('events', () => {
  it('sends worker heartbeats and, with task events on, a task through its states to a State', async () => {
    const { app, node } = await fleet();
    const stream = await app.events.receive();
    cleanups.push(() => stream.close());
    const state = new State();
    const seen: CeleryEvent[] = [];
    const reading = (async () => {
      for await (const event of stream) {
        seen.push(event);
        state.event(event);
      }
    })();
    await app.control.heartbeat();
    await until(() => state.aliveWorkers().some((worker) => worker.hostname === node), 5_000, 'the worker alive in the State');

    await app.sendTask('rc.add', [1, 1]).get({ timeout: 5 }); // task events off: none sent
    expect(seen.filter((event) => event.type.startsWith('task-'))).toEqual([]);

    expect(await app.control.enableEvents({ timeout: 2, limit: 1 })).toEqual({ [node]: { ok: 'task events enabled' } });
    const result = app.sendTask('rc.add', [2, 3]);
    await result.get({ timeout: 5 });
    await until(() => state.tasks.get(result.id)?.state === 'SUCCESS', 5_000, 'SUCCESS in the State');
    const task = state.tasks.get(result.id)!;
    expect(task).toMatchObject({ name: 'rc.add', args: '[2, 3]', result: '5', worker: node });
    expect(Object.keys(task.timeline).sort()).toEqual(['RECEIVED', 'STARTED', 'SUCCESS']);
    const received = seen.find((event) => event.type === 'task-received' && event['uuid'] === result.id)!;
    expect(received).toMatchObject({ hostname: node, pid: process.pid, root_id: result.id, retries: 0 });
    expect(typeof received['clock']).toBe('number');

    const failing = app.sendTask('rc.fail', ['bad input']);
    await expect(failing.get({ timeout: 5 })).rejects.toThrow();
    await until(() => state.tasks.get(failing.id)?.state === 'FAILURE', 5_000, 'FAILURE in the State');
    expect(state.tasks.get(failing.id)!.exception).toBe("ValueError('bad input')");
    await stream.close();
    await reading;
  });

  it('sends task-sent from the producer when the app asks (taskSentEvents)', async () => {
    const { app } = await fleet({}, true);
    const stream = await app.events.receive({ pattern: 'task.#' });
    const state = new State();
    const reading = (async () => {
      for await (const event of stream) state.event(event);
    })();
    const result = app.sendTask('rc.add', [1, 2]);
    await result.get({ timeout: 5 });
    await until(() => state.tasks.get(result.id)?.timeline.PENDING !== undefined, 5_000, 'task-sent in the State');
    expect(state.tasks.get(result.id)).toMatchObject({ name: 'rc.add', args: '[1, 2]' });
    await stream.close();
    await reading;
  });

  it('marks a worker offline in the State when it stops', async () => {
    const { app, worker, node } = await fleet();
    const stream = await app.events.receive({ pattern: 'worker.#' });
    const state = new State();
    const reading = (async () => {
      for await (const event of stream) state.event(event);
    })();
    await app.control.heartbeat();
    await until(() => state.aliveWorkers().length === 1, 5_000, 'alive');
    await worker.stop(1);
    await until(() => state.workers.get(node)?.online === false, 5_000, 'offline');
    expect(state.aliveWorkers()).toEqual([]);
    await stream.close();
    await reading;
  });
});
