/** Running `celeriac beat` (or any long-lived CLI command) in child processes, and reading what beat sent. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createBroker } from '../../src/index.js';
import { CLI } from './cli.js';

/** A CLI process with its output collected line by line, each with the time it arrived. */
export interface CliProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  log(): string;
  exited: Promise<number | null>;
  /**
   * Resolves with the arrival time (ms since the epoch) of the first line matching `text` that
   * arrived at or after `since` (default: any).
   */
  waitFor(text: string | RegExp, options?: { timeoutMs?: number; since?: number }): Promise<number>;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<number | null>;
}

/** Starts `celeriac ...args`. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let partial = '';
  const lines: Array<{ at: number; text: string }> = [];
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    const at = Date.now();
    output += chunk.toString();
    partial += chunk.toString();
    const complete = partial.split('\n');
    partial = complete.pop()!;
    for (const text of complete) lines.push({ at, text });
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const find = (text: string | RegExp, since: number): number | undefined =>
    lines.find((line) => line.at >= since && (typeof text === 'string' ? line.text.includes(text) : text.test(line.text)))?.at;
  return {
    child,
    log: () => output,
    exited,
    waitFor(text, { timeoutMs = 20_000, since = 0 } = {}) {
      const seen = find(text, since);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`celeriac ${args.join(' ')} never logged ${String(text)}; log:\n${output}`));
        }, timeoutMs);
        const check = (): void => {
          const at = find(text, since);
          if (at === undefined) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(at);
        };
        listeners.add(check);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A message beat sent: its task id, task, entry and scheduled time. */
export interface BeatMessage {
  id: string;
  task: string;
  entry: string;
  scheduledAt: number;
}

/** Takes every message waiting in `queue` on the broker at `url`. */
export async function drainQueue(url: string, queue: string): Promise<BeatMessage[]> {
  const broker = await createBroker(url);
  await broker.connect();
  try {
    const expected = await broker.queueLength(queue);
    const messages: BeatMessage[] = [];
    if (expected === 0) return messages;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${messages.length} of the ${expected} messages in ${queue}`)), 15_000);
      void broker
        .consume(
          [queue],
          (delivery) => {
            const h = delivery.message.headers;
            messages.push({ id: String(h['id']), task: String(h['task']), entry: String(h['beat_entry']), scheduledAt: Date.parse(String(h['beat_scheduled_at'])) });
            void delivery.ack();
            if (messages.length >= expected) {
              clearTimeout(timer);
              resolve();
            }
          },
          { prefetch: expected },
        )
        .catch(reject);
    });
    return messages;
  } finally {
    await broker.close();
  }
}

/** Runs `celeriac ...args` to completion without blocking this process (so other processes' output keeps its arrival times). */
export async function runCliAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string; endedAt: number }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { status, stdout, stderr, endedAt: Date.now() };
}
