/** Tables of the embedded SQLite broker. Created on connect; safe to run from many processes. */
import type { Statement } from 'better-sqlite3';
import type { Database } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  visible_at INTEGER NOT NULL,
  consumer TEXT,
  locked_until INTEGER,
  redelivered INTEGER NOT NULL DEFAULT 0,
  headers TEXT NOT NULL,
  properties TEXT NOT NULL,
  content_type TEXT NOT NULL,
  content_encoding TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_messages_ready
  ON celeriac_messages (queue, priority DESC, id) WHERE consumer IS NULL;
CREATE INDEX IF NOT EXISTS celeriac_messages_leased
  ON celeriac_messages (consumer) WHERE consumer IS NOT NULL;
CREATE TABLE IF NOT EXISTS celeriac_consumers (
  id TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  hostname TEXT NOT NULL,
  seen_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL,
  headers TEXT NOT NULL,
  properties TEXT NOT NULL,
  content_type TEXT NOT NULL,
  content_encoding TEXT NOT NULL,
  body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_control (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  command TEXT NOT NULL
);
`;

/** Creates the broker's tables if they are missing. */
export function createBrokerSchema(db: Database): void {
  db.exec(SCHEMA);
}

/** The columns of a message row as read back. */
export interface MessageRow {
  id: number;
  queue: string;
  priority: number;
  redelivered: number;
  headers: string;
  properties: string;
  content_type: string;
  content_encoding: string;
  body: Buffer;
}

type StatementName =
  | 'insert'
  | 'ready'
  | 'lease'
  | 'anyReady'
  | 'nextVisible'
  | 'ack'
  | 'requeue'
  | 'copyToDeadLetters'
  | 'registerConsumer'
  | 'heartbeat'
  | 'renewLeases'
  | 'removeConsumer'
  | 'listConsumers'
  | 'restoreLost'
  | 'purge'
  | 'length'
  | 'queues'
  | 'deadLetters'
  | 'insertControl'
  | 'controlSince'
  | 'controlReplay'
  | 'lastControlId'
  | 'pruneControl';

/** The statements the broker runs, prepared once per connection. */
export function prepareBrokerStatements(db: Database): Record<StatementName, Statement> {
  return {
    insert: db.prepare(
      `INSERT INTO celeriac_messages (queue, priority, visible_at, headers, properties, content_type, content_encoding, body)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    ready: db.prepare(
      `SELECT id FROM celeriac_messages WHERE queue = ? AND consumer IS NULL AND visible_at <= ?
       ORDER BY priority DESC, id LIMIT ?`,
    ),
    lease: db.prepare(
      `UPDATE celeriac_messages SET consumer = ?, locked_until = ? WHERE id = ?
       RETURNING id, queue, priority, redelivered, headers, properties, content_type, content_encoding, body`,
    ),
    anyReady: db.prepare(`SELECT 1 FROM celeriac_messages WHERE queue = ? AND consumer IS NULL AND visible_at <= ? LIMIT 1`),
    nextVisible: db.prepare(`SELECT MIN(visible_at) AS at FROM celeriac_messages WHERE queue = ? AND consumer IS NULL`),
    ack: db.prepare(`DELETE FROM celeriac_messages WHERE id = ? AND consumer = ?`),
    requeue: db.prepare(
      `UPDATE celeriac_messages SET consumer = NULL, locked_until = NULL, redelivered = 1 WHERE id = ? AND consumer = ?`,
    ),
    copyToDeadLetters: db.prepare(
      `INSERT INTO celeriac_dead_letters (queue, reason, at, headers, properties, content_type, content_encoding, body)
       SELECT queue, ?, ?, headers, properties, content_type, content_encoding, body FROM celeriac_messages WHERE id = ? AND consumer = ?`,
    ),
    registerConsumer: db.prepare(`INSERT OR REPLACE INTO celeriac_consumers (id, pid, hostname, seen_at) VALUES (?, ?, ?, ?)`),
    heartbeat: db.prepare(`UPDATE celeriac_consumers SET seen_at = ? WHERE id = ?`),
    renewLeases: db.prepare(`UPDATE celeriac_messages SET locked_until = ? WHERE consumer = ?`),
    removeConsumer: db.prepare(`DELETE FROM celeriac_consumers WHERE id = ?`),
    listConsumers: db.prepare(`SELECT id, pid, hostname, seen_at FROM celeriac_consumers`),
    restoreLost: db.prepare(
      `UPDATE celeriac_messages SET consumer = NULL, locked_until = NULL, redelivered = 1
       WHERE consumer IS NOT NULL AND (locked_until < ? OR consumer NOT IN (SELECT id FROM celeriac_consumers))`,
    ),
    purge: db.prepare(`DELETE FROM celeriac_messages WHERE queue = ? AND consumer IS NULL`),
    length: db.prepare(`SELECT COUNT(*) AS n FROM celeriac_messages WHERE queue = ? AND consumer IS NULL`),
    queues: db.prepare(`SELECT DISTINCT queue FROM celeriac_messages ORDER BY queue`),
    deadLetters: db.prepare(
      `SELECT queue, reason, at, headers, properties, content_type, content_encoding, body
       FROM celeriac_dead_letters ORDER BY id DESC LIMIT ?`,
    ),
    insertControl: db.prepare(`INSERT INTO celeriac_control (at, command) VALUES (?, ?)`),
    controlSince: db.prepare(`SELECT id, command FROM celeriac_control WHERE id > ? ORDER BY id`),
    controlReplay: db.prepare(`SELECT id, command FROM celeriac_control WHERE at >= ? ORDER BY id`),
    lastControlId: db.prepare(`SELECT COALESCE(MAX(id), 0) AS id FROM celeriac_control`),
    pruneControl: db.prepare(`DELETE FROM celeriac_control WHERE at < ?`),
  };
}

export type BrokerStatements = Record<StatementName, Statement>;
