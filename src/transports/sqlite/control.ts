/**
 * The control channel in the SQLite file (celeriac's own layout; no Python client reads it).
 *
 * - Commands: `celeriac_control (id, at, command)`, one row per broadcast (the command as JSON),
 *   kept for {@link CONTROL_REPLAY_MS}. A subscriber reads the rows after the last it read when
 *   this process announces a write (`announceChange(path, 'control')`) and when another process
 *   commits to the file (connection.ts: the kernel's report, and a check every second). A new subscriber first hears the recent fire-and-forget commands
 *   again (a revoke, so a worker started late still honours it); commands that wait for
 *   replies, and those whose `expiresAt` has passed, are not replayed (see control-log.ts).
 * - Replies: a client's inbox registers its routing key in `celeriac_inboxes (routing_key, pid,
 *   hostname, opened_at)`; `reply` writes a row to `celeriac_replies (id, routing_key, ticket,
 *   body, at)` only while an inbox of that key is registered (a reply nobody waits for is
 *   dropped, as RabbitMQ and kombu's Redis layout drop it). The inbox reads its rows in order on
 *   `announceChange(path, 'replies')` and on another process's commit, and deletes what it has read;
 *   closing removes its registration and any rows left. Replies older than a minute are pruned
 *   by the writers; registrations of dead processes on this host, by the next inbox opened.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Statement } from 'better-sqlite3';
import type { Consumer, ControlChannel, ControlCommand, ReplyAddress, ReplyInbox } from '../../brokers/broker.js';
import { CONTROL_REPLAY_MS, replayable } from '../../brokers/control-log.js';
import { PIDBOX_REPLY_EXCHANGE } from '../../brokers/pidbox-message.js';
import { decodeJsonObject, encodeJson } from '../../protocol/kombu-json.js';
import { announceChange, ExternalChangeWatcher, onLocalChange, type Database } from './connection.js';
import type { BrokerStatements } from './schema.js';
import { isProcessAlive } from '../../process-alive.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS celeriac_inboxes (
  routing_key TEXT PRIMARY KEY,
  pid INTEGER NOT NULL,
  hostname TEXT NOT NULL,
  opened_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_replies (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  routing_key TEXT NOT NULL,
  ticket TEXT NOT NULL,
  body TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_replies_inbox ON celeriac_replies (routing_key, id);
`;

/** Replies nobody read within this long are pruned. */
export const REPLY_RETENTION_MS = 60_000;
/** How often a subscriber checks for commits it was not told of (commands, then replies). */
const COMMAND_POLL_MS = 1_000;
const REPLY_POLL_MS = 250;
const HOST = hostname();

interface ReplyStatements {
  insert: Statement;
  prune: Statement;
  read: Statement;
  consumed: Statement;
  register: Statement;
  unregister: Statement;
  inboxesHere: Statement;
}

const prepared = new WeakMap<Database, ReplyStatements>();

function statementsOf(db: Database): ReplyStatements {
  let statements = prepared.get(db);
  if (!statements) {
    db.exec(SCHEMA);
    statements = {
      insert: db.prepare(
        `INSERT INTO celeriac_replies (routing_key, ticket, body, at)
         SELECT @key, @ticket, @body, @at WHERE EXISTS (SELECT 1 FROM celeriac_inboxes WHERE routing_key = @key)`,
      ),
      prune: db.prepare(`DELETE FROM celeriac_replies WHERE at < ?`),
      read: db.prepare(`SELECT id, ticket, body FROM celeriac_replies WHERE routing_key = ? AND id > ? ORDER BY id`),
      consumed: db.prepare(`DELETE FROM celeriac_replies WHERE routing_key = ? AND id <= ?`),
      register: db.prepare(`INSERT INTO celeriac_inboxes (routing_key, pid, hostname, opened_at) VALUES (?, ?, ?, ?)`),
      unregister: db.prepare(`DELETE FROM celeriac_inboxes WHERE routing_key = ?`),
      inboxesHere: db.prepare(`SELECT routing_key, pid FROM celeriac_inboxes WHERE hostname = ?`),
    };
    prepared.set(db, statements);
  }
  return statements;
}

/** What the channel needs of the broker. */
export interface ControlStore {
  readonly path: string;
  readonly sql: BrokerStatements;
  /** The open connection; throws when closed. */
  database(): Database;
  /** Queues a write for the next batch (one transaction per event-loop turn). */
  write<T>(run: () => T): Promise<T>;
}

/** Control commands kept in a table, so a worker that starts late still hears recent revokes. */
export class SqliteControlChannel implements ControlChannel {
  readonly replaysRecent = true;
  readonly #stops = new Set<() => void>();

  constructor(private readonly store: ControlStore) {}

  async broadcast(command: ControlCommand): Promise<void> {
    const now = Date.now();
    await this.store.write(() => {
      this.store.sql.pruneControl.run(now - CONTROL_REPLAY_MS);
      this.store.sql.insertControl.run(now, JSON.stringify(command));
    });
    announceChange(this.store.path, 'control');
  }

  async subscribe(onCommand: (command: ControlCommand) => void, onDropped?: (reason: string) => void): Promise<Consumer> {
    const sql = this.store.sql;
    let lastId = 0;
    const emit = (rows: Array<{ id: number; command: string }>, replay: boolean): void => {
      const now = Date.now();
      for (const row of rows) {
        lastId = Math.max(lastId, row.id);
        const command = parseRow(row.command);
        if (!command) onDropped?.(`control row ${row.id} is not a command`);
        else if (!replay || replayable(command, now)) onCommand(command);
      }
    };
    emit(sql.controlReplay.all(Date.now() - CONTROL_REPLAY_MS) as Array<{ id: number; command: string }>, true);
    lastId = Math.max(lastId, (sql.lastControlId.get() as { id: number }).id);
    const deliver = (): void => {
      try {
        emit(sql.controlSince.all(lastId) as Array<{ id: number; command: string }>, false);
      } catch {
        // Busy or closing; the next change delivers.
      }
    };
    const stop = this.#listen('control', deliver, COMMAND_POLL_MS, false);
    deliver(); // what another process committed before the watch began
    return { cancel: async () => stop() };
  }

  /** Writes a reply for the inbox `to` names, if that inbox is open. */
  async reply(to: ReplyAddress, ticket: string, body: Record<string, unknown>): Promise<void> {
    const text = encodeJson(body);
    const now = Date.now();
    const written = await this.store.write(() => {
      const sql = statementsOf(this.store.database());
      sql.prune.run(now - REPLY_RETENTION_MS);
      return sql.insert.run({ key: to.routingKey, ticket, body: text, at: now }).changes;
    });
    if (written > 0) announceChange(this.store.path, 'replies');
  }

  async openInbox(): Promise<ReplyInbox> {
    const key = randomUUID();
    await this.store.write(() => {
      const sql = statementsOf(this.store.database());
      for (const inbox of sql.inboxesHere.all(HOST) as Array<{ routing_key: string; pid: number }>) {
        if (!isProcessAlive(inbox.pid)) {
          sql.unregister.run(inbox.routing_key);
          sql.consumed.run(inbox.routing_key, Number.MAX_SAFE_INTEGER);
        }
      }
      sql.register.run(key, process.pid, HOST, Date.now());
    });
    let lastId = 0;
    let stop: (() => void) | undefined;
    let closed = false;
    return {
      address: { exchange: PIDBOX_REPLY_EXCHANGE, routingKey: key },
      listen: (onReply) => {
        if (closed || stop) return;
        const read = (): void => {
          let rows: Array<{ id: number; ticket: string; body: string }>;
          try {
            rows = statementsOf(this.store.database()).read.all(key, lastId) as typeof rows;
          } catch {
            return; // busy or closing: the next change or poll reads on
          }
          if (rows.length === 0) return;
          lastId = rows.at(-1)!.id;
          const upTo = lastId;
          void this.store.write(() => statementsOf(this.store.database()).consumed.run(key, upTo)).catch(() => undefined);
          for (const row of rows) {
            const body = decodeJsonObject(Buffer.from(row.body));
            if (body && !closed) onReply(row.ticket, body);
          }
        };
        stop = this.#listen('replies', read, REPLY_POLL_MS, true);
        read();
      },
      close: async () => {
        if (closed) return;
        closed = true;
        stop?.();
        await this.store
          .write(() => {
            const sql = statementsOf(this.store.database());
            sql.unregister.run(key);
            sql.consumed.run(key, Number.MAX_SAFE_INTEGER);
          })
          .catch(() => undefined); // the broker is closed: its inboxes go with the next one opened
      },
    };
  }

  /**
   * Calls `read` on every change of `topic` in this process and on every commit of another
   * process (checked every `pollMs` too); returns the stop. With `holdsProcess`, the watch keeps
   * the process alive, as a socket does on the other brokers.
   */
  #listen(topic: string, read: () => void, pollMs: number, holdsProcess: boolean): () => void {
    const unlisten = onLocalChange(this.store.path, topic, read);
    const watcher = new ExternalChangeWatcher(this.store.database(), this.store.path, read, pollMs, holdsProcess);
    watcher.start();
    const stop = (): void => {
      unlisten();
      watcher.stop();
      this.#stops.delete(stop);
    };
    this.#stops.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    for (const stop of [...this.#stops]) stop();
  }
}

/** A stored command; null for a row that is not one (the next rows still arrive). */
function parseRow(text: string): ControlCommand | null {
  try {
    const command = JSON.parse(text) as ControlCommand;
    return typeof command === 'object' && command !== null && typeof command.method === 'string' ? command : null;
  } catch {
    return null;
  }
}
