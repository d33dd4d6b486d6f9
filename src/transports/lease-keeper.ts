/**
 * Renewing what a broker's consumers hold (their heartbeat or lease, and the leases of the
 * messages they hold), so that a live worker's messages are never handed to another.
 *
 * While a consumer holds deliveries, a task may block the event loop for minutes; the renewals
 * then run in a worker thread with a connection of its own, on a timer of its own, which such a
 * task cannot stop (DESIGN.md: nothing the worker must keep doing can be blocked by a task). The
 * thread costs some 10 MB, so it runs only then: it starts with the first delivery
 * ({@link LeaseKeeper.busy}) and stops after an idle spell with nothing held, when the main
 * thread, whose loop no task can block while nothing runs, renews on its own connection again.
 *
 * The main thread tells the keeper which consumer ids to renew ({@link LeaseKeeper.hold},
 * {@link LeaseKeeper.release}); what renewing means is the broker's (its `renewHere`) and the
 * thread module's (see keeper-thread.ts). A thread that dies while work is held is reported and
 * started again; the main thread renews meanwhile.
 */
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { startThread } from './thread.js';

/** Messages the keeper thread posts. */
export type KeeperReport = { type: 'ready' } | { type: 'released'; seq: number } | { type: 'warning'; message: string };
/** Messages the keeper thread takes. */
export type KeeperCommand = { type: 'hold'; id: string } | { type: 'release'; id: string; seq: number } | { type: 'close' };

/** What the keeper asks of its broker. */
export interface KeeperHost {
  /** Renews `ids` on the broker's own connection (while the thread is not running). */
  renewHere(ids: readonly string[]): Promise<unknown>;
  /** True while any consumer holds a delivery not yet settled. */
  holdsWork(): boolean;
  /** Called with what the user should hear (a renewal failing, the thread restarted). */
  warn(message: string): void;
}

const RESTART_MS = 1_000;
const CLOSE_MS = 5_000;
/** The thread stops once nothing has been held or delivered for this long (or a renewal interval, if longer). */
const IDLE_MS = 5_000;

export class LeaseKeeper {
  readonly #held = new Set<string>();
  readonly #waiting = new Map<number, () => void>();
  readonly #idleMs: number;
  #thread: Worker | undefined;
  /** The thread has said it runs: renewals are its, not the main thread's. */
  #threadReady = false;
  #seq = 0;
  #closed = false;
  #lastBusy = 0;
  #renewTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #renewingHere: Promise<void> | undefined;
  #failingHere = false;
  #stopping: Promise<void> | undefined;

  /**
   * @param entry the thread module, its path in `dist/` (see thread.ts)
   * @param settings what the thread module reads from `workerData`, with the renewal interval
   * @param host the broker's side: renewing on its connection, whether work is held, warnings
   */
  constructor(
    private readonly entry: string,
    private readonly settings: { intervalMs: number },
    private readonly host: KeeperHost,
  ) {
    this.#idleMs = Math.max(IDLE_MS, settings.intervalMs);
  }

  /** @internal True while the keeper thread runs. */
  get threadRunning(): boolean {
    return this.#thread !== undefined;
  }

  /** Renews `id` from now on (on the main thread until {@link busy} starts the keeper thread). */
  hold(id: string): void {
    this.#closed = false;
    this.#held.add(id);
    this.#post({ type: 'hold', id });
    this.#renewTimer ??= setInterval(() => this.#renewHereUnlessThreaded(), this.settings.intervalMs).unref();
  }

  /**
   * A delivery was handed out: a task may block the event loop from now on, so the renewals
   * move to the keeper thread (started now if it is not running).
   */
  busy(): void {
    this.#lastBusy = Date.now();
    if (!this.#thread && !this.#closed && this.#held.size > 0) this.#start();
  }

  /** Stops renewing `id`; resolves once no renewal of it is running or will run. */
  async release(id: string): Promise<void> {
    if (!this.#held.delete(id)) return;
    await Promise.all([this.#renewingHere, this.#stopping]);
    if (!this.#thread) return;
    const seq = ++this.#seq;
    const released = new Promise<void>((resolve) => this.#waiting.set(seq, resolve));
    this.#post({ type: 'release', id, seq });
    await released;
  }

  /** Stops renewing (the thread closes its connection). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#held.clear();
    clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
    await Promise.all([this.#stopThread(), this.#renewingHere]);
  }

  #post(command: KeeperCommand): void {
    this.#thread?.postMessage(command);
  }

  #renewHereUnlessThreaded(): void {
    if (this.#threadReady || this.#renewingHere || this.#held.size === 0) return;
    this.#renewingHere = this.host.renewHere([...this.#held]).then(
      () => void (this.#failingHere = false),
      (error: unknown) => {
        if (!this.#failingHere) this.host.warn(`renewing consumer leases failed (tried again every ${this.settings.intervalMs} ms): ${(error as Error).message}`);
        this.#failingHere = true;
      },
    );
    void this.#renewingHere.finally(() => (this.#renewingHere = undefined));
  }

  /** Stops the thread once nothing has been held or delivered for an idle spell. */
  #stopWhenIdle(): void {
    if (this.host.holdsWork() || Date.now() - this.#lastBusy < this.#idleMs) return;
    void this.#stopThread();
    this.#renewHereUnlessThreaded();
  }

  /** Stops the thread; resolves once it has exited (its last renewal done, its connection closed). */
  #stopThread(): Promise<void> {
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    const thread = this.#thread;
    this.#thread = undefined;
    this.#threadReady = false;
    if (!thread) return this.#stopping ?? Promise.resolve();
    const exited = once(thread, 'exit');
    thread.postMessage({ type: 'close' } satisfies KeeperCommand);
    const timer = setTimeout(() => void thread.terminate(), CLOSE_MS);
    const stopping = exited.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    this.#stopping = stopping;
    void stopping.finally(() => {
      if (this.#stopping === stopping) this.#stopping = undefined;
    });
    return stopping;
  }

  #start(): void {
    let thread: Worker;
    try {
      thread = startThread(this.entry, { workerData: this.settings });
    } catch (error) {
      this.host.warn(`the lease keeper thread did not start (leases are renewed by the main thread, which a blocking task stops): ${(error as Error).message}`);
      return;
    }
    thread.unref();
    this.#thread = thread;
    this.#idleTimer = setInterval(() => this.#stopWhenIdle(), Math.min(1_000, this.#idleMs)).unref();
    let failure: Error | undefined;
    thread.on('message', (report: KeeperReport) => {
      if (report.type === 'ready') {
        if (this.#thread === thread) this.#threadReady = true;
      } else if (report.type === 'released') {
        this.#waiting.get(report.seq)?.();
        this.#waiting.delete(report.seq);
      } else if (report.type === 'warning') {
        this.host.warn(report.message);
      }
    });
    thread.on('error', (error) => (failure = error));
    thread.on('exit', (code) => {
      for (const resolveRelease of this.#waiting.values()) resolveRelease();
      this.#waiting.clear();
      if (this.#thread !== thread) return; // stopped on purpose
      this.#thread = undefined;
      this.#threadReady = false;
      clearInterval(this.#idleTimer);
      this.#idleTimer = undefined;
      this.host.warn(`the lease keeper thread stopped (${failure?.message ?? `exit code ${code}`}); leases are renewed by the main thread until it runs again`);
      this.#renewHereUnlessThreaded();
      setTimeout(() => {
        if (!this.#closed && this.host.holdsWork()) this.busy();
      }, RESTART_MS).unref();
    });
    for (const id of this.#held) this.#post({ type: 'hold', id });
  }
}
