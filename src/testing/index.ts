/**
 * Helpers for testing one's own tasks, from `celeriac/testing`:
 *
 * ```ts
 * import { startTestWorker } from 'celeriac/testing';
 * import { app, add } from './tasks.js';
 *
 * test('add', async () => {
 *   await using worker = await startTestWorker(app); // in-memory broker and results
 *   expect(await add.delay(2, 3)).toBe(5);
 * });
 * ```
 *
 * For calls that run at once with no worker to start, make the app eager instead:
 * `app.configure({ eager: true })`.
 */
import { randomUUID } from 'node:crypto';
import type { Celeriac } from '../app.js';
import { TimeoutError } from '../errors.js';
import { createLogger } from '../logger.js';
import type { WorkerSettings } from '../worker/options.js';
import type { Worker } from '../worker/worker.js';

/** A worker started for a test. `await using` stops it and closes the app at the end of the block. */
export interface TestWorker extends AsyncDisposable {
  readonly worker: Worker;
  /**
   * Resolves once no task waits in the worker's queues and none is running or being recorded
   * (tasks that send tasks are followed until everything they started has run).
   */
  untilIdle(timeoutSeconds?: number): Promise<void>;
  /** Stops the worker and closes the app. */
  stop(): Promise<void>;
}

/**
 * Starts a worker for `app`'s tasks in this process. An app not yet connected is first pointed
 * at a fresh in-memory broker and result store, so tests need nothing running and never share
 * state; a connected app keeps its broker. Logs are silent unless `options.logger` says otherwise.
 */
export async function startTestWorker(app: Celeriac, options: WorkerSettings = {}): Promise<TestWorker> {
  const memory = `memory://test-${randomUUID()}`;
  try {
    app.configure({ broker: memory, backend: memory });
  } catch {
    // Already connected: test against the broker it has.
  }
  const worker = app.worker({ logger: createLogger('critical'), ...options });
  await worker.start();
  const stop = async (): Promise<void> => {
    await worker.stop(1);
    await app.close();
  };
  return {
    worker,
    untilIdle: (timeoutSeconds = 30) => untilIdle(app, worker, timeoutSeconds),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Polls until the worker's queues are empty and the worker idle, twice in a row. */
async function untilIdle(app: Celeriac, worker: Worker, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const broker = await app.broker();
  let quietChecks = 0;
  while (quietChecks < 2) {
    const waiting = await Promise.all(worker.options.queues.map((queue) => broker.queueLength(queue)));
    quietChecks = worker.idle && waiting.every((length) => length === 0) ? quietChecks + 1 : 0;
    if (Date.now() > deadline) throw new TimeoutError(`the worker was not idle within ${timeoutSeconds}s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
