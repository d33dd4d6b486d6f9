/**
 * A task that blocks its worker's event loop (a synchronous busy loop) for several times the
 * broker's lease or heartbeat window runs exactly once, while a second worker consumes the same
 * queue: leases, consumer heartbeats and AMQP heartbeats are renewed by threads a task cannot
 * block. The windows are shortened by URL options; the block is the task's own (a spin), so the
 * test waits for it rather than sleeping.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac } from '../../src/index.js';
import { deleteAmqpQueues } from '../helpers/amqp.js';
import { ROOT, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const TASKS = join(ROOT, 'test', 'fixtures', 'blocking-tasks.ts');
/** How long the task blocks the loop: eight times the shortest window below. */
const BLOCK_MS = 8_000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Target {
  name: string;
  /** The broker URL with its windows shortened. */
  broker: (dir: string) => string;
  /** Readies the broker before a run. */
  prepare?: () => Promise<void>;
}

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672//';

/** A database of this file's own: a restore mutex another run left held would hide a second run. */
const REDIS_DB = 4;

const TARGETS: Target[] = [
  // Consumer heartbeat older than 1 s: lost; message leases of 2 s.
  { name: 'SQLite', broker: (dir) => `sqlite://${join(dir, 'broker.db')}?consumer_timeout=1&visibility_timeout=2` },
  // A consumer lease of 1 s; kombu's visibility restore after 2 s.
  {
    name: 'Redis',
    broker: () => `redis://127.0.0.1:6379/${REDIS_DB}?consumer_timeout=1&visibility_timeout=2`,
    async prepare() {
      const redis = new Redis({ host: '127.0.0.1', port: 6379, db: REDIS_DB });
      await redis.flushdb();
      redis.disconnect();
    },
  },
  // Heartbeats every second: RabbitMQ drops a connection silent for about two.
  { name: 'RabbitMQ', broker: () => `${AMQP_URL}?heartbeat=1` },
];

/**
 * Runs the blocking task on a first worker, starts a second on the same queue while the first is
 * blocked, and returns the runs recorded (`label pid` per run) once the task has finished.
 */
async function runBlockedTask(broker: string, dir: string): Promise<{ runs: string[]; first: WorkerProcess; second: WorkerProcess }> {
  const queue = `blocked-${randomUUID()}`;
  if (broker.startsWith('amqp')) cleanups.push(() => deleteAmqpQueues(AMQP_URL, [queue]));
  const backend = `sqlite://${join(dir, 'results.db')}`;
  const log = join(dir, 'runs.log');
  writeFileSync(log, '');
  const app = new Celeriac({ broker, backend });
  cleanups.push(() => app.close());
  const spawn = (): WorkerProcess => {
    const worker = startWorkerProcess(broker, ['-c', '1', '-Q', queue, '--backend', backend, '-l', 'info'], { FIXTURE_LOG: log }, TASKS);
    cleanups.push(async () => {
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
    });
    return worker;
  };
  const runs = (): string[] => readFileSync(log, 'utf8').split('\n').filter(Boolean);

  const first = spawn();
  await first.waitFor('ready');
  const result = app.sendTask<string>('fx.blocking.spin', ['once', BLOCK_MS], {}, { queue });
  await until(() => runs().length > 0, 20_000, 'the first worker to start the task');
  const second = spawn();
  await second.waitFor('ready');
  expect(await result.get({ timeout: 60 })).toBe('once');
  // A second run would have started while the first worker was blocked, long before now; the
  // second worker gets a moment more to show one.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  return { runs: runs(), first, second };
}

describe.each(TARGETS)('a task blocking the event loop on $name', ({ broker, prepare }) => {
  it('runs exactly once while another worker consumes the same queue', async () => {
    await prepare?.();
    const { dir, cleanup } = tempSqlite();
    cleanups.push(cleanup);
    const { runs, first, second } = await runBlockedTask(broker(dir), dir);
    expect(runs, `first worker:\n${first.log()}\nsecond worker:\n${second.log()}`).toEqual([`once ${first.child.pid}`]);
  }, 90_000);
});

describe('a task blocking the event loop on RabbitMQ without the heartbeat relay', () => {
  it('runs twice: RabbitMQ drops the silent connection and requeues the task (the failure the relay prevents)', async () => {
    const { dir, cleanup } = tempSqlite();
    cleanups.push(cleanup);
    const { runs, first, second } = await runBlockedTask(`${AMQP_URL}?heartbeat=1&heartbeat_relay=off`, dir);
    expect(runs).toEqual([`once ${first.child.pid}`, `once ${second.child.pid}`]);
  }, 90_000);
});
