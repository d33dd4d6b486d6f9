/**
 * Rate limits shared by every worker on one SQLite file: a row per task (and rate key) with the
 * earliest time its next run may start. One write transaction grants every slot due within the
 * horizon and moves that time on, so two processes never both take the same slot.
 */
import type { Statement } from 'better-sqlite3';
import { SLOT_HORIZON_MS, type SharedRateStore } from '../../worker/rate-gates.js';
import type { Database } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_rate_limits (
  key TEXT PRIMARY KEY,
  next_at REAL NOT NULL
)`;

// Writes first (taking the write lock at once), then reads: the next free slot, not before now.
const CLAIM = `
INSERT INTO celeriac_rate_limits (key, next_at) VALUES (@key, @now)
ON CONFLICT (key) DO UPDATE SET next_at = max(next_at, @now)
RETURNING next_at`;

const MOVE_ON = `UPDATE celeriac_rate_limits SET next_at = ? WHERE key = ?`;

/** The shared rate store of one SQLite broker. */
export class SqliteRateLimits implements SharedRateStore {
  #statements: { claim: Statement; moveOn: Statement } | undefined;

  constructor(
    private readonly database: () => Database,
    private readonly write: <T>(run: () => T) => Promise<T>,
  ) {}

  acquire(key: string, perSecond: number, count: number): Promise<{ granted: number; waitMs: number }> {
    return this.write(() => {
      const { claim, moveOn } = this.#prepared();
      const now = Date.now();
      const interval = 1000 / perSecond;
      const { next_at: nextAt } = claim.get({ key, now }) as { next_at: number };
      if (nextAt > now + SLOT_HORIZON_MS) return { granted: 0, waitMs: Math.ceil(nextAt - now - SLOT_HORIZON_MS) };
      const granted = Math.min(count, Math.floor((now + SLOT_HORIZON_MS - nextAt) / interval) + 1);
      moveOn.run(nextAt + granted * interval, key);
      return { granted, waitMs: 0 };
    });
  }

  #prepared(): { claim: Statement; moveOn: Statement } {
    if (!this.#statements) {
      const db = this.database();
      db.exec(SCHEMA);
      this.#statements = { claim: db.prepare(CLAIM), moveOn: db.prepare(MOVE_ON) };
    }
    return this.#statements;
  }
}
