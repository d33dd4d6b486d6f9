/**
 * Rate limits shared by every worker on one SQLite file: a row per task (and rate key) with the
 * earliest time its next run may start. A run that may go moves that time on in the same
 * statement, so two processes never both take the same slot.
 */
import type { Statement } from 'better-sqlite3';
import type { SharedRateStore } from '../../worker/rate-gates.js';
import type { Database } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_rate_limits (
  key TEXT PRIMARY KEY,
  next_at REAL NOT NULL
)`;

// now and interval in ms. A row comes back only when the run may go.
const TAKE = `
INSERT INTO celeriac_rate_limits (key, next_at) VALUES (@key, @now + @interval)
ON CONFLICT (key) DO UPDATE SET next_at = @now + @interval WHERE next_at <= @now
RETURNING next_at`;

const NEXT_AT = `SELECT next_at FROM celeriac_rate_limits WHERE key = ?`;

/** The shared rate store of one SQLite broker. */
export class SqliteRateLimits implements SharedRateStore {
  #statements: { take: Statement; nextAt: Statement } | undefined;

  constructor(
    private readonly database: () => Database,
    private readonly write: <T>(run: () => T) => Promise<T>,
  ) {}

  acquire(key: string, perSecond: number): Promise<number> {
    return this.write(() => {
      const { take, nextAt } = this.#prepared();
      const now = Date.now();
      if (take.get({ key, now, interval: 1000 / perSecond }) !== undefined) return 0;
      const row = nextAt.get(key) as { next_at: number } | undefined;
      return row ? Math.max(1, Math.ceil(row.next_at - now)) : 0;
    });
  }

  #prepared(): { take: Statement; nextAt: Statement } {
    if (!this.#statements) {
      const db = this.database();
      db.exec(SCHEMA);
      this.#statements = { take: db.prepare(TAKE), nextAt: db.prepare(NEXT_AT) };
    }
    return this.#statements;
  }
}
