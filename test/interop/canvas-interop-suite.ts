/**
 * Canvas interop with real Python Celery (Debian's python3-celery 5.2, /usr/bin/python3) on one
 * broker, with Redis results on both sides (chords need a backend that joins them): workflows
 * built in Python run on a celeriac worker, workflows built in celeriac run on a Python worker,
 * workflows mix both kinds of step, a chord's members race to end it from both languages, and
 * each side reads the results and saved groups the other stored. Each broker runs it through a
 * short test file.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chain, chord, group, TaskFailedError, type AsyncResult, type Celeriac } from '../../src/index.js';
import { interopHarness, pythonCeleryMissing } from './harness.js';

/** One broker, as each side spells it, and the Redis result backend both share. */
export interface CanvasInteropSetup {
  /** celeriac's broker URL. */
  broker: string;
  /** Python Celery's URL for the same broker. */
  pythonBroker: string;
  /** The redis:// result backend of both sides. */
  backend: string;
}

/**
 * How long to keep watching for a second run of something that must run once: a duplicate
 * would be sent at the latest when the last chord member is recorded, which precedes the
 * first run we waited for.
 */
const SETTLE_MS = 500;

/** What celeriac's tasks saw in this process. */
interface Seen {
  /** The ids `ts.record_error` was called with, in order. */
  errbacks: string[];
  /** How many `shared.double` calls this worker ran. */
  doubled: number;
}

export function describeCanvasInterop(name: string, setup: CanvasInteropSetup): void {
  const missing = pythonCeleryMissing(['celery', 'redis', ...(setup.pythonBroker.startsWith('amqp') ? ['amqp'] : [])]);
  if (missing) console.warn(`SKIPPED the canvas interop with Python Celery on ${name}: ${missing}`);

  describe.skipIf(missing !== null)(`canvas between TypeScript and Python Celery on ${name}${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const harness = interopHarness({
      broker: setup.broker,
      backend: setup.backend,
      module: 'canvas_app',
      env: { CELERIAC_TEST_BROKER: setup.pythonBroker, CELERIAC_TEST_BACKEND: setup.backend },
    });
    // One Python worker serves the whole file (it takes seconds to start): py.* tasks on
    // PY_QUEUE, shared.* tasks on SHARED_QUEUE, where a celeriac worker joins it in one test.
    const PY_QUEUE = `canvas-py-${randomUUID()}`;
    const SHARED_QUEUE = `canvas-shared-${randomUUID()}`;
    let redis: Redis;

    beforeAll(async () => {
      redis = new Redis(setup.backend);
      await harness.pythonWorker(`${PY_QUEUE},${SHARED_QUEUE}`);
    });
    afterEach(() => harness.closeApps());
    afterAll(async () => {
      await harness.killPythonWorkers();
      await redis?.quit();
    });

    /** An app defining celeriac's side of every scenario; `seen` records what its tasks saw. */
    function tsApp(seen: Seen = { errbacks: [], doubled: 0 }): Celeriac {
      const celeriac = harness.app();
      celeriac.task('ts.add', (_ctx, a: number, b: number) => a + b);
      celeriac.task('ts.tsum', (_ctx, values: number[]) => values.reduce((total, value) => total + value, 0));
      celeriac.task('ts.fail', (_ctx, why: unknown) => {
        throw new TypeError(`refused: ${String(why)}`);
      });
      celeriac.task('ts.record_error', (_ctx, taskId: string) => {
        seen.errbacks.push(taskId);
        return taskId;
      });
      celeriac.task('shared.double', (_ctx, value: number) => {
        seen.doubled++;
        return 2 * value;
      });
      celeriac.task('shared.collect', async (_ctx, values: number[], key: string) => {
        await redis.incr(key);
        return values;
      });
      return celeriac;
    }

    /** celeriac's tasks served by a worker on a queue of this test's own. */
    async function tsSide(seen?: Seen): Promise<{ celeriac: Celeriac; queue: string }> {
      const celeriac = tsApp(seen);
      const queue = `canvas-ts-${randomUUID()}`;
      await harness.tsWorker(celeriac, queue);
      return { celeriac, queue };
    }

    /** Reads a counter the tasks keep in Redis, deleting it after the test. */
    function counter(key: string): Promise<string | null> {
      harness.defer(() => redis.del(key));
      return redis.get(key);
    }

    /** Signatures of tasks known by name (defined on either side), routed to `queue`. */
    const on = (celeriac: Celeriac, queue: string) => (task: string, ...args: unknown[]) => celeriac.signature(task, args, {}, { queue });

    describe('Python builds workflows of TypeScript tasks', () => {
      it('a chain gives the last step\'s value, and its parent the one before', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('chain_steps', queue)).toEqual(['10', '6']);
      });

      it('a group gives its members\' values in order', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('group_members', queue)).toEqual(['[0, 2, 4, 6, 8]']);
      });

      it('a chord calls its TypeScript body with the header\'s results', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('chord_body', queue)).toEqual(['12']);
      });

      it('a group inside a chain, which Celery makes a chord, runs on celeriac\'s worker', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('group_in_chain', queue)).toEqual(['7']);
      });

      it('link= gets the result and link_error= the failed task\'s id', async () => {
        const seen: Seen = { errbacks: [], doubled: 0 };
        const { queue } = await tsSide(seen);
        expect(await harness.pythonClient('links', queue, randomUUID())).toEqual(['[3, 13]', 'FAILURE TypeError', 'errback got the failed id']);
        expect(seen.errbacks).toHaveLength(1);
      });

      it('a chord with a failing member: the body ends FAILURE with ChordError, its errback runs once', async () => {
        const seen: Seen = { errbacks: [], doubled: 0 };
        const { queue } = await tsSide(seen);
        expect(await harness.pythonClient('chord_failure', queue, randomUUID())).toEqual(['FAILURE ChordError', 'errback got the body id']);
        await sleep(SETTLE_MS); // fixed: a window in which a second errback must NOT come
        expect(seen.errbacks).toHaveLength(1);
      });

      it('a chain with a failing step: the steps after it end FAILURE too', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('chain_failure', queue)).toEqual(['FAILURE TypeError']);
      });

      it('map, starmap and chunks run on celeriac\'s built-in tasks', async () => {
        const { queue } = await tsSide();
        expect(await harness.pythonClient('map_family', queue)).toEqual(['[2, 4, 6]', '[3, 7]', '[[0, 2], [4, 6], [8, 10]]']);
      });
    });

    describe('celeriac builds workflows of Python tasks', () => {
      it('a chain gives the last step\'s value, and its parent the one before', async () => {
        const py = on(harness.app(), PY_QUEUE);
        const result = chain(py('py.add', 1, 2), py('py.add', 3), py('py.add', 4)).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(10);
        expect(await (result.parent as AsyncResult).get({ timeout: 10 })).toBe(6);
      });

      it('a group gives its members\' values in order', async () => {
        const py = on(harness.app(), PY_QUEUE);
        const result = group([0, 1, 2, 3, 4].map((i) => py('py.mul', i, 10))).applyAsync();
        expect(await result.get({ timeout: 10 })).toEqual([0, 10, 20, 30, 40]);
      });

      it('a chord calls its Python body with the header\'s results', async () => {
        const py = on(harness.app(), PY_QUEUE);
        const result = chord([py('py.add', 1, 1), py('py.add', 2, 2), py('py.add', 3, 3)], py('py.tsum')).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(12);
      });

      it('link gets the result and linkError the failed task\'s id', async () => {
        const celeriac = harness.app();
        const py = on(celeriac, PY_QUEUE);
        const callback = py('py.add', 10).set({ taskId: randomUUID() });
        const added = celeriac.sendTask('py.add', [1, 2], {}, { queue: PY_QUEUE, link: callback });
        expect(await added.get({ timeout: 10 })).toBe(3);
        expect(await celeriac.asyncResult(callback.id!).get({ timeout: 10 })).toBe(13);

        const errback = py('py.record_error').set({ taskId: randomUUID() });
        const failed = celeriac.sendTask('py.fail', ['no'], {}, { queue: PY_QUEUE, linkError: errback });
        await expect(failed.get({ timeout: 10 })).rejects.toMatchObject({ excType: 'ValueError' });
        expect(await celeriac.asyncResult(errback.id!).get({ timeout: 10 })).toBe(failed.id);
        expect(await counter(`canvas-errback-${failed.id}`)).toBe('1');
      });

      it('a chord with a failing member: the body rejects with ChordError, its errback runs once', async () => {
        const celeriac = harness.app();
        const py = on(celeriac, PY_QUEUE);
        const errback = py('py.record_error').set({ taskId: randomUUID() });
        const body = py('py.tsum').linkError(errback);
        const result = chord([py('py.add', 1, 1), py('py.fail', 'member'), py('py.add', 2, 2)], body).applyAsync();
        const error = await result.get({ timeout: 10 }).catch((reason: unknown) => reason);
        expect(error).toBeInstanceOf(TaskFailedError);
        expect(error).toMatchObject({ excType: 'ChordError' });
        expect(await result.state()).toBe('FAILURE');
        expect(await celeriac.asyncResult(errback.id!).get({ timeout: 10 })).toBe(result.id);
        await sleep(SETTLE_MS); // fixed: a window in which a second errback must NOT come
        expect(await counter(`canvas-errback-${result.id}`)).toBe('1');
      });

      it('a chain with a chord step: the parent\'s result goes to every member, the body\'s to the next step', async () => {
        const py = on(harness.app(), PY_QUEUE);
        const result = chain(py('py.add', 1, 1), chord([py('py.add', 1), py('py.add', 2)], py('py.tsum')), py('py.add', 100)).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(107); // 2 -> [3, 4] -> 7 -> 107
      });

      it('a group celeriac saved is restored by Python, and one Python saved by celeriac', async () => {
        const celeriac = harness.app();
        const py = on(celeriac, PY_QUEUE);
        const saved = group([py('py.add', 1, 1), py('py.add', 2, 2)]).applyAsync();
        expect(await saved.get({ timeout: 10 })).toEqual([2, 4]);
        await saved.save();
        const [pythonRead] = await harness.pythonClient('restore_group', saved.id);
        expect(JSON.parse(pythonRead!)).toEqual(saved.results.map((member) => member.id));

        const [line] = await harness.pythonClient('save_group', PY_QUEUE);
        const theirs = JSON.parse(line!) as { id: string; members: string[] };
        const restored = await celeriac.restoreGroup<number[]>(theirs.id);
        expect(restored?.group.results.map((member) => member.id)).toEqual(theirs.members);
        expect(await restored?.group.get({ timeout: 10 })).toEqual([0, 2, 4]);
      });
    });

    describe('workflows mixing TypeScript and Python steps', () => {
      it('a chain alternating between the two workers, started from either side', async () => {
        const { celeriac, queue } = await tsSide();
        const [ts, py] = [on(celeriac, queue), on(celeriac, PY_QUEUE)];
        const result = chain(ts('ts.add', 1, 2), py('py.mul', 10), ts('ts.add', 5), py('py.add', 1)).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(36); // ((1 + 2) * 10 + 5) + 1
        expect(await (result.parent as AsyncResult).get({ timeout: 10 })).toBe(35);
        expect(await harness.pythonClient('mixed_chain', queue, PY_QUEUE)).toEqual(['[36, 35]']);
      });

      it.each([
        ['TypeScript', 'ts.tsum'],
        ['Python', 'py.tsum'],
      ])('a chord with members on both sides and its body on the %s worker, started from either side', async (_kind, bodyTask) => {
        const { celeriac, queue } = await tsSide();
        const [ts, py] = [on(celeriac, queue), on(celeriac, PY_QUEUE)];
        const bodyQueue = bodyTask.startsWith('ts.') ? queue : PY_QUEUE;
        const header = [ts('ts.add', 1, 1), py('py.add', 2, 2), ts('ts.add', 3, 3), py('py.mul', 2, 5)];
        const result = chord(header, on(celeriac, bodyQueue)(bodyTask)).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(22);
        expect(await harness.pythonClient('mixed_chord', queue, PY_QUEUE, bodyTask, bodyQueue)).toEqual(['22']);
      });

      it('a chord whose members share one queue with a Python and a TypeScript worker runs its body once, with every result in order', async () => {
        const seen: Seen = { errbacks: [], doubled: 0 };
        const celeriac = tsApp(seen);
        // Few slots, so the Python worker gets its share of the members.
        await harness.tsWorker(celeriac, SHARED_QUEUE, 2);
        const shared = on(celeriac, SHARED_QUEUE);
        const runs = `canvas-body-runs-${randomUUID()}`;
        const size = 30;
        const values = Array.from({ length: size }, (_, i) => i);
        const result = chord(values.map((i) => shared('shared.double', i)), shared('shared.collect', runs)).applyAsync();
        expect(await result.get({ timeout: 10 })).toEqual(values.map((i) => 2 * i));
        expect(seen.doubled).toBeGreaterThan(0);
        expect(seen.doubled).toBeLessThan(size);
        await sleep(SETTLE_MS); // fixed: a window in which a second run of the body must NOT come
        expect(await counter(runs)).toBe('1');
      });
    });

    describe('results read the same from both sides', () => {
      it('Python reads a chain celeriac ran: values, parent, and the children celeriac stored', async () => {
        const { celeriac, queue } = await tsSide();
        const ts = on(celeriac, queue);
        const result = chain(ts('ts.add', 1, 2), ts('ts.add', 3)).applyAsync();
        expect(await result.get({ timeout: 10 })).toBe(6);
        const [line] = await harness.pythonClient('read_chain', JSON.stringify(result.asTuple()));
        expect(JSON.parse(line!)).toEqual({ value: 6, parent: 3, state: 'SUCCESS', children: [result.id] });
      });

      it('celeriac reads a chain Python ran: each step\'s children and stored meta', async () => {
        const celeriac = harness.app();
        const [line] = await harness.pythonClient('python_chain', PY_QUEUE);
        const [first, second, last] = JSON.parse(line!) as [string, string, string];
        const step = (id: string) => celeriac.asyncResult<number>(id);
        expect((await step(first).children()).map((child) => child.id)).toEqual([second]);
        expect((await step(second).children()).map((child) => child.id)).toEqual([last]);
        expect(await step(last).children()).toEqual([]);
        expect(await step(first).info()).toMatchObject({ task_id: first, status: 'SUCCESS', result: 3 });
        expect(await step(last).info()).toMatchObject({ task_id: last, status: 'SUCCESS', result: 10 });
      });
    });
  });
}
