/**
 * Whether a SQLite consumer lives, told by the kernel rather than by a heartbeat: each consumer
 * holds an exclusive lock on a lock file of its own, `<broker file>.consumers/<consumer id>` (an
 * empty SQLite database, not in WAL mode, its journal in memory so that no journal file is made,
 * `BEGIN EXCLUSIVE` held for the consumer's life). The kernel drops the lock when the process ends, however it ends, and a task that blocks
 * the event loop does not matter: any process on the machine asks the lock (a read that finds it
 * busy means alive) instead of a heartbeat the blocked loop cannot date.
 *
 * SQLite tracks the locks of its connections within one process too, so a probe made in the
 * holder's own process also finds the lock busy, and closing the probe does not drop it.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';

/** What a probe of a consumer's lock file finds. */
export type ConsumerLockState = 'alive' | 'dead' | 'unknown';

/** How long the holder waits for a probe that holds the file for a moment. */
const ACQUIRE_BUSY_MS = 5_000;
/**
 * A lock file without a consumer row is removed once free for this long after it was made: a
 * consumer makes the file, locks it, then adds its row, and a probe between the first two steps
 * must not take the file away.
 */
const LEFTOVER_GRACE_MS = 10_000;

/** The lock files of one broker file's consumers. */
export class ConsumerLocks {
  readonly dir: string;
  readonly #held = new Map<string, BetterSqlite3.Database>();

  /**
   * @param Sqlite better-sqlite3's constructor (already loaded by the broker's connection)
   * @param brokerPath the broker's file
   */
  constructor(
    private readonly Sqlite: typeof BetterSqlite3,
    brokerPath: string,
  ) {
    this.dir = `${brokerPath}.consumers`;
  }

  /** Makes and locks `id`'s lock file; the lock lasts until {@link release} or the process ends. */
  hold(id: string): void {
    if (this.#held.has(id)) return;
    mkdirSync(this.dir, { recursive: true });
    const db = new this.Sqlite(this.#path(id), { timeout: ACQUIRE_BUSY_MS });
    try {
      db.pragma('journal_mode = MEMORY');
      db.exec('BEGIN EXCLUSIVE');
    } catch (error) {
      db.close();
      rmSync(this.#path(id), { force: true });
      throw error;
    }
    this.#held.set(id, db);
  }

  /** Whether this process holds `id`'s lock. */
  holds(id: string): boolean {
    return this.#held.has(id);
  }

  /** Removes `id`'s lock file and lets its lock go. */
  release(id: string): void {
    const db = this.#held.get(id);
    if (!db) return;
    this.#held.delete(id);
    rmSync(this.#path(id), { force: true });
    db.close(); // rolls the empty transaction back: the lock goes
  }

  /** The consumer ids whose locks this process holds. */
  heldIds(): string[] {
    return [...this.#held.keys()];
  }

  /** Lets every lock of this process go (the broker closes). */
  releaseAll(): void {
    for (const id of this.heldIds()) this.release(id);
  }

  /**
   * Asks `id`'s lock: `alive` when it is held, `dead` when the file is there and free (its
   * holder is gone), `unknown` when there is no such file (a consumer that keeps no lock file).
   */
  probe(id: string): ConsumerLockState {
    if (this.#held.has(id)) return 'alive';
    let db: BetterSqlite3.Database;
    try {
      db = new this.Sqlite(this.#path(id), { fileMustExist: true, timeout: 0 });
    } catch {
      return 'unknown';
    }
    try {
      db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get();
      return 'dead';
    } catch (error) {
      // SQLITE_BUSY: the holder's exclusive lock refuses even a reader. Anything else: not ours to judge.
      return (error as { code?: string }).code?.startsWith('SQLITE_BUSY') ? 'alive' : 'unknown';
    } finally {
      db.close();
    }
  }

  /** Removes the lock file of a consumer found dead. */
  remove(id: string): void {
    if (!this.#held.has(id)) rmSync(this.#path(id), { force: true });
  }

  /**
   * Removes lock files that name no consumer in `known` and whose lock is free: left by a
   * process that died between making its file and adding its consumer row, or after removing
   * the row.
   */
  removeLeftovers(known: ReadonlySet<string>, now = Date.now()): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return; // no consumer ever locked here
    }
    for (const name of names) {
      if (known.has(name) || this.#held.has(name)) continue;
      try {
        if (now - statSync(this.#path(name)).mtimeMs < LEFTOVER_GRACE_MS) continue;
      } catch {
        continue; // removed meanwhile
      }
      if (this.probe(name) === 'dead') this.remove(name);
    }
  }

  #path(id: string): string {
    return join(this.dir, id);
  }
}
