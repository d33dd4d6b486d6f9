/**
 * What the interop suites share: Python Celery workers and client scripts (modules in
 * test/interop/python/, run with Debian's /usr/bin/python3), celeriac apps and workers on the
 * same broker, and closing every one of them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Celeriac, createLogger, type CeleriacConfig, type Worker } from '../../src/index.js';

const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));
const quiet = createLogger('critical');

/** Why Python Celery cannot run here, or null when it can. */
export function pythonCeleryMissing(modules = ['celery', 'redis']): string | null {
  const probe = spawnSync('/usr/bin/python3', ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  if (probe.status === 0) return null;
  return `/usr/bin/python3 cannot import ${modules.join(', ')}: ${(probe.error?.message ?? probe.stderr).trim()}`;
}

/** The two sides of an interop run: celeriac's URLs, and the Python module and its environment. */
export interface HarnessOptions {
  /** celeriac's broker and backend URLs. */
  broker: string;
  backend: string;
  /** The Python module in test/interop/python/ (without `.py`): the Celery app and the client. */
  module: string;
  /** The environment of every Python process (the module reads its URLs from it). */
  env: NodeJS.ProcessEnv;
}

/** Python workers and clients, and celeriac apps and workers, each closed when its time comes. */
export interface InteropHarness {
  /**
   * Starts a Python Celery worker (solo pool) on `queue` (comma-separated for several);
   * resolves once it logs that it is ready. It runs until {@link killPythonWorkers}.
   */
  pythonWorker(queue: string, extraEnv?: NodeJS.ProcessEnv): Promise<ChildProcess>;
  /**
   * Runs a scenario of the Python module as a client (`module.py SCENARIO ARGS...`); resolves
   * with its output lines, or rejects when it fails or writes to stderr.
   */
  pythonClient(scenario: string, ...args: string[]): Promise<string[]>;
  /** A celeriac app on the run's broker and backend (unless `config` names others). */
  app(config?: CeleriacConfig): Celeriac;
  /** A started celeriac worker of `celeriac` on `queues`; stopped before the apps close. */
  tsWorker(celeriac: Celeriac, queues: string | string[], concurrency?: number): Promise<Worker>;
  /** Runs `close` along with the apps. */
  defer(close: () => Promise<unknown>): void;
  /** Stops the workers and closes the apps made since the last call: after each test. */
  closeApps(): Promise<void>;
  /**
   * Kills every Python worker still running: after all tests, since they are slow to start and
   * some suites share them between tests.
   */
  killPythonWorkers(): Promise<void>;
}

/** A harness for one broker/backend pairing and one Python module. */
export function interopHarness(options: HarnessOptions): InteropHarness {
  const children: ChildProcess[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  const env = { ...process.env, ...options.env };

  return {
    pythonWorker(queue, extraEnv = {}) {
      // A node name of its own: on RabbitMQ, workers of one name share one control queue.
      const node = `py-${randomUUID().slice(0, 8)}@%h`;
      const args = ['-m', 'celery', '-A', options.module, 'worker', '--pool=solo', '-Q', queue, '-n', node, '--without-mingle', '--without-gossip', '--without-heartbeat', '-l', 'info'];
      const child = spawn('/usr/bin/python3', args, { cwd: PYTHON_DIR, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
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
        child.once('exit', (status) => {
          clearTimeout(timer);
          reject(new Error(`Python worker exited ${status} before it was ready:\n${log}`));
        });
      });
    },

    pythonClient(scenario, ...args) {
      return new Promise((resolve, reject) => {
        const child = spawn('/usr/bin/python3', [`${options.module}.py`, scenario, ...args], { cwd: PYTHON_DIR, env });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.once('exit', (status) => {
          if (status !== 0 || stderr) reject(new Error(`Python client ${scenario} exited ${status}:\n${stderr}\n${stdout}`));
          else resolve(stdout.trim().split('\n'));
        });
      });
    },

    app(config = {}) {
      const celeriac = new Celeriac({ broker: options.broker, backend: options.backend, ...config });
      closers.push(() => celeriac.close());
      return celeriac;
    },

    async tsWorker(celeriac, queues, concurrency = 10) {
      const worker = celeriac.worker({ queues: typeof queues === 'string' ? [queues] : queues, logger: quiet, concurrency, prefetch: concurrency });
      await worker.start();
      closers.unshift(() => worker.stop(1));
      return worker;
    },

    defer(close) {
      closers.push(close);
    },

    async closeApps() {
      for (const close of closers.splice(0)) await close();
    },

    async killPythonWorkers() {
      for (const child of children.splice(0)) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
        }
      }
    },
  };
}
