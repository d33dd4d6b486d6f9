/**
 * The monitoring commands as an operator runs them, against a real worker process on each
 * broker: status, inspect, control (with Celery-shaped replies), events --dump, and shutdown.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac } from '../../src/index.js';
import { CLI, runCli, startWorkerProcess, tempSqlite, type WorkerProcess } from '../helpers/cli.js';

const BROKERS: Array<{ name: string; open: () => { url: string; cleanup?: () => void } }> = [
  { name: 'Redis', open: () => ({ url: 'redis://127.0.0.1:6379/13' }) },
  { name: 'SQLite', open: () => tempSqlite() },
  { name: 'RabbitMQ', open: () => ({ url: 'amqp://guest:guest@127.0.0.1:5672//' }) },
];

describe.each(BROKERS)('celeriac status, inspect, control and events on $name', ({ name, open }) => {
  const { url: BROKER, cleanup } = open();
  const node = `cli-${randomUUID().slice(0, 8)}@test`;
  const queue = `cli-${randomUUID()}`;
  let worker: WorkerProcess;
  let app: Celeriac;
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--broker', BROKER]);

  beforeAll(async () => {
    app = new Celeriac({ broker: BROKER });
    worker = startWorkerProcess(BROKER, ['-n', node, '-Q', queue, '-c', '3']);
    await worker.waitFor('ready; consuming');
  }, 30_000);

  afterAll(async () => {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker.exited;
    await app.close();
    cleanup?.();
  });

  it('lists the worker with status, and inspects it readably or as JSON', () => {
    const status = cli('status', '-d', node);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`${node}: OK`);
    const ping = cli('inspect', 'ping', '-d', node, '-j');
    expect(JSON.parse(ping.stdout)).toEqual({ [node]: { ok: 'pong' } });
    const registered = cli('inspect', 'registered', '-d', node);
    expect(registered.stdout).toContain(`-> ${node}: OK`);
    expect(registered.stdout).toContain('    * fx.add');
    const stats = JSON.parse(cli('inspect', 'stats', '-d', node, '-j').stdout) as Record<string, { pool: Record<string, unknown> }>;
    expect(stats[node]!.pool['max-concurrency']).toBe(3);
  });

  it('changes the worker with control, and says what went wrong', () => {
    expect(JSON.parse(cli('control', 'rate_limit', 'fx.add', '50/s', '-d', node, '-j').stdout)).toEqual({ [node]: { ok: 'new rate limit set successfully' } });
    expect(JSON.parse(cli('control', 'time_limit', 'fx.sleep', '30', '20', '-d', node, '-j').stdout)).toEqual({ [node]: { ok: 'time limits set successfully' } });
    expect(JSON.parse(cli('control', 'pool_grow', '2', '-d', node, '-j').stdout)).toEqual({ [node]: { ok: 'pool will grow' } });
    const unknownTask = cli('control', 'rate_limit', 'nope', '5/s', '-d', node);
    expect(unknownTask.stdout).toContain(`-> ${node}: ERROR`);
    expect(unknownTask.stdout).toContain('unknown task nope');
    const bogus = cli('control', 'bogus');
    expect(bogus.status).toBe(2);
    expect(bogus.stderr).toMatch(/unknown control command "bogus"; use one of revoke, terminate, rate_limit/);
    const nobody = cli('inspect', 'ping', '-d', 'nobody@nowhere', '-t', '0.3');
    expect(nobody.status).toBe(1);
    expect(nobody.stderr).toContain('no nodes replied');
  });

  it('dumps task events once they are enabled', async () => {
    expect(JSON.parse(cli('control', 'enable_events', '-d', node, '-j').stdout)).toEqual({ [node]: { ok: 'task events enabled' } });
    const dump = spawn(process.execPath, [CLI, 'events', '--dump', '--for', '4', '--broker', BROKER]);
    let output = '';
    dump.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => dump.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // fixed wait: the dump subscribes in its own process, with no signal to wait on
    const result = app.sendTask<number>('fx.add', [4, 5], {}, { queue });
    expect(await result.get({ timeout: 10 })).toBe(9);
    expect(await exited).toBe(0);
    expect(output).toMatch(new RegExp(`${node} \\[[^\\]]+\\] task-received: .*uuid=${result.id}`));
    expect(output).toMatch(new RegExp(`${node} \\[[^\\]]+\\] task-succeeded: .*uuid=${result.id}.*result=9`));
    expect(output).toMatch(new RegExp(`${node} \\[[^\\]]+\\] worker-heartbeat: `));
  });

  it.skipIf(name !== 'RabbitMQ')("listens on RabbitMQ on its node's own pidbox queue, named as Celery names it (RabbitMQ only)", () => {
    const queues = execFileSync('rabbitmqctl', ['-q', 'list_queues', 'name'], { encoding: 'utf8' });
    expect(queues).toContain(`${node}.celery.pidbox`);
  });

  it('shuts the worker down with control shutdown', async () => {
    const sent = cli('control', 'shutdown', '-d', node);
    expect(sent.status).toBe(0);
    expect(sent.stdout).toBe(`shutdown sent to ${node}\n`); // no wait for a reply that never comes
    expect(await worker.exited).toBe(0);
  });
});
