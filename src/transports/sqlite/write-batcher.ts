/**
 * Batches writes made in one turn of the event loop into one SQLite transaction: one commit for
 * many publishes, acks or results. If the batch fails, each write is retried alone, so one bad
 * write fails only its own caller. After each commit, the after-commit hook of every write in it
 * runs once (the batcher's own, or the one given with the write). Transactions are IMMEDIATE:
 * they take the write lock at their start (waiting out the busy timeout while another process
 * holds it), so a write that reads first (opening a control inbox reads the inboxes of this host)
 * cannot fail with SQLITE_BUSY_SNAPSHOT because another process committed after its read.
 */
import type { Database } from './connection.js';

interface PendingWrite {
  run: () => unknown;
  afterCommit: () => void;
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

export class WriteBatcher {
  #pending: PendingWrite[] = [];
  #scheduled = false;
  #idle: Array<() => void> = [];

  constructor(
    private readonly db: () => Database,
    private readonly afterCommit: () => void = () => undefined,
  ) {}

  /**
   * Queues `run` for the next batch; resolves with its return value once committed. `afterCommit`
   * (by default the batcher's) runs after the commit, once however many writes of the batch name it.
   */
  enqueue<T>(run: () => T, afterCommit = this.afterCommit): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ run, afterCommit, resolve: resolve as (value: never) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    try {
      if (batch.length > 0) this.#commit(batch);
    } finally {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  #commit(batch: PendingWrite[]): void {
    let db: Database;
    try {
      db = this.db();
    } catch (error) {
      for (const write of batch) write.reject(error); // not connected: nothing can be written
      return;
    }
    let results: unknown[] | undefined;
    try {
      results = db.transaction(() => batch.map((write) => write.run())).immediate();
    } catch {
      results = undefined;
    }
    if (results) {
      batch.forEach((write, i) => write.resolve(results![i] as never));
    } else {
      for (const write of batch) {
        try {
          write.resolve(db.transaction(write.run).immediate() as never);
        } catch (error) {
          write.reject(error);
        }
      }
    }
    for (const afterCommit of new Set(batch.map((write) => write.afterCommit))) afterCommit();
  }

  /** Resolves once everything queued so far is committed. */
  drained(): Promise<void> {
    if (this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
