/**
 * Celery's event stream in the SQLite file (celeriac's own layout; no Python client reads it).
 *
 * One table, `celeriac_events (id, routing_key, body, at)`: each published message is a row, its
 * body the JSON Celery would send (one event, or a `task.multi` list), `at` when it was written
 * (ms since the epoch). Rows are kept for a retention window, pruned by the writers: rows older
 * than `event_retention` seconds (URL option, default 3600) and all but the newest
 * `event_max_rows` (default 50000) go, checked at most once a second per process. A subscriber
 * notes the newest id when it subscribes and from then on reads the rows after the last it read,
 * in order, when this process announces a write (`announceChange(path, 'events')`) and when
 * another process commits to the file (connection.ts: the kernel's report, and a check every
 * second); it hears only events written after it subscribed,
 * and a subscriber that falls further behind than the window loses the oldest. Ids come from
 * AUTOINCREMENT and writes are serialised by SQLite, so a row never appears behind one already
 * read.
 */
import type { Statement } from 'better-sqlite3';
import type { CeleryEvent, EventChannel, EventSubscription } from '../../brokers/broker.js';
import { decodeEvents, encodeEvents, topicMatches } from '../../brokers/event-message.js';
import { announceChange, ExternalChangeWatcher, onLocalChange, type Database } from './connection.js';
import { WriteBatcher } from './write-batcher.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  routing_key TEXT NOT NULL,
  body BLOB NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_events_at ON celeriac_events (at);
`;

/** How often a subscriber checks for commits of other processes it was not told of. */
const POLL_MS = 1_000;
/** How often a process prunes the table, at most. */
const PRUNE_EVERY_MS = 1_000;
/** Rows read at a time by a subscriber. */
const READ_BATCH = 500;

/** The retention window. */
export interface EventRetention {
  /** Rows older than this (ms) are pruned. */
  maxAgeMs: number;
  /** At most about this many rows are kept. */
  maxRows: number;
}

interface EventStatements {
  insert: Statement;
  pruneOld: Statement;
  pruneOver: Statement;
  lastId: Statement;
  since: Statement;
}

interface EventRow {
  id: number;
  routing_key: string;
  body: Buffer;
}

const prepared = new WeakMap<Database, EventStatements>();

/** The statements on `db`, creating the table on first use. */
function statementsOf(db: Database): EventStatements {
  let statements = prepared.get(db);
  if (!statements) {
    db.exec(SCHEMA);
    statements = {
      insert: db.prepare(`INSERT INTO celeriac_events (routing_key, body, at) VALUES (?, ?, ?)`),
      pruneOld: db.prepare(`DELETE FROM celeriac_events WHERE at < ?`),
      pruneOver: db.prepare(`DELETE FROM celeriac_events WHERE id <= (SELECT MAX(id) FROM celeriac_events) - ?`),
      lastId: db.prepare(`SELECT COALESCE(MAX(id), 0) AS id FROM celeriac_events`),
      since: db.prepare(`SELECT id, routing_key, body FROM celeriac_events WHERE id > ? ORDER BY id LIMIT ${READ_BATCH}`),
    };
    prepared.set(db, statements);
  }
  return statements;
}

export class SqliteEvents implements EventChannel {
  /** Event writes of one turn share a commit, apart from the broker's (they wake no consumer). */
  readonly #writes: WriteBatcher;
  readonly #subscriptions = new Set<() => void>();
  #prunedAt = 0;

  constructor(
    private readonly path: string,
    private readonly database: () => Database,
    private readonly retention: EventRetention,
  ) {
    this.#writes = new WriteBatcher(database, () => announceChange(path, 'events'));
  }

  async publish(routingKey: string, events: CeleryEvent | readonly CeleryEvent[]): Promise<void> {
    const body = encodeEvents(events);
    await this.#writes.enqueue(() => {
      const sql = statementsOf(this.database());
      const now = Date.now();
      sql.insert.run(routingKey, body, now);
      if (now - this.#prunedAt >= PRUNE_EVERY_MS) {
        this.#prunedAt = now;
        sql.pruneOld.run(now - this.retention.maxAgeMs);
        sql.pruneOver.run(this.retention.maxRows);
      }
    });
  }

  async subscribe(onEvent: (event: CeleryEvent) => void, pattern = '#'): Promise<EventSubscription> {
    const sql = statementsOf(this.database());
    let lastId = (sql.lastId.get() as { id: number }).id;
    let dropped = 0;
    let stopped = false;
    const deliver = (): void => {
      for (let more = true; more && !stopped; ) {
        let rows: EventRow[];
        try {
          rows = sql.since.all(lastId) as EventRow[];
        } catch {
          return; // busy or closing: the next change or poll reads on
        }
        more = rows.length === READ_BATCH;
        for (const row of rows) {
          lastId = row.id;
          if (!topicMatches(pattern, row.routing_key)) continue;
          const events = decodeEvents(row.body);
          if (!events) {
            dropped++;
            continue;
          }
          for (const event of events) {
            if (stopped) return;
            try {
              onEvent(event);
            } catch {
              // A listener that throws does not stop the stream (nor the writer that woke it).
            }
          }
        }
      }
    };
    const unlisten = onLocalChange(this.path, 'events', deliver);
    // A subscription keeps the process alive, as a socket does on the other brokers.
    const watcher = new ExternalChangeWatcher(this.database(), this.path, deliver, POLL_MS);
    watcher.start();
    deliver(); // what another process committed before the watch began
    const stop = (): void => {
      stopped = true;
      unlisten();
      watcher.stop();
      this.#subscriptions.delete(stop);
    };
    this.#subscriptions.add(stop);
    return {
      get dropped() {
        return dropped;
      },
      cancel: async () => stop(),
    };
  }

  /** Stops the subscriptions and commits the events still waiting. */
  async close(): Promise<void> {
    for (const stop of [...this.#subscriptions]) stop();
    await this.#writes.drained();
  }
}
