/** The short-lived CLI commands: call, result, revoke, purge, queues. */
import { createInterface } from 'node:readline/promises';
import type { Celeriac } from '../app.js';
import type { ApplyOptions } from '../task.js';
import { isReady, SUCCESS } from '../states.js';
import { loadApp, type AppOptions } from './load-app.js';

/** Runs `fn` with the app and always closes its connections. */
export async function withApp<T>(options: AppOptions, fn: (app: Celeriac) => Promise<T>): Promise<T> {
  const app = await loadApp(options);
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}

interface CallOptions extends AppOptions {
  kwargs?: Record<string, unknown>;
  countdown?: number;
  eta?: Date;
  expires?: number;
  queue?: string;
  priority?: number;
  wait?: boolean;
  timeout?: number;
}

/** `celeriac call <task> [args]`: sends a task; prints its id, or its result with --wait. */
export async function runCall(task: string, args: unknown[], options: CallOptions): Promise<void> {
  await withApp(options, async (app) => {
    const apply: ApplyOptions = {};
    if (options.countdown !== undefined) apply.countdown = options.countdown;
    if (options.eta) apply.eta = options.eta;
    if (options.expires !== undefined) apply.expires = options.expires;
    if (options.queue) apply.queue = options.queue;
    if (options.priority !== undefined) apply.priority = options.priority;
    const result = app.sendTask(task, args, options.kwargs ?? {}, apply);
    await result.sent;
    if (!options.wait) {
      process.stdout.write(`${result.id}\n`);
      return;
    }
    process.stderr.write(`sent ${task}[${result.id}]; waiting for the result...\n`);
    const value = await result.get(options.timeout === undefined ? {} : { timeout: options.timeout });
    process.stdout.write(`${JSON.stringify(value)}\n`);
  });
}

/** `celeriac result <id>`: prints a task's state and result. */
export async function runResult(taskId: string, options: AppOptions & { wait?: boolean; timeout?: number }): Promise<void> {
  await withApp(options, async (app) => {
    const result = app.asyncResult(taskId);
    if (options.wait) await result.get({ propagate: false, ...(options.timeout === undefined ? {} : { timeout: options.timeout }) });
    const meta = await result.info();
    if (!meta) {
      process.stdout.write(`state: PENDING (nothing stored for ${taskId} yet: unknown, not started, or expired)\n`);
      return;
    }
    process.stdout.write(`state: ${meta.status}\n`);
    if (meta.name) process.stdout.write(`task: ${meta.name}\n`);
    if (meta.date_done) process.stdout.write(`done: ${meta.date_done}\n`);
    process.stdout.write(`result: ${JSON.stringify(meta.result)}\n`);
    if (meta.traceback) process.stdout.write(`traceback:\n${meta.traceback}\n`);
    if (isReady(meta.status) && meta.status !== SUCCESS) process.exitCode = 1;
  });
}

/** `celeriac revoke <ids...>`: broadcasts a revoke. */
export async function runRevoke(taskIds: string[], options: AppOptions & { terminate?: boolean }): Promise<void> {
  await withApp(options, async (app) => {
    await app.revoke(taskIds, { terminate: options.terminate ?? false });
    process.stdout.write(`revoked ${taskIds.length} task${taskIds.length === 1 ? '' : 's'}${options.terminate ? ' (terminate)' : ''}\n`);
  });
}

/** `celeriac purge`: empties queues, after confirmation on a terminal. */
export async function runPurge(options: AppOptions & { queues?: string[]; force?: boolean }): Promise<void> {
  await withApp(options, async (app) => {
    const queues = options.queues ?? [app.defaultQueue];
    if (!options.force) {
      if (!process.stdin.isTTY) throw new Error('refusing to purge without confirmation; pass --force');
      const prompt = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await prompt.question(`Delete every waiting message in ${queues.join(', ')}? [y/N] `);
      prompt.close();
      if (!/^y(es)?$/i.test(answer.trim())) {
        process.stderr.write('nothing purged\n');
        return;
      }
    }
    const broker = await app.broker();
    for (const queue of queues) {
      const removed = await broker.purge(queue);
      process.stdout.write(`purged ${removed} message${removed === 1 ? '' : 's'} from ${queue}\n`);
    }
  });
}

/** `celeriac queues`: prints waiting messages per queue. */
export async function runQueues(options: AppOptions & { queues?: string[] }): Promise<void> {
  await withApp(options, async (app) => {
    const broker = await app.broker();
    const queues = options.queues ?? (await broker.listQueues?.()) ?? [app.defaultQueue];
    if (queues.length === 0) {
      process.stdout.write(`no queues yet on ${broker.displayUrl}\n`);
      return;
    }
    const lengths = await Promise.all(queues.map((queue) => broker.queueLength(queue)));
    const width = Math.max(5, ...queues.map((queue) => queue.length));
    process.stdout.write(`${'queue'.padEnd(width)}  waiting\n`);
    queues.forEach((queue, i) => process.stdout.write(`${queue.padEnd(width)}  ${lengths[i]}\n`));
  });
}
