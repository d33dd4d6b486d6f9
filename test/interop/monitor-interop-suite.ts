/**
 * Celery's monitoring protocol between celeriac and real Python Celery on one broker: the
 * `celery` CLI and Python's control API reach a celeriac worker process and get Celery-shaped
 * replies; Python's EventReceiver and State see it online and its tasks move through their
 * states; celeriac's inspect and events see a Python worker. One fleet, two languages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, State } from '../../src/index.js';
import { startWorkerProcess, type WorkerProcess } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { pythonCeleryMissing } from './harness.js';

const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));

/** Runs `/usr/bin/python3 args` in the Python directory; its stdout, or a failure with stderr. */
function python(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', args, { cwd: PYTHON_DIR, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      if (status === 0) resolve(stdout);
      else reject(new Error(`python ${args.join(' ')} exited ${status}:\n${stderr}\n${stdout}`));
    });
  });
}

/** The suite on one broker URL. */
export function monitorInteropSuite(name: string, brokerUrl: string, modules: string[], backendUrl = brokerUrl): void {
  const missing = pythonCeleryMissing(modules);
  describe.skipIf(missing !== null)(`monitoring between celeriac and Python Celery on ${name}${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const env = { CELERIAC_TEST_BROKER: brokerUrl, CELERIAC_TEST_BACKEND: backendUrl };
    const queue = `mon-${randomUUID()}`;
    const tsNode = `ts-${randomUUID().slice(0, 8)}@interop`;
    const pyNode = `py-${randomUUID().slice(0, 8)}@interop`;
    let tsWorker: WorkerProcess;
    let pyWorker: ChildProcess;
    let app: Celeriac;

    beforeAll(async () => {
      app = new Celeriac({ broker: brokerUrl, backend: backendUrl });
      tsWorker = startWorkerProcess(brokerUrl, ['-Q', queue, '-n', tsNode, '-E', '--backend', backendUrl]);
      pyWorker = spawn('/usr/bin/python3', ['-m', 'celery', '-A', 'monitor_app', 'worker', '--pool=solo', '-E', '-Q', `${queue}-py`, '-n', pyNode, '-l', 'info'], {
        cwd: PYTHON_DIR,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let pyLog = '';
      await Promise.all([
        tsWorker.waitFor('ready; consuming', 30_000),
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`Python worker not ready:\n${pyLog}`)), 30_000);
          const watch = (chunk: Buffer): void => {
            pyLog += chunk.toString();
            if (/ready\./.test(pyLog)) {
              clearTimeout(timer);
              resolve();
            }
          };
          pyWorker.stdout!.on('data', watch);
          pyWorker.stderr!.on('data', watch);
        }),
      ]);
    }, 60_000);

    afterAll(async () => {
      for (const child of [tsWorker?.child, pyWorker]) {
        if (child && child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
        }
      }
      await app?.close();
    });

    /** `celery -A monitor_app inspect COMMAND -d tsNode -j`, parsed. */
    async function celeryInspect(command: string): Promise<Record<string, unknown>> {
      const output = await python(env, ['-m', 'celery', '-A', 'monitor_app', 'inspect', command, '-d', tsNode, '-t', '3', '-j']);
      return JSON.parse(output) as Record<string, unknown>;
    }

    async function pythonControl(method: string, args: Record<string, unknown> = {}): Promise<unknown[]> {
      return JSON.parse(await python(env, ['monitor_app.py', 'control', tsNode, method, JSON.stringify(args)])) as unknown[];
    }

    it('answers `celery inspect ping`, `registered` and `stats` from the celery CLI', async () => {
      expect(await celeryInspect('ping')).toEqual({ [tsNode]: { ok: 'pong' } });
      expect((await celeryInspect('registered'))[tsNode]).toEqual(expect.arrayContaining(['fx.add', 'fx.sleep']));
      const stats = (await celeryInspect('stats'))[tsNode] as Record<string, unknown>;
      expect(stats['pid']).toBe(tsWorker.child.pid);
      expect(stats['pool']).toMatchObject({ 'max-concurrency': 10 });
    });

    it('lists a running task in `celery inspect active`', async () => {
      const sleeping = app.sendTask('fx.sleep', [4_000], {}, { queue });
      await until(async () => ((await celeryInspect('active'))[tsNode] as unknown[]).length === 1, 15_000, 'the task active');
      const [active] = (await celeryInspect('active'))[tsNode] as Array<Record<string, unknown>>;
      expect(active).toMatchObject({ id: sleeping.id, name: 'fx.sleep', args: [4_000], hostname: tsNode });
      await sleeping.revoke({ terminate: true });
    });

    it('obeys Python rate_limit and add_consumer, with Celery-shaped replies', async () => {
      expect(await pythonControl('rate_limit', { task_name: 'fx.add', rate_limit: '100/s' })).toEqual([{ [tsNode]: { ok: 'new rate limit set successfully' } }]);
      const extra = `${queue}-extra`;
      expect(await pythonControl('add_consumer', { queue: extra })).toEqual([{ [tsNode]: { ok: `add consumer ${extra}` } }]);
      expect(await app.sendTask<number>('fx.add', [20, 22], {}, { queue: extra }).get({ timeout: 10 })).toBe(42);
    });

    it("shows the celeriac worker and its tasks in Python's EventReceiver and State", async () => {
      const capturing = python(env, ['monitor_app.py', 'capture', '5']);
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // fixed wait: the Python receiver subscribes in its own time, with no signal to wait on
      const ok = app.sendTask<number>('fx.add', [2, 3], {}, { queue });
      const bad = app.sendTask('fx.fail', [], {}, { queue });
      expect(await ok.get({ timeout: 10 })).toBe(5);
      await expect(bad.get({ timeout: 10 })).rejects.toThrow();
      const summary = JSON.parse(await capturing) as { workers: Record<string, { alive: boolean; sw_ident: string }>; tasks: Record<string, { state: string; name: string; result: string | null; worker: string; exception: string | null }> };
      expect(summary.workers[tsNode]).toMatchObject({ alive: true, sw_ident: 'celeriac' });
      expect(summary.tasks[ok.id]).toMatchObject({ state: 'SUCCESS', name: 'fx.add', result: '5', worker: tsNode });
      expect(summary.tasks[bad.id]).toMatchObject({ state: 'FAILURE', worker: tsNode });
    }, 30_000);

    it('sees the Python worker with its own inspect, and its task events in a State', async () => {
      expect((await app.control.inspect({ timeout: 3, destination: [pyNode], limit: 1 }).ping())[pyNode]).toEqual({ ok: 'pong' });
      expect((await app.control.inspect({ timeout: 3, destination: [pyNode], limit: 1 }).registered())[pyNode]).toContain('mon.py_add');
      const stream = await app.events.receive();
      const state = new State();
      const reading = (async () => {
        for await (const event of stream) state.event(event);
      })();
      const result = app.sendTask<number>('mon.py_add', [20, 1], {}, { queue: `${queue}-py` });
      expect(await result.get({ timeout: 10 })).toBe(21);
      await until(() => state.tasks.get(result.id)?.state === 'SUCCESS', 10_000, "the Python task's SUCCESS in the State");
      expect(state.tasks.get(result.id)).toMatchObject({ name: 'mon.py_add', worker: pyNode, result: '21' });
      await until(() => state.aliveWorkers().some((worker) => worker.hostname === pyNode), 10_000, 'the Python worker alive');
      expect(state.workers.get(pyNode)?.software).toMatch(/^py-celery/);
      await stream.close();
      await reading;
    }, 30_000);

    it('stops on `celery control shutdown`', async () => {
      await python(env, ['-m', 'celery', '-A', 'monitor_app', 'control', 'shutdown', '-d', tsNode, '-t', '1']).catch(() => undefined);
      expect(await tsWorker.exited).toBe(0);
    });
  });
}
