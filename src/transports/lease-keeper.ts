/**
 * The main thread's side of a lease keeper: a worker thread, with a connection of its own, that
 * renews what a broker's consumers hold (their heartbeat or lease, and the leases of the messages
 * they hold) on a timer of its own. A task that blocks the event loop for minutes thus cannot
 * stop the renewals and have its message handed to another worker while it still runs
 * (DESIGN.md: nothing the worker must keep doing can be blocked by a task).
 *
 * The main thread tells the keeper which consumer ids to renew ({@link LeaseKeeper.hold},
 * {@link LeaseKeeper.release}); what renewing means is the thread module's (see keeper-thread.ts).
 * A keeper that dies after it started is reported and started again.
 */
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { startThread } from './thread.js';

/** Messages the keeper thread posts. */
export type KeeperReport = { type: 'ready' } | { type: 'released'; seq: number } | { type: 'warning'; message: string };
/** Messages the keeper thread takes. */
export type KeeperCommand = { type: 'hold'; id: string } | { type: 'release'; id: string; seq: number } | { type: 'close' };

const RESTART_MS = 1_000;
const CLOSE_MS = 5_000;

export class LeaseKeeper {
  readonly #held = new Set<string>();
  readonly #waiting = new Map<number, () => void>();
  #thread: Worker | undefined;
  #ready: Promise<void> | undefined;
  #seq = 0;
  #closed = false;

  /**
   * @param entry the thread module, its path in `dist/` (see thread.ts)
   * @param settings what the thread module reads from `workerData`
   * @param warn called with what the user should hear (a renewal failing, the keeper restarted)
   */
  constructor(
    private readonly entry: string,
    private readonly settings: unknown,
    private readonly warn: (message: string) => void,
  ) {}

  /** Renews `id` from now on; resolves once the keeper thread runs (it is started if needed). */
  async hold(id: string): Promise<void> {
    this.#closed = false;
    this.#held.add(id);
    if (this.#thread) this.#post({ type: 'hold', id });
    else this.#start();
    try {
      await this.#ready;
    } catch (error) {
      this.#held.delete(id);
      throw error;
    }
  }

  /** Stops renewing `id`; resolves once no renewal of it is running or will run. */
  async release(id: string): Promise<void> {
    if (!this.#held.delete(id) || !this.#thread) return;
    const seq = ++this.#seq;
    const released = new Promise<void>((resolve) => this.#waiting.set(seq, resolve));
    this.#post({ type: 'release', id, seq });
    await released;
  }

  /** Stops the thread (it closes its connection); renewals end. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#held.clear();
    const thread = this.#thread;
    this.#thread = undefined;
    this.#ready = undefined;
    if (!thread) return;
    const exited = once(thread, 'exit');
    thread.postMessage({ type: 'close' } satisfies KeeperCommand);
    const timer = setTimeout(() => void thread.terminate(), CLOSE_MS);
    await exited.catch(() => undefined);
    clearTimeout(timer);
  }

  #post(command: KeeperCommand): void {
    this.#thread?.postMessage(command);
  }

  #start(): void {
    let thread: Worker;
    try {
      thread = startThread(this.entry, { workerData: this.settings });
    } catch (error) {
      this.#ready = Promise.reject(error as Error);
      return;
    }
    thread.unref();
    this.#thread = thread;
    let started = false;
    let failure: Error | undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      thread.on('message', (report: KeeperReport) => {
        if (report.type === 'ready') {
          started = true;
          resolve();
        } else if (report.type === 'released') {
          this.#waiting.get(report.seq)?.();
          this.#waiting.delete(report.seq);
        } else if (report.type === 'warning') {
          this.warn(report.message);
        }
      });
      thread.on('error', (error) => (failure = error));
      thread.on('exit', (code) => {
        if (this.#thread === thread) this.#thread = undefined;
        for (const resolveRelease of this.#waiting.values()) resolveRelease();
        this.#waiting.clear();
        if (!started) {
          reject(new Error(`the lease keeper thread did not start: ${failure?.message ?? `it exited with code ${code}`}`, { cause: failure }));
          this.#ready = undefined;
          return;
        }
        if (this.#closed || this.#held.size === 0) return;
        this.warn(`the lease keeper thread stopped (${failure?.message ?? `exit code ${code}`}); starting it again`);
        setTimeout(() => {
          if (this.#closed || this.#thread || this.#held.size === 0) return;
          this.#start();
          this.#ready?.catch((error: unknown) => this.warn(`the lease keeper thread did not start again: ${(error as Error).message}`));
        }, RESTART_MS).unref();
      });
    });
    this.#ready.catch(() => undefined);
    for (const id of this.#held) this.#post({ type: 'hold', id });
  }
}
