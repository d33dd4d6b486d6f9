/**
 * A global rate limit shared by three worker processes, kept by the broker (Redis, SQLite):
 * over ten seconds the fleet runs at the limit, not three times it. A worker limit holds one
 * worker process to its rate.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Celeriac, gather } from '../../src/index.js';
import { ROOT, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';

const RATE_TASKS = join(ROOT, 'test', 'fixtures', 'rate-tasks.ts');

/** Runs per second between the first and the last start. */
function rateOf(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return ((sorted.length - 1) / (sorted.at(-1)! - sorted[0]!)) * 1000;
}

async function measure(url: string, task: string, count: number, workerCount = 3): Promise<number> {
  const app = new Celeriac({ broker: url });
  const workers: WorkerProcess[] = [];
  try {
    const queue = `rate-${randomUUID()}`;
    for (let i = 0; i < workerCount; i++) workers.push(startWorkerProcess(url, ['-Q', queue, '-c', '4'], {}, RATE_TASKS));
    await Promise.all(workers.map((worker) => worker.waitFor('ready; consuming')));
    const started = await gather(
      Array.from({ length: count }, () => app.sendTask<number>(task, [], {}, { queue })),
      { timeout: 60 },
    );
    return rateOf(started);
  } finally {
    for (const worker of workers) worker.child.kill('SIGKILL');
    await Promise.all(workers.map((worker) => worker.exited));
    await app.close();
  }
}

const BROKERS: Array<{ name: string; url: () => { url: string; cleanup?: () => void } }> = [
  { name: 'Redis', url: () => ({ url: 'redis://127.0.0.1:6379/6' }) },
  { name: 'SQLite', url: () => tempSqlite() },
];

describe.each(BROKERS)('a global rate limit on $name', ({ url: makeUrl }) => {
  it('holds three worker processes together to 10/s over ten seconds (within 10%)', async () => {
    const { url, cleanup } = makeUrl();
    try {
      const rate = await measure(url, 'rate.global', 101);
      expect(rate).toBeGreaterThan(9);
      expect(rate).toBeLessThan(11);
    } finally {
      cleanup?.();
    }
  }, 60_000);
});

describe('a worker rate limit', () => {
  it('spaces one worker process at its rate over ten seconds (within 10%)', async () => {
    const { url, cleanup } = tempSqlite();
    try {
      const rate = await measure(url, 'rate.local', 101, 1);
      expect(rate).toBeGreaterThan(9);
      expect(rate).toBeLessThan(11);
    } finally {
      cleanup();
    }
  }, 60_000);
});
