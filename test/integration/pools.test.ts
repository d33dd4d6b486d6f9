/**
 * The worker's pools, as users run them: `celeriac worker -P event|threads|processes` in its
 * own process on the TypeScript fixture module (no build step), driven from this process over
 * SQLite. The same scenarios run on every pool; then what only threads and processes can do:
 * stop a busy loop, survive a dying slot, replace slots, grow and shrink, and queue short runs
 * in a slot (started, limited, cancelled and given back run by run).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, gather, type AsyncResult } from '../../src/index.js';
import { parseIsoDate } from '../../src/protocol/kombu-json.js';
import { ROOT, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const POOL_TASKS = join(ROOT, 'test', 'fixtures', 'pool-tasks.ts');
const WAIT = { timeout: 20 };

interface Where {
  pid: number;
  thread: number;
}

/** A SQLite broker, an app sending to it, and worker processes on it (killed after each test). */
function harness(): { app: Celeriac; url: string; start(args: string[]): Promise<WorkerProcess>; close(): Promise<void> } {
  const sqlite = tempSqlite();
  const app = new Celeriac({ broker: sqlite.url });
  const workers: WorkerProcess[] = [];
  return {
    app,
    url: sqlite.url,
    async start(args) {
      const worker = startWorkerProcess(sqlite.url, args, {}, POOL_TASKS);
      workers.push(worker);
      await worker.waitFor('ready; consuming');
      return worker;
    },
    async close() {
      for (const worker of workers) {
        if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
        await worker.exited;
      }
      await app.close();
      sqlite.cleanup();
    },
  };
}

function send<R>(app: Celeriac, name: string, args: unknown[] = [], options: Parameters<Celeriac['sendTask']>[3] = {}): AsyncResult<R> {
  return app.sendTask<R>(name, args, {}, options);
}

describe.each(['event', 'threads', 'processes'] as const)('the %s pool', (pool) => {
  const h = harness();
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await h.start(['-P', pool, '-c', '2']);
  });
  afterAll(() => h.close());

  it('runs a task and stores its result', async () => {
    expect(await send<number>(h.app, 'pool.add', [2, 3]).get(WAIT)).toBe(5);
  });

  it('runs tasks off the worker process only outside the event pool', async () => {
    const where = await send<Where>(h.app, 'pool.where').get(WAIT);
    const inWorker = where.pid === worker.child.pid && where.thread === 0;
    expect(inWorker).toBe(pool === 'event');
  });

  it('stores a failure in Celery form with the stack of the thrown error', async () => {
    const result = send(h.app, 'pool.fail', ['bad input']);
    await expect(result.get(WAIT)).rejects.toThrow('ValueError: bad input');
    const meta = await result.info();
    expect(meta?.result).toEqual({ exc_type: 'ValueError', exc_message: ['bad input'], exc_module: 'builtins' });
    expect(meta?.traceback).toMatch(/RangeError: bad input\n\s+at .*pool-tasks/);
  });

  it('retries a task that asks to', async () => {
    expect(await send<number>(h.app, 'pool.retry-once').get(WAIT)).toBe(1);
  });

  it('reports progress and forwards the task log to the worker', async () => {
    const result = send<number>(h.app, 'pool.progress', [3]);
    await until(async () => (await result.state()) === 'PROGRESS', 10_000, 'PROGRESS stored');
    expect((await result.info())?.result).toMatchObject({ total: 3 });
    expect(await result.get(WAIT)).toBe(3);
    await worker.waitFor(new RegExp(`pool\\.progress\\[${result.id}\\] progress step=3`));
  });

  it('records tasks sent from inside a task as its children', async () => {
    const result = send<number>(h.app, 'pool.parent', [2]);
    expect(await result.get(WAIT)).toBe(2);
    const children = (await result.children()) as AsyncResult<number>[];
    expect(children).toHaveLength(2);
    expect(await gather(children, WAIT)).toEqual([0, 2]);
  });

  it('holds an ETA task until it is due', async () => {
    const eta = new Date(Date.now() + 1_200);
    const result = send<number>(h.app, 'pool.add', [1, 1], { eta });
    expect(await result.get(WAIT)).toBe(2);
    expect(parseIsoDate((await result.info())!.date_done!)!.getTime()).toBeGreaterThanOrEqual(eta.getTime());
  });

  it('honours a revoke sent before the task runs', async () => {
    const result = send(h.app, 'pool.add', [1, 2], { countdown: 1 });
    await result.revoke();
    await expect(result.get(WAIT)).rejects.toThrow(/revoked/);
  });

  it('fails a task whose result has no JSON form with EncodeError, and goes on', async () => {
    await expect(send(h.app, 'pool.cyclic').get(WAIT)).rejects.toThrow(/EncodeError: the result .*cannot be encoded as JSON/);
    expect(await send<number>(h.app, 'pool.add', [4, 4]).get(WAIT)).toBe(8);
  });
});

describe.each(['threads', 'processes'] as const)('the %s pool stops what the event loop cannot', (pool) => {
  let h: ReturnType<typeof harness>;
  afterEach(() => h.close());

  it('kills a busy loop at its hard time limit, and the slot runs the next task at once', async () => {
    h = harness();
    await h.start(['-P', pool, '-c', '1']);
    const started = Date.now();
    const spinning = send(h.app, 'pool.spin', [20_000], { timeLimit: 1 });
    const next = send<number>(h.app, 'pool.add', [1, 2]);
    await expect(spinning.get(WAIT)).rejects.toThrow(/TimeLimitExceeded/);
    expect(await next.get(WAIT)).toBe(3);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('fires the signal inside the slot at the soft time limit', async () => {
    h = harness();
    await h.start(['-P', pool, '-c', '1']);
    const started = Date.now();
    await expect(send(h.app, 'pool.sleep', [20_000], { softTimeLimit: 0.5 }).get(WAIT)).rejects.toThrow(/abort/i);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('kills the slot running a task revoked with terminate, and replaces it', async () => {
    h = harness();
    await h.start(['-P', pool, '-c', '1']);
    const before = await send<Where>(h.app, 'pool.where').get(WAIT);
    const sleeping = send(h.app, 'pool.spin', [20_000]);
    await new Promise((resolve) => setTimeout(resolve, 800)); // fixed wait: the spin must be running before it is revoked; no event reaches this process
    const revokedAt = Date.now();
    await sleeping.revoke({ terminate: true });
    await expect(sleeping.get(WAIT)).rejects.toThrow(/terminated/);
    expect(Date.now() - revokedAt).toBeLessThan(5_000); // the 20 s spin was stopped, not waited for
    const after = await send<Where>(h.app, 'pool.where').get(WAIT);
    expect(pool === 'processes' ? after.pid : after.thread).not.toBe(pool === 'processes' ? before.pid : before.thread);
  });

  it('fails the task of a slot that exits with WorkerLostError, replaces the slot and goes on', async () => {
    h = harness();
    const worker = await h.start(['-P', pool, '-c', '1']);
    await expect(send(h.app, 'pool.exit', [3]).get(WAIT)).rejects.toThrow(/WorkerLostError: .*exited prematurely \(exit code 3\)/);
    expect(await send<number>(h.app, 'pool.add', [2, 2]).get(WAIT)).toBe(4);
    const crashed = /WorkerLostError: .*exited prematurely \((an uncaught Error: boom|exit code 1)\)/;
    await expect(send(h.app, 'pool.crash', ['boom']).get(WAIT)).rejects.toThrow(crashed);
    expect(await send<number>(h.app, 'pool.add', [3, 3]).get(WAIT)).toBe(6);
    expect(worker.child.exitCode).toBeNull();
  });

  it('hands a task whose slot died back to the queue with rejectOnWorkerLost, and it runs again', async () => {
    h = harness();
    await h.start(['-P', pool, '-c', '1']);
    const marker = join(tmpdir(), `celeriac-pool-${randomUUID()}`);
    expect(await send<string>(h.app, 'pool.exit-once', [marker]).get(WAIT)).toBe('ran again');
    expect(existsSync(marker)).toBe(true);
  });

  it('replaces a slot after --max-tasks-per-child tasks', async () => {
    h = harness();
    await h.start(['-P', pool, '-c', '1', '--max-tasks-per-child', '2']);
    const seen: Where[] = [];
    for (let i = 0; i < 4; i++) seen.push(await send<Where>(h.app, 'pool.where').get(WAIT));
    const slot = (where: Where): number => (pool === 'processes' ? where.pid : where.thread);
    expect(slot(seen[0]!)).toBe(slot(seen[1]!));
    expect(slot(seen[2]!)).toBe(slot(seen[3]!));
    expect(slot(seen[2]!)).not.toBe(slot(seen[1]!));
  });

  it('replaces a slot after a task left it above --max-memory-per-child', async () => {
    h = harness();
    const worker = await h.start(['-P', pool, '-c', '1', '--max-memory-per-child', String(150 * 1024)]);
    const slot = (where: Where): number => (pool === 'processes' ? where.pid : where.thread);
    const small = await send<Where>(h.app, 'pool.grow', [1]).get(WAIT);
    expect(slot(await send<Where>(h.app, 'pool.where').get(WAIT))).toBe(slot(small)); // under the limit: kept
    const big = await send<Where>(h.app, 'pool.grow', [200]).get(WAIT);
    expect(slot(big)).toBe(slot(small));
    expect(slot(await send<Where>(h.app, 'pool.where').get(WAIT))).not.toBe(slot(big));
    await worker.waitFor(/max memory per child/);
  });

  it('grows with --autoscale while tasks wait, and shrinks back when idle', async () => {
    h = harness();
    const worker = await h.start(['-P', pool, '--autoscale', '3,1', '--autoscale-idle', '1']);
    const started = Date.now();
    const sleepers = [1, 2, 3].map(() => send<number>(h.app, 'pool.sleep', [1_500]));
    await gather(sleepers, WAIT);
    expect(Date.now() - started).toBeLessThan(4_400); // three at once, not one after another
    await worker.waitFor(`the ${pool} pool grows to`);
    await worker.waitFor(`the ${pool} pool shrinks to 1`, 10_000);
  });
});

describe.each(['threads', 'processes'] as const)('the %s pool queues runs in a slot while tasks are short', (pool) => {
  let h: ReturnType<typeof harness>;
  afterEach(() => h.close());

  /** A worker of one slot that has run enough quick tasks to hand that slot several runs at once. */
  async function warmWorker(): Promise<WorkerProcess> {
    h = harness();
    const worker = await h.start(['-P', pool, '-c', '1', '--prefetch', '8']);
    await gather(Array.from({ length: 40 }, () => send<number>(h.app, 'pool.add', [1, 1])), WAIT);
    return worker;
  }

  const slot = (where: Where): number => (pool === 'processes' ? where.pid : where.thread);

  it('counts the hard time limit of a queued run from its start', async () => {
    await warmWorker();
    const sleepers = [1, 2, 3].map(() => send<number>(h.app, 'pool.sleep', [600], { timeLimit: 1 }));
    expect(await gather(sleepers, WAIT)).toEqual([600, 600, 600]);
  });

  it('stores STARTED for a queued run when it starts, not when its slot was handed it', async () => {
    await warmWorker();
    const [first, second] = [1, 2].map(() => send<number>(h.app, 'pool.sleep-tracked', [1_000]));
    await until(async () => (await first!.state()) === 'STARTED', 10_000, 'the first run STARTED');
    await new Promise((resolve) => setTimeout(resolve, 300)); // fixed wait: the second run reaches the slot meanwhile; no event reaches this process
    expect(await second!.state()).toBe('PENDING');
    await until(async () => (await second!.state()) === 'STARTED', 10_000, 'the second run STARTED');
    expect(await gather([first!, second!], WAIT)).toEqual([1_000, 1_000]);
  });

  it('cancels a queued run revoked with terminate in its slot, which goes on running the task ahead of it', async () => {
    await warmWorker();
    const before = await send<Where>(h.app, 'pool.where').get(WAIT);
    const running = send<number>(h.app, 'pool.sleep-tracked', [1_500]);
    const queued = send<number>(h.app, 'pool.add', [1, 2]);
    await until(async () => (await running.state()) === 'STARTED', 10_000, 'the first run STARTED');
    await new Promise((resolve) => setTimeout(resolve, 300)); // fixed wait: the queued run reaches the slot meanwhile
    await queued.revoke({ terminate: true });
    await expect(queued.get(WAIT)).rejects.toThrow(/terminated/);
    expect(await queued.state()).toBe('REVOKED');
    expect(await running.get(WAIT)).toBe(1_500); // its slot was not killed
    expect(slot(await send<Where>(h.app, 'pool.where').get(WAIT))).toBe(slot(before));
  });

  it('takes 4 x the runs its slots hold ahead when no prefetch is given, and keeps a prefetch given', async () => {
    const prefetchOf = async (): Promise<number> => {
      const replies = Object.values(await h.app.control.inspect({ timeout: 2, limit: 1 }).stats()) as Array<{ prefetch_count: number }>;
      return replies[0]!.prefetch_count;
    };
    await warmWorker(); // --prefetch 8
    expect(await prefetchOf()).toBe(8);
    await h.close();
    h = harness();
    await h.start(['-P', pool, '-c', '1']);
    expect(await prefetchOf()).toBe(4);
    await gather(Array.from({ length: 40 }, () => send<number>(h.app, 'pool.add', [1, 1])), WAIT);
    await until(async () => (await prefetchOf()) > 4, 5_000, 'the prefetch to follow the runs the slot holds');
  });

  it('runs the queued runs of a slot that died in another slot, without failing them', async () => {
    await warmWorker();
    const dying = send(h.app, 'pool.exit', [3]);
    const queued = [1, 2, 3].map((n) => send<number>(h.app, 'pool.add', [n, n]));
    await expect(dying.get(WAIT)).rejects.toThrow(/WorkerLostError: .*exited prematurely \(exit code 3\)/);
    expect(await gather(queued, WAIT)).toEqual([2, 4, 6]);
  });
});

describe('per-task placement (runIn)', () => {
  it("runs a runIn: 'process' task in a child while the event loop keeps serving", async () => {
    const h = harness();
    try {
      const worker = await h.start(['-c', '4']);
      const cpu = send<{ pid: number }>(h.app, 'pool.spin-in-process', [2_000]);
      await new Promise((resolve) => setTimeout(resolve, 300)); // fixed wait: lets the spin start before the quick task is sent
      const started = Date.now();
      expect(await send<number>(h.app, 'pool.add', [1, 1]).get(WAIT)).toBe(2);
      expect(Date.now() - started).toBeLessThan(1_000);
      expect((await cpu.get(WAIT)).pid).not.toBe(worker.child.pid);
    } finally {
      await h.close();
    }
  });
});

describe('a pool without its module', () => {
  it('refuses to start, saying how to name the module', async () => {
    const app = new Celeriac({ broker: `memory://${randomUUID()}` });
    app.task('cpu', () => 1, { runIn: 'process' });
    await expect(app.worker().start()).rejects.toThrow(/processes pool \(for cpu\) loads the app's module .*module: import\.meta\.url/);
    await expect(app.worker({ pool: 'threads' }).start()).rejects.toThrow(/threads pool loads the app's module/);
    await app.close();
  });
});
