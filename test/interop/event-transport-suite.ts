/**
 * The event transport between celeriac and real Python Celery on one broker, below any worker:
 * events celeriac's `broker.events` publishes are decoded by Python's EventReceiver (and fed to
 * its State), and events a Python worker sends with `-E` arrive at a celeriac subscription with
 * Celery's fields. Every party filters on a host name of its own, since other runs may send
 * events on the same broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, CeleryEvent } from '../../src/brokers/broker.js';
import { createBroker } from '../../src/brokers/index.js';
import { until } from '../helpers/wait.js';
import { pythonCeleryMissing } from './harness.js';

const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));

/** A Python process of event_transport.py (a script, or `celery -A event_transport ...`) with its output. */
interface PythonProcess {
  child: ChildProcess;
  lines: () => string[];
  /** Resolves once a line matches. */
  waitFor(match: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

function python(env: NodeJS.ProcessEnv, args: string[]): PythonProcess {
  const child = spawn('/usr/bin/python3', args, { cwd: PYTHON_DIR, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const lines = (): string[] => output.split('\n').filter((line) => line !== '');
  return {
    child,
    lines,
    exited,
    waitFor: (match, timeoutMs = 30_000) => until(() => lines().some((line) => match.test(line)), timeoutMs, `${match} from python ${args.join(' ')}:\n${output}`),
  };
}

/**
 * The suite on one broker URL; `modules` are what Python needs for it, `removeQueue` tidies the
 * task queue the Python worker declared, where the broker keeps it.
 */
export function describeEventTransportInterop(name: string, brokerUrl: string, modules: string[], removeQueue?: (queue: string) => Promise<void>): void {
  const missing = pythonCeleryMissing(modules);
  describe.skipIf(missing !== null)(`event transport between celeriac and Python Celery on ${name}${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const env = { CELERIAC_TEST_BROKER: brokerUrl };
    const processes: PythonProcess[] = [];
    const queue = `events-interop-${randomUUID()}`;
    let broker: Broker;
    beforeAll(async () => {
      broker = await createBroker(brokerUrl);
      await broker.connect();
    });
    afterAll(async () => {
      for (const { child, exited } of processes) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      }
      await broker.close();
      await removeQueue?.(queue);
    });
    const run = (args: string[]): PythonProcess => {
      const started = python(env, args);
      processes.push(started);
      return started;
    };

    /** Python's EventReceiver on `pattern`, bound and ready, printing what `host` sends. */
    async function receiver(host: string, count: number, pattern: string): Promise<PythonProcess> {
      const started = run(['event_transport.py', 'receive', host, String(count), '20', pattern]);
      await started.waitFor(/^ready$/);
      return started;
    }
    /** The events and the State summary a receiver printed, once it has finished. */
    async function received(receiving: PythonProcess) {
      expect(await receiving.exited).toBe(0);
      const lines = receiving.lines();
      const at = lines.indexOf('state');
      expect(at, lines.join('\n')).toBeGreaterThan(0);
      const events = lines.slice(lines.indexOf('ready') + 1, at).map((line) => JSON.parse(line) as CeleryEvent);
      return { events, state: JSON.parse(lines[at + 1]!) as { workers: Record<string, Record<string, unknown>>; tasks: Record<string, Record<string, unknown>> } };
    }

    it("Python's EventReceiver decodes the events celeriac publishes, single and task.multi, and its State follows them", async () => {
      const host = `ts-${randomUUID().slice(0, 8)}@${hostname()}`;
      const all = await receiver(host, 5, '#');
      const workers = await receiver(host, 2, 'worker.#');
      const uuid = randomUUID();
      const base = (type: string, clock: number): CeleryEvent => ({ type, hostname: host, clock, timestamp: Date.now() / 1000, utcoffset: 0, pid: process.pid });
      const worker = { freq: 2.0, active: 0, processed: 0, loadavg: [0.1, 0.2, 0.3], sw_ident: 'celeriac', sw_ver: '0.1.0', sw_sys: 'Linux' };
      await broker.events!.publish('worker.online', { ...base('worker-online', 1), ...worker }, host);
      await broker.events!.publish(
        'task.multi',
        [
          { ...base('task-received', 2), uuid, name: 'ts.add', args: '[2, 3]', kwargs: '{}', root_id: uuid, parent_id: null, retries: 0, eta: null, expires: null },
          { ...base('task-started', 3), uuid },
          { ...base('task-succeeded', 4), uuid, result: '5', runtime: 0.002 },
        ],
        host,
      );
      await broker.events!.publish('worker.heartbeat', { ...base('worker-heartbeat', 5), ...worker, processed: 1 }, host);

      const { events, state } = await received(all);
      expect(events.map((e) => e.type)).toEqual(['worker-online', 'task-received', 'task-started', 'task-succeeded', 'worker-heartbeat']);
      expect(events[1]).toMatchObject({ uuid, name: 'ts.add', args: '[2, 3]', hostname: host, clock: 2 });
      expect(events[3]).toMatchObject({ uuid, result: '5', runtime: 0.002 });
      expect(state.workers[host]).toEqual({ alive: true, sw_ident: 'celeriac', freq: 2.0 });
      expect(state.tasks[uuid]).toEqual({ state: 'SUCCESS', name: 'ts.add', result: '5' });

      const gossip = await received(workers);
      expect(gossip.events.map((e) => e.type)).toEqual(['worker-online', 'worker-heartbeat']);
    });

    it('a Python worker\'s events (-E) arrive at a celeriac subscription with their fields, a worker.# one getting the worker events only', async () => {
      const node = `py-${randomUUID().slice(0, 8)}@${hostname()}`;
      const all: CeleryEvent[] = [];
      const gossip: CeleryEvent[] = [];
      const subscriptions = [
        await broker.events!.subscribe((e) => e.hostname === node && all.push(e), '#'),
        await broker.events!.subscribe((e) => e.hostname === node && gossip.push(e), 'worker.#'),
      ];
      const worker = run(['-m', 'celery', '-A', 'event_transport', 'worker', '-E', '--pool=solo', '-Q', queue, '-n', node, '--without-mingle', '--without-gossip', '-l', 'info']);
      await until(() => all.some((e) => e.type === 'worker-online'), 30_000, `worker-online from ${node}:\n${worker.lines().join('\n')}`);
      const online = all.find((e) => e.type === 'worker-online')!;
      expect(online).toMatchObject({ hostname: node, sw_ident: 'py-celery', sw_ver: '5.2.6', freq: 2.0, active: 0, processed: 0, pid: worker.child.pid });
      for (const field of ['clock', 'timestamp', 'utcoffset']) expect(typeof online[field], field).toBe('number');
      expect(online['loadavg']).toHaveLength(3);

      const sent = run(['event_transport.py', 'send', queue]);
      expect(await sent.exited).toBe(0);
      const uuid = sent.lines().at(-1)!;
      await until(() => all.some((e) => e.type === 'task-succeeded' && e['uuid'] === uuid), 30_000, 'task-succeeded');
      const task = all.filter((e) => e['uuid'] === uuid);
      expect(task.map((e) => e.type)).toEqual(['task-received', 'task-started', 'task-succeeded']);
      expect(task[0]).toMatchObject({ name: 'ev.add', args: '[2, 3]', kwargs: '{}', retries: 0, root_id: uuid });
      expect(task[2]).toMatchObject({ result: '5', runtime: expect.any(Number) });

      worker.child.kill('SIGTERM');
      await until(() => all.some((e) => e.type === 'worker-offline'), 30_000, 'worker-offline');
      await until(() => gossip.some((e) => e.type === 'worker-offline'), 5_000, 'worker-offline at worker.#');
      expect(new Set(gossip.map((e) => e.type.split('-')[0]))).toEqual(new Set(['worker']));
      for (const subscription of subscriptions) {
        expect(subscription.dropped).toBe(0);
        await subscription.cancel();
      }
    });
  });
}
