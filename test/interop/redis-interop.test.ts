/**
 * Interop with real Python Celery (Debian's python3-celery, /usr/bin/python3) over one Redis:
 * each side calls the other's tasks and reads the results, and a Python and a TypeScript worker
 * share one queue without losing a task.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Celeriac, createLogger, gather, type Worker } from '../../src/index.js';

const REDIS = 'redis://127.0.0.1:6379/6';
const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));
const env = { ...process.env, CELERIAC_TEST_REDIS: REDIS };
const quiet = createLogger('critical');

const children: ChildProcess[] = [];
const closers: Array<() => Promise<unknown>> = [];

/** Starts a Python Celery worker on `queue`; resolves once it logs that it is ready. */
function pythonWorker(queue: string): Promise<ChildProcess> {
  const child = spawn('/usr/bin/python3', ['-m', 'celery', '-A', 'redis_tasks', 'worker', '--pool=solo', '-Q', queue, '--without-mingle', '--without-gossip', '--without-heartbeat', '-l', 'info'], {
    cwd: PYTHON_DIR,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Python worker not ready in 30 s:\n${log}`)), 30_000);
    const watch = (chunk: Buffer): void => {
      log += chunk.toString();
      if (/ready\./.test(log)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', watch);
    child.stderr!.on('data', watch);
  });
}

function app(): Celeriac {
  const celeriac = new Celeriac({ broker: REDIS, backend: REDIS });
  closers.push(() => celeriac.close());
  return celeriac;
}

async function tsWorker(celeriac: Celeriac, queue: string): Promise<Worker> {
  const worker = celeriac.worker({ queues: [queue], logger: quiet, concurrency: 10 });
  await worker.start();
  closers.unshift(() => worker.stop(1));
  return worker;
}

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
});

describe('TypeScript and Python Celery on one Redis', () => {
  it('a TypeScript producer calls a Python task and gets its result', async () => {
    const queue = `interop-py-${randomUUID()}`;
    await pythonWorker(queue);
    const celeriac = app();
    const product = celeriac.sendTask<number>('py.mul', [6, 7], {}, { queue });
    expect(await product.get({ timeout: 30 })).toBe(42);
    const info = await product.info();
    expect(info?.status).toBe('SUCCESS');
  });

  it('a Python producer calls TypeScript tasks: values come back, failures re-raise', async () => {
    const queue = `interop-ts-${randomUUID()}`;
    const celeriac = app();
    celeriac.task('ts.add', (_ctx, a: number, b: number) => a + b, { params: ['a', 'b'] });
    celeriac.task('ts.fail', (_ctx, why: string) => {
      throw new TypeError(`refused: ${why}`);
    });
    await tsWorker(celeriac, queue);
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('/usr/bin/python3', ['redis_tasks.py', queue], { cwd: PYTHON_DIR, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('exit', (status) => resolve({ status, stdout, stderr }));
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual(['5', '15', 'TypeError refused: bad input']);
  });

  it('a Python and a TypeScript worker share one queue without losing a task', async () => {
    const queue = `interop-shared-${randomUUID()}`;
    await pythonWorker(queue);
    const celeriac = app();
    celeriac.task('shared.echo', (_ctx, value: number) => value);
    await tsWorker(celeriac, queue);
    const results = Array.from({ length: 200 }, (_, i) => celeriac.sendTask<number>('shared.echo', [i], {}, { queue }));
    expect(await gather(results, { timeout: 60 })).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const metas = await Promise.all(results.map((r) => r.info()));
    const byTs = metas.filter((m) => m?.worker).length;
    expect(byTs).toBeGreaterThan(0); // celeriac stores its node name; Python (no result_extended) does not
    expect(byTs).toBeLessThan(200);
  });
});

// The Python side must be importable, or every test above is meaningless.
it('has Python Celery installed for the interop tests', () => {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import celery, redis; print(celery.__version__)'], { encoding: 'utf8' });
  expect(probe.status).toBe(0);
});
