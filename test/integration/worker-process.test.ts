/**
 * Real worker processes: results across processes, at-least-once
 * delivery through a SIGKILL, warm and cold shutdown, and the CLI around them.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Celeriac, gather } from '../../src/index.js';
import { ROOT, runCli, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setup(): { url: string; dir: string; app: Celeriac; spawnWorker: (args?: string[], env?: NodeJS.ProcessEnv, tasksModule?: string) => WorkerProcess } {
  const sqlite = tempSqlite();
  const app = new Celeriac({ broker: sqlite.url });
  cleanups.push(sqlite.cleanup, () => app.close());
  const spawnWorker = (args: string[] = [], env: NodeJS.ProcessEnv = {}, tasksModule?: string): WorkerProcess => {
    const worker = startWorkerProcess(sqlite.url, args, env, tasksModule);
    cleanups.push(async () => {
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
    });
    return worker;
  };
  return { url: sqlite.url, dir: sqlite.dir, app, spawnWorker };
}

describe('a worker process on the SQLite broker', () => {
  it('runs tasks sent from another process and stores their results', async () => {
    const { app, spawnWorker } = setup();
    spawnWorker(['-c', '4']);
    const sums = Array.from({ length: 20 }, (_, i) => app.sendTask<number>('fx.add', [i, i]));
    expect(await gather(sums, { timeout: 20 })).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i));
    await expect(app.sendTask('fx.fail').get({ timeout: 10 })).rejects.toThrow(/fixture failure/);
  });

  it('warm shutdown finishes running tasks; a second signal stops at once and the broker redelivers', async () => {
    const { app, spawnWorker } = setup();
    const warm = spawnWorker(['-c', '1', '-l', 'info']);
    await warm.waitFor('ready');
    const running = app.sendTask<number>('fx.sleep', [600]);
    await running.sent;
    await until(async () => (await app.broker().then((b) => b.queueLength('celery'))) === 0, 10_000, 'the task to be taken');
    warm.child.kill('SIGTERM');
    expect(await warm.exited).toBe(0);
    expect(await running.get({ timeout: 1 })).toBe(600);
    expect(warm.log()).toMatch(/warm shutdown/);

    const cold = spawnWorker(['-c', '1', '-l', 'info']);
    await cold.waitFor('ready');
    const interrupted = app.sendTask<number>('fx.sleep', [5000]);
    await interrupted.sent;
    await until(async () => (await app.broker().then((b) => b.queueLength('celery'))) === 0, 10_000, 'the task to be taken');
    cold.child.kill('SIGTERM');
    await cold.waitFor('warm shutdown');
    cold.child.kill('SIGTERM');
    expect(await cold.exited).toBe(1);
    expect(cold.log()).toMatch(/cold shutdown/);
    spawnWorker(['-c', '1']);
    expect(await interrupted.get({ timeout: 30 })).toBe(5000);
  });

  it('starts several workers at once on a new SQLite file', async () => {
    for (let round = 0; round < 3; round++) {
      const { spawnWorker } = setup();
      const workers = Array.from({ length: 4 }, () => spawnWorker());
      await Promise.all(workers.map((worker) => worker.waitFor('ready')));
    }
  });

  it('exits after a warm shutdown even when the task module keeps a handle open', async () => {
    const { app, spawnWorker } = setup();
    const worker = spawnWorker([], {}, join(ROOT, 'test', 'fixtures', 'tasks-with-handle.ts'));
    expect(await app.sendTask<number>('fx.handle.add', [2, 3]).get({ timeout: 20 })).toBe(5);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });
});

describe('the celeriac CLI', () => {
  it('compiles a TypeScript task module beside it and removes the output; a syntax error names its line', () => {
    const { dir, url } = tempSqlite();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'bad.ts'), "import { Celeriac } from 'celeriac';\nexport default new Celeriac();\nconst x: number = ;\n");
    const run = runCli(['worker', '-A', join(dir, 'bad.ts'), '--broker', url]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/cannot compile .*bad\.ts: .*bad\.ts:3:\d+: Unexpected ";"/);
    expect(readdirSync(dir).filter((file) => file.includes('celeriac-'))).toEqual([]);
  });

  it('refuses a worker on the in-process memory:// broker, saying what to use', () => {
    const run = runCli(['worker', '--broker', 'memory://']);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/memory:\/\/ lives inside one process.*use sqlite:\/\//);
  });

  it('calls a task and waits for its result, then shows it with `result`', async () => {
    const { url, spawnWorker } = setup();
    spawnWorker();
    const called = runCli(['call', 'fx.add', '[20, 22]', '--wait', '--timeout', '20', '--broker', url]);
    expect(called.stdout.trim()).toBe('42');
    expect(called.status).toBe(0);
    const sent = runCli(['call', 'fx.add', '[1, 2]', '--broker', url]);
    const id = sent.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const shown = runCli(['result', id, '--wait', '--timeout', '20', '--broker', url]);
    expect(shown.stdout).toContain('state: SUCCESS');
    expect(shown.stdout).toContain('result: 3');
  });

  it('lists queue lengths and purges', () => {
    const { url } = setup();
    for (let i = 0; i < 3; i++) runCli(['call', 'fx.add', '[1, 1]', '-Q', 'cli-q', '--broker', url]);
    expect(runCli(['queues', '--broker', url]).stdout).toMatch(/cli-q\s+3/);
    expect(runCli(['purge', '-Q', 'cli-q', '--broker', url]).stderr).toMatch(/pass --force/);
    expect(runCli(['purge', '-Q', 'cli-q', '--force', '--broker', url]).stdout).toContain('purged 3 messages from cli-q');
    expect(runCli(['queues', '-Q', 'cli-q', '--broker', url]).stdout).toMatch(/cli-q\s+0/);
  });

  it('explains bad URLs and unreachable brokers in one line, without a stack trace', () => {
    const bad = runCli(['queues', '--broker', 'not a url']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/bad broker URL "not a url": expected scheme:\/\//);

    const unknown = runCli(['queues', '--broker', 'kafka://localhost']);
    expect(unknown.stderr).toMatch(/unknown broker scheme "kafka:\/\/".*use one of memory:\/\/, sqlite:\/\//);

    const { dir } = setup();
    const aFile = join(dir, 'a-file');
    writeFileSync(aFile, '');
    const unopenable = runCli(['queues', '--broker', `sqlite://${aFile}/x.db`]);
    expect(unopenable.status).toBe(2);
    expect(unopenable.stderr.trim().split('\n')).toHaveLength(1);
    expect(unopenable.stderr).toMatch(/cannot open SQLite database .*a-file\/x\.db: \w+/);
  });

  it('teaches with --help on each command', () => {
    const help = runCli(['--help']);
    expect(help.stdout).toMatch(/Examples:/);
    for (const command of ['worker', 'call', 'result', 'purge', 'queues', 'demo', 'revoke']) {
      const text = runCli([command, '--help']).stdout;
      expect(text, command).toMatch(new RegExp(`Usage: celeriac ${command}`));
    }
    expect(runCli(['worker', '--help']).stdout).toMatch(/second signal stops at once/);
  });

  it('rejects a bad option value with a specific message', () => {
    const result = runCli(['worker', '-c', 'many']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/expected a whole number of at least 1/);
  });
});

describe('the demo', () => {
  it('runs the seed workloads through a worker process and prints results as they complete', () => {
    const { url } = setup();
    const demo = runCli(['demo', '--broker', url], {}, 120_000);
    expect(demo.stderr).not.toMatch(/error/i);
    expect(demo.status).toBe(0);
    expect(demo.stdout).toContain('primes:  2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71 73 79 83 89 97');
    expect(demo.stdout).toContain('squares: 1 4 9 16 25 36 49 64 81 100 ... 10000 (100 in all)');
    expect(demo.stdout).toMatch(/done-callback: primes finished \(25 values\)/);
    expect(demo.stdout).toMatch(/done-callback: squares finished \(100 values\)/);
    expect(demo.stdout.match(/celeriac: \w+.*http:\/\/127\.0\.0\.1/g)).toHaveLength(12);
    // The same CPU-bound job on the event loop and in the process pool, timed and agreeing.
    expect(demo.stdout).toMatch(/the event loop \(one core\): \d+\.\d\d s/);
    expect(demo.stdout).toMatch(/a process pool of \d+: \d+\.\d\d s/);
    expect(demo.stdout).toMatch(/664,579 primes either way; the process pool was \d+\.\d\dx faster/);
  });
});

/** Brokers a worker process is killed on; each must give the killed worker's tasks to another. */
const KILL_TARGETS: Array<{ name: string; broker: () => { url: string; cleanup?: () => void } }> = [
  { name: 'SQLite', broker: () => tempSqlite() },
  // The restore of a dead consumer's messages waits for the visibility timeout, kept short here.
  { name: 'Redis', broker: () => ({ url: 'redis://127.0.0.1:6379/7?visibility_timeout=2' }) },
  { name: 'RabbitMQ', broker: () => ({ url: 'amqp://guest:guest@127.0.0.1:5672//' }) },
];

describe.each(KILL_TARGETS)('a worker process killed on $name', ({ broker }) => {
  it('leaves every task to complete exactly once in the result store', async () => {
    const { url, cleanup } = broker();
    const { dir, cleanup: removeDir } = tempSqlite();
    const queue = `kill-${randomUUID()}`;
    const app = new Celeriac({ broker: url });
    cleanups.push(removeDir, () => cleanup?.(), () => app.close());
    const spawnWorker = (): WorkerProcess => {
      const worker = startWorkerProcess(url, ['-c', '10', '-Q', queue], { FIXTURE_LOG: log });
      cleanups.push(async () => {
        if (worker.child.exitCode === null && worker.child.signalCode === null) {
          worker.child.kill('SIGKILL');
          await worker.exited;
        }
      });
      return worker;
    };
    const log = join(dir, 'runs.log');
    writeFileSync(log, '');
    const total = 60;
    const results = Array.from({ length: total }, (_, i) => app.sendTask<string>('fx.record', [`t${i}`, 40], {}, { queue }));
    await Promise.all(results.map((r) => r.sent));
    const doomed = spawnWorker();
    await until(() => readFileSync(log, 'utf8').split('\n').length > 15, 20_000, 'the first worker to be busy');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const survivor = spawnWorker();
    const values = await gather(results, { timeout: 60 });
    expect(values).toEqual(Array.from({ length: total }, (_, i) => `t${i}`));
    const runs = readFileSync(log, 'utf8').trim().split('\n');
    expect(new Set(runs).size).toBe(total); // every task ran
    const backend = await app.backend();
    for (const result of results) expect((await backend.get(result.id))?.status).toBe('SUCCESS');
    survivor.child.kill('SIGTERM');
    expect(await survivor.exited).toBe(0);
  });
});
