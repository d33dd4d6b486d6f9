/**
 * A chord whose header is run by two worker processes, one of which is SIGKILLed while it runs
 * a member: the dead worker's members come back to the other, and the body runs exactly once,
 * with every member's result in order.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, chord } from '../../src/index.js';
import { ROOT, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'chord-tasks.ts');
const MEMBERS = 20;
const MEMBER_MS = 300;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Brokers (and result backends: the same URL) on which a worker is killed mid-chord. */
const TARGETS: Array<{ name: string; broker: () => { url: string; cleanup?: () => void } }> = [
  // A lease whose consumer's pid is gone from this host goes back at the next sweep (1 s).
  { name: 'SQLite', broker: () => tempSqlite() },
  // A dead consumer's messages come back after the visibility timeout, kept short here.
  { name: 'Redis', broker: () => ({ url: 'redis://127.0.0.1:6379/7?visibility_timeout=2' }) },
];

/** The lines of the fixture's run log. */
function logLines(log: string): string[] {
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

/** The members (by index) the log shows starting in process `pid`. */
function membersStartedBy(lines: readonly string[], pid: number): Set<number> {
  const started = lines.map((line) => /^member (\d+) (\d+)$/.exec(line)).filter((match) => match !== null && Number(match[2]) === pid);
  return new Set(started.map((match) => Number(match![1])));
}

describe.each(TARGETS)('a chord whose worker process is killed mid-header on $name', ({ broker }) => {
  it('runs the body exactly once, with every member result, after the dead worker’s members come back', { timeout: 90_000 }, async () => {
    const { url, cleanup } = broker();
    const { dir, cleanup: removeDir } = tempSqlite();
    const queue = `chord-crash-${randomUUID()}`;
    const log = join(dir, 'runs.log');
    writeFileSync(log, '');
    const app = new Celeriac({ broker: url, defaultQueue: queue });
    cleanups.push(removeDir, () => cleanup?.(), () => app.close());
    const spawnWorker = (): WorkerProcess => {
      // prefetch = concurrency: a worker holds only what it runs, so the kill takes members mid-run.
      const worker = startWorkerProcess(url, ['-c', '2', '--prefetch', '2', '-Q', queue], { CHORD_LOG: log }, FIXTURE);
      cleanups.push(async () => {
        if (worker.child.exitCode === null && worker.child.signalCode === null) {
          worker.child.kill('SIGKILL');
          await worker.exited;
        }
      });
      return worker;
    };
    const doomed = spawnWorker();
    const survivor = spawnWorker();
    await Promise.all([doomed.waitFor('ready'), survivor.waitFor('ready')]);

    const header = Array.from({ length: MEMBERS }, (_, i) => app.signature<number>('cx.member', [i, MEMBER_MS]));
    // The body is sent by whichever worker ends the header, from its own app: name the queue.
    const result = chord(header, app.signature<number>('cx.body').set({ queue })).delay();
    await result.sent;
    await until(() => membersStartedBy(logLines(log), doomed.child.pid!).size > 0, 20_000, 'the doomed worker to start a member');
    doomed.child.kill('SIGKILL');
    await doomed.exited;

    expect(await result.get({ timeout: 60 })).toBe(MEMBERS);
    survivor.child.kill('SIGTERM');
    expect(await survivor.exited).toBe(0);

    const lines = logLines(log);
    const bodies = lines.filter((line) => line.startsWith('body '));
    expect(bodies).toEqual([`body ${JSON.stringify(Array.from({ length: MEMBERS }, (_, i) => i))} ${survivor.child.pid}`]);
    // The kill interrupted members: they started on the dead worker and ran again on the other.
    const interrupted = [...membersStartedBy(lines, doomed.child.pid!)].filter((i) => membersStartedBy(lines, survivor.child.pid!).has(i));
    expect(interrupted.length).toBeGreaterThan(0);
    expect(await (await app.broker()).queueLength(queue)).toBe(0);
  });
});
