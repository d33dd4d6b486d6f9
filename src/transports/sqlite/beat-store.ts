/**
 * The beat store in the SQLite file (tables beside the broker's, on a connection of its own):
 * the leader lease as one row per namespace, taken and renewed in IMMEDIATE transactions that
 * compare the token first, so two processes can never both hold it; last runs written in the
 * same kind of transaction only while the writer's token still holds the lease (fencing).
 * Lease times come from the app's clock (every process on one machine shares the wall clock).
 */
import { randomUUID } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import { ConfigurationError, NotConnectedError } from '../../errors.js';
import { readEntry, type StoredEntry } from '../../beat/entry.js';
import type { BeatStore, LeaderInfo, LeaseGrant, LeaseRefusal, RunRecord, StoreContext, StoreSnapshot } from '../../beat/store.js';
import { pathOf, type ParsedUrl } from '../../url.js';
import { absolutePath, openDatabase, synchronousOption, type Database, type Synchronous } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_beat_lease (
  ns TEXT PRIMARY KEY,
  token TEXT NOT NULL,
  holder TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_beat_runs (
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  last_run_at INTEGER NOT NULL,
  runs INTEGER NOT NULL,
  sent_at INTEGER,
  PRIMARY KEY (ns, name)
);
CREATE TABLE IF NOT EXISTS celeriac_beat_entries (
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  definition TEXT NOT NULL,
  PRIMARY KEY (ns, name)
);
CREATE TABLE IF NOT EXISTS celeriac_beat_paused (
  ns TEXT NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY (ns, name)
);
CREATE TABLE IF NOT EXISTS celeriac_beat_version (
  ns TEXT PRIMARY KEY,
  version INTEGER NOT NULL
);
`;

interface LeaseRow {
  token: string;
  holder: string;
  epoch: number;
  expires_at: number;
}

/** Beat's lease, last runs and stored entries in a SQLite file. */
export class SqliteBeatStore implements BeatStore {
  readonly displayUrl: string;
  readonly path: string;
  readonly #ns: string;
  readonly #clock: Clock;
  readonly #synchronous: Synchronous;
  #db: Database | undefined;
  readonly #statements = new Map<string, Statement>();

  constructor(url: ParsedUrl, raw: string, context: StoreContext) {
    this.displayUrl = url.display;
    const path = pathOf(raw);
    if (!path) throw new ConfigurationError(`${url.display} names no file; write sqlite://PATH, e.g. sqlite://.celeriac/celeriac.db`);
    this.path = absolutePath(path);
    this.#synchronous = synchronousOption(url.options);
    this.#ns = context.namespace;
    this.#clock = context.clock;
  }

  async connect(): Promise<void> {
    if (this.#db) return;
    const db = await openDatabase(this.path, this.#synchronous);
    db.exec(SCHEMA);
    this.#db = db;
  }

  async close(): Promise<void> {
    this.#statements.clear();
    this.#db?.close();
    this.#db = undefined;
  }

  /** A prepared statement, made once per connection. */
  #sql(text: string): Statement {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.#database().prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  #database(): Database {
    if (!this.#db) throw new NotConnectedError(`the beat store ${this.displayUrl}`);
    return this.#db;
  }

  #lease(): LeaseRow | undefined {
    return this.#sql('SELECT token, holder, epoch, expires_at FROM celeriac_beat_lease WHERE ns = ?').get(this.#ns) as LeaseRow | undefined;
  }

  /** True when `token` holds an unexpired lease (call inside a transaction). */
  #holds(token: string, now: number): boolean {
    const lease = this.#lease();
    return lease !== undefined && lease.token === token && lease.expires_at > now;
  }

  async acquire(holder: string, leaseMs: number): Promise<LeaseGrant | LeaseRefusal> {
    const db = this.#database();
    const now = this.#clock.now();
    return db
      .transaction((): LeaseGrant | LeaseRefusal => {
        const lease = this.#lease();
        if (lease && lease.expires_at > now) return { acquired: false, holder: lease.holder, expiresInMs: lease.expires_at - now };
        const epoch = (lease?.epoch ?? 0) + 1;
        const token = `${epoch}.${randomUUID()}`;
        this.#sql(
          `INSERT INTO celeriac_beat_lease (ns, token, holder, epoch, expires_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (ns) DO UPDATE SET token = excluded.token, holder = excluded.holder, epoch = excluded.epoch, expires_at = excluded.expires_at`,
        ).run(this.#ns, token, holder, epoch, now + leaseMs);
        return { acquired: true, token, epoch };
      })
      .immediate();
  }

  async renew(token: string, leaseMs: number): Promise<boolean> {
    const now = this.#clock.now();
    const changed = this.#sql('UPDATE celeriac_beat_lease SET expires_at = ? WHERE ns = ? AND token = ? AND expires_at > ?')
      .run(now + leaseMs, this.#ns, token, now).changes;
    return changed === 1;
  }

  async release(token: string): Promise<void> {
    // The row stays (its epoch counts on); an expiry in the past frees it.
    this.#sql('UPDATE celeriac_beat_lease SET expires_at = 0 WHERE ns = ? AND token = ?').run(this.#ns, token);
  }

  async leader(): Promise<LeaderInfo | null> {
    const lease = this.#lease();
    const now = this.#clock.now();
    if (!lease || lease.expires_at <= now) return null;
    return { holder: lease.holder, epoch: lease.epoch, expiresInMs: lease.expires_at - now };
  }

  async runs(): Promise<RunRecord[]> {
    const rows = this.#sql('SELECT name, last_run_at, runs, sent_at FROM celeriac_beat_runs WHERE ns = ?').all(this.#ns) as Array<{
      name: string;
      last_run_at: number;
      runs: number;
      sent_at: number | null;
    }>;
    return rows.map((row) => ({ name: row.name, lastRunAt: row.last_run_at, runs: row.runs, ...(row.sent_at === null ? {} : { sentAt: row.sent_at }) }));
  }

  async recordRuns(token: string, runs: readonly RunRecord[]): Promise<boolean> {
    const db = this.#database();
    const now = this.#clock.now();
    const upsert = this.#sql(
      `INSERT INTO celeriac_beat_runs (ns, name, last_run_at, runs, sent_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (ns, name) DO UPDATE SET last_run_at = excluded.last_run_at, runs = excluded.runs, sent_at = excluded.sent_at`,
    );
    return db
      .transaction(() => {
        if (!this.#holds(token, now)) return false;
        for (const run of runs) upsert.run(this.#ns, run.name, run.lastRunAt, run.runs, run.sentAt ?? null);
        return true;
      })
      .immediate();
  }

  async version(): Promise<number> {
    const row = this.#sql('SELECT version FROM celeriac_beat_version WHERE ns = ?').get(this.#ns) as { version: number } | undefined;
    return row?.version ?? 0;
  }

  async snapshot(): Promise<StoreSnapshot> {
    const db = this.#database();
    return db.transaction(() => {
      const version = (this.#sql('SELECT version FROM celeriac_beat_version WHERE ns = ?').get(this.#ns) as { version: number } | undefined)?.version ?? 0;
      const entries: StoredEntry[] = [];
      const unreadable: string[] = [];
      for (const row of this.#sql('SELECT name, definition FROM celeriac_beat_entries WHERE ns = ? ORDER BY name').all(this.#ns) as Array<{ name: string; definition: string }>) {
        const entry = readEntry(row.definition);
        if (entry) entries.push(entry);
        else unreadable.push(row.name);
      }
      const paused = (this.#sql('SELECT name FROM celeriac_beat_paused WHERE ns = ?').all(this.#ns) as Array<{ name: string }>).map((row) => row.name);
      return { version, entries, paused, ...(unreadable.length > 0 ? { unreadable } : {}) };
    })();
  }

  async putEntry(entry: StoredEntry): Promise<boolean> {
    const db = this.#database();
    return db
      .transaction(() => {
        const existed = this.#sql('SELECT 1 FROM celeriac_beat_entries WHERE ns = ? AND name = ?').get(this.#ns, entry.name) !== undefined;
        this.#sql(
          'INSERT INTO celeriac_beat_entries (ns, name, definition) VALUES (?, ?, ?) ON CONFLICT (ns, name) DO UPDATE SET definition = excluded.definition',
        ).run(this.#ns, entry.name, JSON.stringify(entry));
        this.#bump();
        return existed;
      })
      .immediate();
  }

  async removeEntry(name: string): Promise<boolean> {
    const db = this.#database();
    return db
      .transaction(() => {
        const existed = this.#sql('DELETE FROM celeriac_beat_entries WHERE ns = ? AND name = ?').run(this.#ns, name).changes === 1;
        this.#sql('DELETE FROM celeriac_beat_paused WHERE ns = ? AND name = ?').run(this.#ns, name);
        this.#sql('DELETE FROM celeriac_beat_runs WHERE ns = ? AND name = ?').run(this.#ns, name);
        if (existed) this.#bump();
        return existed;
      })
      .immediate();
  }

  async setPaused(name: string, paused: boolean): Promise<boolean> {
    const db = this.#database();
    return db
      .transaction(() => {
        const changed = paused
          ? this.#sql('INSERT OR IGNORE INTO celeriac_beat_paused (ns, name) VALUES (?, ?)').run(this.#ns, name).changes === 1
          : this.#sql('DELETE FROM celeriac_beat_paused WHERE ns = ? AND name = ?').run(this.#ns, name).changes === 1;
        if (changed) this.#bump();
        return changed;
      })
      .immediate();
  }

  #bump(): void {
    this.#sql('INSERT INTO celeriac_beat_version (ns, version) VALUES (?, 1) ON CONFLICT (ns) DO UPDATE SET version = version + 1').run(this.#ns);
  }
}
