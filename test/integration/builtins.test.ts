/**
 * Celery's built-in tasks, sent by name as a Python producer would send them, run on a celeriac
 * worker as on Celery's: accumulate, backend_cleanup, group, chord, chord_unlock (the polling
 * join), and chain (which, as in Celery, is no real task).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, createLogger, TaskFailedError, type SignatureDict } from '../../src/index.js';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(): Promise<{ app: Celeriac; add: (a: number, b: number) => SignatureDict }> {
  const url = `memory://${randomUUID()}`;
  const app = new Celeriac({ broker: url, backend: url });
  const add = app.task('bi.add', (_ctx, a: number, b: number) => a + b);
  app.task('bi.sum', (_ctx, values: number[]) => values.reduce((total, value) => total + value, 0));
  const worker = app.worker({ logger: createLogger('critical') });
  await worker.start();
  closers.push(() => app.close(), () => worker.stop(1));
  return { app, add: (a, b) => add.s(a, b).toDict() };
}

describe("Celery's built-in tasks on a celeriac worker", () => {
  it('celery.accumulate returns its arguments, or the one at `index`', async () => {
    const { app } = await setup();
    expect(await app.sendTask('celery.accumulate', [1, 2, 3]).get({ timeout: 5 })).toEqual([1, 2, 3]);
    expect(await app.sendTask('celery.accumulate', [1, 2, 3], { index: 1 }).get({ timeout: 5 })).toBe(2);
  });

  it('celery.backend_cleanup runs the backend cleanup', async () => {
    const { app } = await setup();
    expect(await app.sendTask('celery.backend_cleanup').get({ timeout: 5 })).toBeNull();
  });

  it('celery.group sends its tasks with the group id and returns the group tuple', async () => {
    const { app, add } = await setup();
    const groupId = randomUUID();
    const tuple = (await app.sendTask('celery.group', [], { tasks: [add(1, 1), add(2, 2)], result: null, group_id: groupId, partial_args: [] }).get({ timeout: 5 })) as [[string, null], Array<[[string, null], null]>];
    expect(tuple[0][0]).toBe(groupId);
    const values = await Promise.all(tuple[1].map(([[id]]) => app.asyncResult(id).get({ timeout: 5 })));
    expect(values).toEqual([2, 4]);
    expect((await app.asyncResult(tuple[1][0]![0][0]).info())?.group_id).toBe(groupId);
  });

  it('celery.chord runs the header, then the body with the results', async () => {
    const { app, add } = await setup();
    const bodyId = randomUUID();
    const body = app.signature('bi.sum').set({ taskId: bodyId }).toDict();
    await app.sendTask('celery.chord', [], { header: [add(1, 1), add(2, 2)], body }).get({ timeout: 5 });
    expect(await app.asyncResult(bodyId).get({ timeout: 5 })).toBe(6);
  });

  it('celery.chord_unlock waits (retrying) until the group is ready, then calls the callback', async () => {
    const { app } = await setup();
    const members = [app.sendTask('bi.add', [1, 2], {}, { countdown: 1 }), app.sendTask('bi.add', [3, 4])];
    const callbackId = randomUUID();
    const callback = app.signature('bi.sum').set({ taskId: callbackId }).toDict();
    await app.sendTask('celery.chord_unlock', [randomUUID(), callback], { interval: 0.2, result: members.map((member) => member.asTuple()) }).sent;
    expect(await app.asyncResult(callbackId).get({ timeout: 10 })).toBe(10);
  });

  it('celery.chain fails with NotImplementedError, as in Celery', async () => {
    const { app } = await setup();
    const error = await app.sendTask('celery.chain').get({ timeout: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).excType).toBe('NotImplementedError');
  });
});
