/**
 * Celery's built-in tasks, registered on every app so a Python producer can send them to a
 * celeriac worker: `celery.map`, `celery.starmap`, `celery.chunks`, `celery.group`,
 * `celery.chord`, `celery.chain`, `celery.accumulate`, `celery.chord_unlock` and
 * `celery.backend_cleanup`. They take their arguments positionally or by keyword, as Celery's do.
 */
import type { Celeriac } from '../app.js';
import { InvalidArguments, NotRegistered } from '../errors.js';
import { checkSignatureDict } from './signature-dict.js';
import type { SignatureDict } from '../protocol/message.js';
import { GroupResult, resultFromTuple, type AsyncResult } from '../result.js';
import { FAILURE, isReady } from '../states.js';
import type { TaskContext } from '../task.js';
import { Continuation } from './continuation.js';
import { Chord, chunks, Group } from './signature.js';

/** Reads argument `index`, or keyword `name` when it was passed by keyword. */
function argument(ctx: TaskContext, args: unknown[], index: number, name: string): unknown {
  return args[index] !== undefined ? args[index] : ctx.kwargs[name];
}

function signatureArgument(ctx: TaskContext, args: unknown[], index: number, name: string): SignatureDict {
  return checkSignatureDict(argument(ctx, args, index, name), `${ctx.name} argument ${JSON.stringify(name)}`);
}

function listArgument(ctx: TaskContext, args: unknown[], index: number, name: string): unknown[] {
  const value = argument(ctx, args, index, name) ?? [];
  if (!Array.isArray(value)) throw new InvalidArguments(`${ctx.name} needs ${JSON.stringify(name)} to be a list`);
  return value;
}

/** Registers the built-in tasks on `app`. */
export function registerBuiltins(app: Celeriac): void {
  /** The handler of a task this worker defines, called in process (map and starmap do so). */
  const localHandler = (dict: SignatureDict): ((ctx: TaskContext, ...args: unknown[]) => unknown) => {
    const task = app.tasks.get(dict.task);
    if (!task) throw new NotRegistered(dict.task);
    return task.handler as (ctx: TaskContext, ...args: unknown[]) => unknown;
  };

  app.task('celery.backend_cleanup', async () => {
    await (await app.backend()).cleanup();
    return null;
  });

  app.task('celery.accumulate', (ctx, ...args: unknown[]) => {
    const index = ctx.kwargs['index'];
    return typeof index === 'number' ? args[index] : args;
  });

  app.task('celery.map', async (ctx, ...args: unknown[]) => {
    const handler = localHandler(signatureArgument(ctx, args, 0, 'task'));
    const results: unknown[] = [];
    for (const item of listArgument(ctx, args, 1, 'it')) results.push(await handler(ctx, item));
    return results;
  });

  app.task('celery.starmap', async (ctx, ...args: unknown[]) => {
    const handler = localHandler(signatureArgument(ctx, args, 0, 'task'));
    const results: unknown[] = [];
    for (const item of listArgument(ctx, args, 1, 'it')) {
      if (!Array.isArray(item)) throw new InvalidArguments(`celery.starmap needs each item to be a list of arguments`);
      results.push(await handler(ctx, ...item));
    }
    return results;
  });

  app.task('celery.chunks', async (ctx, ...args: unknown[]) => {
    const task = app.signatureFromDict(signatureArgument(ctx, args, 0, 'task'));
    const size = argument(ctx, args, 2, 'n');
    if (typeof size !== 'number') throw new InvalidArguments('celery.chunks needs "n", the chunk size');
    const result = chunks(task, listArgument(ctx, args, 1, 'it') as unknown[][], size).applyAsync();
    await Promise.all(result.results.map((member) => member.sent));
    return result.asTuple();
  });

  app.task('celery.group', async (ctx, ...args: unknown[]) => {
    const tasks = listArgument(ctx, args, 0, 'tasks').map((task, i) => app.signatureFromDict(checkSignatureDict(task, `celery.group tasks[${i}]`)));
    const groupId = argument(ctx, args, 2, 'group_id');
    const partial = listArgument(ctx, args, 3, 'partial_args');
    const options = typeof groupId === 'string' ? { task_id: groupId } : {};
    const result = app.applySignature(new Group(tasks, options, app), partial, {}, {}) as GroupResult;
    await Promise.all(result.results.map((member) => member.sent));
    return result.asTuple();
  });

  app.task('celery.chain', () => {
    const error = new Error('chain is not a real task');
    error.name = 'NotImplementedError';
    throw error;
  });

  app.task('celery.chord', async (ctx, ...args: unknown[]) => {
    const headerValue = argument(ctx, args, 0, 'header');
    const headerTasks = Array.isArray(headerValue) ? headerValue : checkSignatureDict(headerValue, 'celery.chord header').kwargs?.['tasks'];
    const header = (Array.isArray(headerTasks) ? headerTasks : []).map((task, i) => app.signatureFromDict(checkSignatureDict(task, `celery.chord header[${i}]`)));
    const body = app.signatureFromDict(signatureArgument(ctx, args, 1, 'body'));
    const result = app.applySignature(new Chord(header, body, {}, app), listArgument(ctx, args, 2, 'partial_args'), {}, {}) as AsyncResult<unknown>;
    await result.sent;
    return result.asTuple();
  });

  app.task(
    'celery.chord_unlock',
    async (ctx, ...args: unknown[]) => {
      const groupId = argument(ctx, args, 0, 'group_id');
      const callback = signatureArgument(ctx, args, 1, 'callback');
      const interval = argument(ctx, args, 2, 'interval');
      const members = listArgument(ctx, args, 4, 'result')
        .map((tuple) => resultFromTuple(tuple, app))
        .filter((member): member is AsyncResult<unknown> => member !== null && !(member instanceof GroupResult));
      const metas = await Promise.all(members.map((member) => member.info()));
      if (!metas.every((meta) => meta !== null && isReady(meta.status))) {
        ctx.retry({ countdown: typeof interval === 'number' ? interval : 1 });
      }
      const backend = await app.backend();
      const continuation = new Continuation(app, backend, { hostname: app.origin, queue: '' });
      await continuation.completeChord(
        callback,
        metas.map((meta, index) => ({ groupId: String(groupId), taskId: members[index]!.id, groupIndex: index, state: meta?.status ?? FAILURE, result: meta?.result })),
      );
      return null;
    },
    { maxRetries: null, defaultRetryDelay: 1, ignoreResult: true },
  );
}
