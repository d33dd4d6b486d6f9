/** Running the real `celeriac` CLI in child processes. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'bin', 'celeriac.js');
export const FIXTURE_TASKS = join(ROOT, 'test', 'fixtures', 'tasks.ts');

/** A temp dir with a fresh SQLite URL in it; `cleanup()` removes both. */
export function tempSqlite(): { dir: string; url: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-test-'));
  return { dir, url: `sqlite://${join(dir, 'broker.db')}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: timeoutMs });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A worker process on `brokerUrl`, with its log collected. */
export interface WorkerProcess {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
  /** Resolves once the log contains `text`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
}

/** Which `celeriac` to start, and where: this repository's by default. */
export interface Launch {
  cli?: string;
  cwd?: string;
}

/** Starts `celeriac worker` on the fixture tasks (or `tasksModule`). */
export function startWorkerProcess(brokerUrl: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, tasksModule = FIXTURE_TASKS, launch: Launch = {}): WorkerProcess {
  const child = spawn(process.execPath, [launch.cli ?? CLI, 'worker', '-A', tasksModule, '--broker', brokerUrl, ...extraArgs], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
  });
  let output = '';
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    log: () => output,
    exited,
    waitFor(text, timeoutMs = 20_000) {
      const matches = (): boolean => (typeof text === 'string' ? output.includes(text) : text.test(output));
      if (matches()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`worker log never showed ${String(text)}; log:\n${output}`));
        }, timeoutMs);
        const check = (): void => {
          if (!matches()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
      });
    },
  };
}
