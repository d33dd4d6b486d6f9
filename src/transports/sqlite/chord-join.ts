/**
 * The chord join in the embedded SQLite file: a row per chord (its size, how many parts it holds
 * and its expiry) and a row per ended member, keyed by task id, so a redelivered member replaces
 * its earlier part and counts once. The count is kept in the chord's row rather than counted,
 * so recording a part costs about the same in a chord of ten members as in one of 100 000.
 *
 * **Exactly once across processes.** Recording a part, bumping and reading the count and, on
 * completion, reading and deleting the parts happen in one transaction, through the batch of
 * writes of the process's connection to the file (write-batcher.ts, shared with the broker). Its
 * transactions are IMMEDIATE: each takes SQLite's one write lock at its start (waiting out the
 * busy timeout while another process holds it) and keeps it to the commit. The count a part reads
 * thus includes every part any process committed, and no process can record a part between that
 * read and the delete, so exactly one transaction sees the count reach the size.
 */
import type { Statement } from 'better-sqlite3';
import { decodeJson, encodeJson } from '../../protocol/kombu-json.js';
import type { Database } from './connection.js';
import type { ChordJoin, ChordPart } from '../../backends/backend.js';

/** The join's tables; the backend creates them with its own. */
export const CHORD_SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_chords (
  group_id TEXT PRIMARY KEY,
  size INTEGER,
  parts INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_chords_expiry ON celeriac_chords (expires_at);
CREATE TABLE IF NOT EXISTS celeriac_chord_parts (
  group_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  group_index INTEGER,
  state TEXT NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (group_id, task_id)
) WITHOUT ROWID;
`;

interface PartRow {
  task_id: string;
  group_index: number | null;
  state: string;
  result: string;
}

/**
 * The join. A chord's row is created by whichever comes first, its size or a part (its size
 * stays null until set); each call renews its expiry, as Celery's EXPIREs renew the Redis keys.
 * A join idle past its expiry counts as gone (on Redis its keys would be) even before
 * {@link SqliteChordJoin.expire} removes it.
 */
export class SqliteChordJoin implements ChordJoin {
  #prepared: { db: Database; sql: ChordStatements } | undefined;

  /**
   * @param database the backend's open connection; throws when it is not connected
   * @param write queues a write for the backend's next commit (one transaction per event-loop turn)
   * @param expiresMs how long an idle join is kept
   */
  constructor(
    private readonly database: () => Database,
    private readonly write: <T>(run: () => T) => Promise<T>,
    private readonly expiresMs: number,
  ) {}

  async setSize(groupId: string, size: number): Promise<void> {
    const sql = this.#sql();
    await this.write(() => {
      const now = Date.now();
      this.#dropIfExpired(sql, groupId, now);
      sql.setSize.run(groupId, size, now + this.expiresMs);
    });
  }

  async addPart(part: ChordPart): Promise<ChordPart[] | null> {
    const sql = this.#sql();
    const { groupId, taskId, groupIndex, state } = part;
    const result = encodeJson(part.result);
    const rows = await this.write(() => {
      const now = Date.now();
      this.#dropIfExpired(sql, groupId, now); // a write first: the transaction takes the write lock here
      const added = sql.addPart.run(groupId, taskId, groupIndex, state, result).changes;
      if (added === 0) sql.replacePart.run(groupIndex, state, result, groupId, taskId);
      const chord = sql.countPart.get(groupId, added, now + this.expiresMs) as { size: number | null; parts: number };
      if (chord.size === null || chord.parts < chord.size) return null;
      const parts = sql.parts.all(groupId) as PartRow[];
      sql.dropParts.run(groupId);
      sql.dropChord.run(groupId);
      return parts;
    });
    return rows?.map((row) => ({ groupId, taskId: row.task_id, groupIndex: row.group_index, state: row.state, result: decodeJson(row.result) })) ?? null;
  }

  /** Deletes joins idle past their expiry; runs inside the caller's write. Returns how many. */
  expire(now: number): number {
    const sql = this.#sql();
    sql.expireParts.run(now);
    return sql.expireChords.run(now).changes;
  }

  /** Deletes the group's join if it sat idle past its expiry, so it starts afresh as on Redis. */
  #dropIfExpired(sql: ChordStatements, groupId: string, now: number): void {
    if (sql.dropExpiredChord.get(groupId, now)) sql.dropParts.run(groupId);
  }

  /** The statements, prepared once per connection (the backend may close and reconnect). */
  #sql(): ChordStatements {
    const db = this.database();
    if (this.#prepared?.db !== db) this.#prepared = { db, sql: prepare(db) };
    return this.#prepared.sql;
  }
}

type ChordStatements = Record<
  'setSize' | 'addPart' | 'replacePart' | 'countPart' | 'parts' | 'dropParts' | 'dropChord' | 'dropExpiredChord' | 'expireParts' | 'expireChords',
  Statement
>;

function prepare(db: Database): ChordStatements {
  return {
    setSize: db.prepare(
      `INSERT INTO celeriac_chords (group_id, size, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET size = excluded.size, expires_at = excluded.expires_at`,
    ),
    // Changes nothing for a task id already recorded: replacePart then updates its part.
    addPart: db.prepare(
      `INSERT INTO celeriac_chord_parts (group_id, task_id, group_index, state, result) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (group_id, task_id) DO NOTHING`,
    ),
    replacePart: db.prepare(`UPDATE celeriac_chord_parts SET group_index = ?, state = ?, result = ? WHERE group_id = ? AND task_id = ?`),
    // Adds 1 for a new part (0 for a replaced one), renews the expiry, and reads the progress.
    countPart: db.prepare(
      `INSERT INTO celeriac_chords (group_id, size, parts, expires_at) VALUES (?, NULL, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET parts = parts + excluded.parts, expires_at = excluded.expires_at
       RETURNING size, parts`,
    ),
    // Header order; parts without an index last, as `+inf` scores sort on Redis.
    parts: db.prepare(
      `SELECT task_id, group_index, state, result FROM celeriac_chord_parts WHERE group_id = ?
       ORDER BY group_index IS NULL, group_index, task_id`,
    ),
    dropParts: db.prepare(`DELETE FROM celeriac_chord_parts WHERE group_id = ?`),
    dropChord: db.prepare(`DELETE FROM celeriac_chords WHERE group_id = ?`),
    dropExpiredChord: db.prepare(`DELETE FROM celeriac_chords WHERE group_id = ? AND expires_at <= ? RETURNING 1`),
    expireParts: db.prepare(
      `DELETE FROM celeriac_chord_parts WHERE group_id IN (SELECT group_id FROM celeriac_chords WHERE expires_at <= ?)`,
    ),
    expireChords: db.prepare(`DELETE FROM celeriac_chords WHERE expires_at <= ?`),
  };
}
