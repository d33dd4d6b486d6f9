/**
 * `sqlite://PATH`: results in the embedded SQLite file (the same file as the broker by default).
 *
 * Writes made in one event-loop turn share one commit, and a stored SUCCESS is never replaced.
 * Waiting is push-based inside a process; across processes one watcher per backend checks
 * `PRAGMA data_version` when the kernel reports a write to the file's log (and every
 * `poll_interval` in case one went unreported), and only then reads the watched rows, in one
 * query. URL options: `expires` (s, default 86400), `synchronous`, `poll_interval` (s, default 1).
 * Saved groups expire like results; the chord join is in chord-join.ts.
 */
import type { Statement } from 'better-sqlite3';
import { ConfigurationError, NotConnectedError } from '../../errors.js';
import { decodeJson, encodeJson } from '../../protocol/kombu-json.js';
import { SUCCESS } from '../../states.js';
import {
  absolutePath,
  announceChange,
  enqueueWrite,
  ExternalChangeWatcher,
  onLocalChange,
  pollIntervalOption,
  shareDatabase,
  synchronousOption,
  type Database,
  type SharedDatabase,
  type Synchronous,
} from './connection.js';
import { numberOption, pathOf, type ParsedUrl } from '../../url.js';
import { DEFAULT_RESULT_EXPIRES_SECONDS, type GroupTuple, type ResultBackend, type ResultMeta, type Unwatch } from '../../backends/backend.js';
import { WatcherRegistry } from '../../backends/watchers.js';
import { CHORD_SCHEMA, SqliteChordJoin } from './chord-join.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_results (
  task_id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  meta TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_results_expiry ON celeriac_results (expires_at);
CREATE TABLE IF NOT EXISTS celeriac_groups (
  group_id TEXT PRIMARY KEY,
  tuple TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_groups_expiry ON celeriac_groups (expires_at);
${CHORD_SCHEMA}`;

const CLEANUP_INTERVAL_MS = 60 * 60 * 1000;
const QUERY_CHUNK = 500;

/** Results in the embedded SQLite file. */
export class SqliteBackend implements ResultBackend {
  readonly displayUrl: string;
  readonly path: string;
  /** A transactional join: exactly once across every process sharing the file. */
  readonly chords: SqliteChordJoin;
  readonly #expiresMs: number;
  readonly #synchronous: Synchronous;
  readonly #pollMs: number;
  #connection: SharedDatabase | undefined;
  #sql!: ReturnType<typeof prepare>;
  readonly #announce = (): void => this.#afterCommit();
  readonly #watchers = new WatcherRegistry();
  readonly #seenVersions = new Map<string, number>();
  /** Metas queued for the next commit: reads see them at once. */
  readonly #pending = new Map<string, ResultMeta>();
  #justStored: ResultMeta[] = [];
  #watcher: ExternalChangeWatcher | undefined;
  #unlisten: (() => void) | undefined;
  #cleanupTimer: NodeJS.Timeout | undefined;
  /** A read of the watched rows put off until `#nextReadAt`. */
  #deferredRead: NodeJS.Timeout | undefined;
  #nextReadAt = 0;

  constructor(url: ParsedUrl, raw: string) {
    this.displayUrl = url.display;
    const path = pathOf(raw);
    if (!path) throw new ConfigurationError(`${url.display} names no file; write sqlite://PATH`);
    this.path = absolutePath(path);
    this.#expiresMs = numberOption(url.options, 'expires', DEFAULT_RESULT_EXPIRES_SECONDS) * 1000;
    this.#synchronous = synchronousOption(url.options);
    this.#pollMs = pollIntervalOption(url.options);
    this.chords = new SqliteChordJoin(() => this.#database(), (run) => this.#enqueue(run), this.#expiresMs);
  }

  async connect(): Promise<void> {
    if (this.#connection) return;
    const connection = await shareDatabase(this.path, this.#synchronous);
    try {
      connection.db.exec(SCHEMA);
      this.#sql = prepare(connection.db);
    } catch (error) {
      connection.release();
      throw error;
    }
    this.#connection = connection;
    this.#unlisten = onLocalChange(this.path, 'results', (origin) => origin !== this && this.#readWatched());
    this.#cleanupTimer = setInterval(() => void this.cleanup().catch(() => undefined), CLEANUP_INTERVAL_MS);
    this.#cleanupTimer.unref();
  }

  store(meta: ResultMeta): Promise<void> {
    const text = encodeJson(meta);
    const expiresAt = Date.now() + this.#expiresMs;
    if (this.#pending.get(meta.task_id)?.status !== SUCCESS) this.#pending.set(meta.task_id, meta);
    return this.#enqueue(() => {
      const changed = this.#sql.upsert.run(meta.task_id, meta.status, text, expiresAt).changes > 0;
      if (changed) this.#justStored.push(meta);
    });
  }

  #afterCommit(): void {
    this.#pending.clear();
    const stored = this.#justStored;
    this.#justStored = [];
    for (const meta of stored) this.#watchers.notify(meta);
    if (stored.length > 0) announceChange(this.path, 'results', this);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    const pending = this.#pending.get(taskId);
    if (pending) return pending;
    const row = this.#database() && (this.#sql.get.get(taskId, Date.now()) as { meta: string } | undefined);
    return row ? (decodeJson(row.meta) as ResultMeta) : null;
  }

  async forget(taskId: string): Promise<void> {
    this.#pending.delete(taskId);
    await this.#enqueue(() => this.#sql.forget.run(taskId));
  }

  async saveGroup(groupId: string, tuple: GroupTuple): Promise<void> {
    const text = encodeJson(tuple);
    const expiresAt = Date.now() + this.#expiresMs;
    await this.#enqueue(() => this.#sql.saveGroup.run(groupId, text, expiresAt));
  }

  async restoreGroup(groupId: string): Promise<GroupTuple | null> {
    const row = this.#database() && (this.#sql.restoreGroup.get(groupId, Date.now()) as { tuple: string } | undefined);
    return row ? (decodeJson(row.tuple) as GroupTuple) : null;
  }

  async forgetGroup(groupId: string): Promise<void> {
    await this.#enqueue(() => this.#sql.forgetGroup.run(groupId));
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    const unwatch = this.#watchers.add(taskId, onChange);
    const db = this.#connection?.db;
    if (!this.#watcher && db) {
      this.#watcher = new ExternalChangeWatcher(db, this.path, () => this.#readWatched(), this.#pollMs);
      this.#watcher.start();
    }
    return () => {
      unwatch();
      if (!this.#watchers.has(taskId)) this.#seenVersions.delete(taskId);
      if (this.#watchers.size === 0) {
        this.#watcher?.stop();
        this.#watcher = undefined;
      }
    };
  }

  /**
   * Reads the watched rows after a change, but never sooner after the last read than that read
   * took: a client awaiting thousands of results while a worker commits every few milliseconds
   * spends at most about half its time reading them, each read finding more results.
   */
  #readWatched(): void {
    if (this.#deferredRead) return;
    const wait = this.#nextReadAt - performance.now();
    if (wait > 0) {
      this.#deferredRead = setTimeout(() => {
        this.#deferredRead = undefined;
        this.#readWatched();
      }, wait);
      return;
    }
    const started = performance.now();
    this.#readWatchedRows();
    const ended = performance.now();
    this.#nextReadAt = ended + (ended - started);
  }

  /** Reads every watched row in one query per chunk and reports those that changed. */
  #readWatchedRows(): void {
    const db = this.#connection?.db;
    if (this.#watchers.size === 0 || !db) return;
    const ids = this.#watchers.ids();
    for (let i = 0; i < ids.length; i += QUERY_CHUNK) {
      const chunk = ids.slice(i, i + QUERY_CHUNK);
      let rows: Array<{ task_id: string; version: number; meta: string }>;
      try {
        rows = db.prepare(`SELECT task_id, version, meta FROM celeriac_results WHERE task_id IN (${chunk.map(() => '?').join(',')})`).all(...chunk) as typeof rows;
      } catch {
        return; // busy; the next change reads again
      }
      for (const row of rows) {
        if (this.#seenVersions.get(row.task_id) === row.version) continue;
        this.#seenVersions.set(row.task_id, row.version);
        this.#watchers.notify(decodeJson(row.meta) as ResultMeta);
      }
    }
  }

  /** Deletes expired results, saved groups and chord joins; returns how many. */
  async cleanup(): Promise<number> {
    return this.#enqueue(() => {
      const now = Date.now();
      return this.#sql.expire.run(now).changes + this.#sql.expireGroups.run(now).changes + this.chords.expire(now);
    });
  }

  async close(): Promise<void> {
    if (!this.#connection) return;
    await this.#connection.writes.drained();
    this.#watcher?.stop();
    this.#watcher = undefined;
    this.#unlisten?.();
    clearInterval(this.#cleanupTimer);
    clearTimeout(this.#deferredRead);
    this.#deferredRead = undefined;
    this.#connection?.release();
    this.#connection = undefined;
  }

  #database(): Database {
    return this.#connected().db;
  }

  #connected(): SharedDatabase {
    if (!this.#connection) throw new NotConnectedError(`the SQLite result backend ${this.displayUrl}`);
    return this.#connection;
  }

  /** Queues `run` for the connection's next commit; rejects when not connected. */
  #enqueue<T>(run: () => T): Promise<T> {
    return enqueueWrite(() => this.#connected(), run, this.#announce);
  }
}

function prepare(db: Database): Record<'upsert' | 'get' | 'forget' | 'expire' | 'saveGroup' | 'restoreGroup' | 'forgetGroup' | 'expireGroups', Statement> {
  return {
    upsert: db.prepare(
      `INSERT INTO celeriac_results (task_id, status, meta, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, meta = excluded.meta,
         expires_at = excluded.expires_at, version = celeriac_results.version + 1
       WHERE celeriac_results.status <> 'SUCCESS'`,
    ),
    get: db.prepare(`SELECT meta FROM celeriac_results WHERE task_id = ? AND expires_at > ?`),
    forget: db.prepare(`DELETE FROM celeriac_results WHERE task_id = ?`),
    expire: db.prepare(`DELETE FROM celeriac_results WHERE expires_at <= ?`),
    saveGroup: db.prepare(
      `INSERT INTO celeriac_groups (group_id, tuple, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET tuple = excluded.tuple, expires_at = excluded.expires_at`,
    ),
    restoreGroup: db.prepare(`SELECT tuple FROM celeriac_groups WHERE group_id = ? AND expires_at > ?`),
    forgetGroup: db.prepare(`DELETE FROM celeriac_groups WHERE group_id = ?`),
    expireGroups: db.prepare(`DELETE FROM celeriac_groups WHERE expires_at <= ?`),
  };
}
