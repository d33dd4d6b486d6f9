/**
 * Opening the embedded SQLite file, and noticing when it changes: in this process through an
 * emitter keyed by the file's path, in other processes through the kernel's report of a write to
 * its log and `PRAGMA data_version`.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { ConfigurationError, ConnectionError } from '../../errors.js';
import { numberOption } from '../../url.js';
import { onLogWrite } from './file-writes.js';
import { WriteBatcher } from './write-batcher.js';

export type Database = BetterSqlite3.Database;

/** How writes reach the disk: NORMAL survives a process crash, FULL also a power cut. */
export type Synchronous = 'normal' | 'full';

/** Reads the `synchronous` URL option (default `normal`). */
export function synchronousOption(options: URLSearchParams): Synchronous {
  const value = options.get('synchronous') ?? 'normal';
  if (value !== 'normal' && value !== 'full') throw new ConfigurationError(`URL option synchronous=${value} is not one of normal, full`);
  return value;
}

/**
 * How many pages the log may hold before a commit copies them back into the file (SQLite's
 * default is 1000): each copy syncs the file to disk twice and stalls the committing event loop,
 * and fewer, larger copies write a page rewritten by many commits (an index page of results) once.
 */
const AUTOCHECKPOINT_PAGES = 10_000;
/** The size the log is cut back to after a copy, once larger (bytes). */
const LOG_SIZE_LIMIT = 16 * 1024 * 1024;

/** How long opening waits for other processes opening the same new file at the same time. */
const OPEN_BUSY_MS = 10_000;

/**
 * Opens (creating if needed) the file at `path` in WAL mode. Processes that open a new file at
 * the same moment (two workers starting together) may find it locked while one of them switches
 * it to WAL, a step SQLite's busy timeout does not cover: opening then tries again for a while.
 */
export async function openDatabase(path: string, synchronous: Synchronous = 'normal'): Promise<Database> {
  const { default: Sqlite } = await import('better-sqlite3');
  const deadline = Date.now() + OPEN_BUSY_MS;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    let db: Database | undefined;
    try {
      mkdirSync(dirname(path), { recursive: true });
      db = new Sqlite(path, { timeout: OPEN_BUSY_MS });
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
      db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
      db.pragma(`journal_size_limit = ${LOG_SIZE_LIMIT}`);
      return db;
    } catch (error) {
      db?.close();
      const busy = (error as { code?: string }).code?.startsWith('SQLITE_BUSY') ?? false;
      if (!busy || Date.now() + pause > deadline) {
        throw new ConnectionError(`cannot open SQLite database ${path}: ${(error as Error).message}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/** A use of a {@link shareDatabase} connection; `release()` once done with it. */
export interface SharedDatabase {
  readonly db: Database;
  /** The connection's writes: those of every user made in one turn share one commit. */
  readonly writes: WriteBatcher;
  release(): void;
}

/**
 * Queues `run` for the next commit of the connection `connected` returns; a promise that rejects
 * (rather than a throw) when there is none, so callers treat a closed store like a failed write.
 */
export function enqueueWrite<T>(connected: () => SharedDatabase, run: () => T, afterCommit: () => void): Promise<T> {
  try {
    return connected().writes.enqueue(run, afterCommit);
  } catch (error) {
    return Promise.reject(error as Error);
  }
}

interface OpenConnection {
  db: Database;
  writes: WriteBatcher;
  users: number;
}

const connections = new Map<string, Promise<OpenConnection>>();

/**
 * The connection to the file at `path` that the brokers and result backends of this process
 * share (one per `synchronous` setting). One connection keeps one page cache warm: each
 * connection drops its whole cache whenever another one commits, so a worker whose broker and
 * result backend wrote through connections of their own read back much of the file on every
 * turn; and the writes of one turn, a worker's acks and results alike, share one commit.
 * Statements run on it one at a time (the event loop is single-threaded). The last release
 * closes it.
 */
export async function shareDatabase(path: string, synchronous: Synchronous = 'normal'): Promise<SharedDatabase> {
  const key = `${synchronous}:${path}`;
  let opening = connections.get(key);
  if (!opening) {
    opening = openDatabase(path, synchronous).then((db) => ({ db, writes: new WriteBatcher(() => db), users: 0 }));
    connections.set(key, opening);
    opening.catch(() => connections.delete(key));
  }
  const connection = await opening;
  connection.users++;
  let released = false;
  return {
    db: connection.db,
    writes: connection.writes,
    release: () => {
      if (released) return;
      released = true;
      if (--connection.users > 0) return;
      connections.delete(key);
      connection.db.close();
    },
  };
}

/** The absolute path a path-style URL names. */
export function absolutePath(path: string): string {
  return resolve(path);
}

const localChanges = new EventEmitter();
localChanges.setMaxListeners(0);

/**
 * Tells every listener in this process that `path` changed (`topic`: messages, results,
 * control). `origin` names the writer, so it can skip its own announcement.
 */
export function announceChange(path: string, topic: string, origin?: object): void {
  localChanges.emit(`${topic}:${path}`, origin);
}

/** Listens for changes of `path` made in this process; returns the unsubscribe function. */
export function onLocalChange(path: string, topic: string, listener: (origin: object | undefined) => void): () => void {
  localChanges.on(`${topic}:${path}`, listener);
  return () => localChanges.off(`${topic}:${path}`, listener);
}

/** How often a watcher checks for changes it was not told of, unless `poll_interval` says otherwise. */
const DEFAULT_POLL_MS = 1_000;

/** Reads the `poll_interval` URL option (s, default 1): the safety poll of {@link ExternalChangeWatcher}. */
export function pollIntervalOption(options: URLSearchParams): number {
  const ms = numberOption(options, 'poll_interval', DEFAULT_POLL_MS / 1000) * 1000;
  if (!(ms > 0)) throw new ConfigurationError(`URL option poll_interval=${options.get('poll_interval')} is not a positive number of seconds`);
  return ms;
}

/**
 * After a write to the log that showed no commit yet, when to look again (ms after the write):
 * the writer updates the shared index, which `data_version` reads, just after writing the log.
 */
const RECHECKS_MS = [1, 4, 16];

/**
 * Calls `onChange` when another connection (another process, or another connection of this one)
 * commits to the file at `path`, read `db`: on each write to the file's write-ahead log the kernel
 * reports (file-writes.ts), and every `pollMs` in case one went unreported, it compares
 * `PRAGMA data_version`, which changes only when another connection committed. While started, the
 * poll keeps the process alive, as a socket does on the other brokers, unless `holdsProcess` is
 * false.
 */
export class ExternalChangeWatcher {
  #poll: NodeJS.Timeout | undefined;
  #recheck: NodeJS.Timeout | undefined;
  #rechecks = 0;
  #unlisten: (() => void) | undefined;
  #version: number;

  constructor(
    private readonly db: Database,
    private readonly path: string,
    private readonly onChange: () => void,
    private readonly pollMs = DEFAULT_POLL_MS,
    private readonly holdsProcess = true,
  ) {
    this.#version = this.#read();
  }

  /** Starts (or keeps) watching. */
  start(): void {
    if (this.#unlisten) return;
    this.#unlisten = onLogWrite(this.path, () => this.#written());
    this.#poll = setInterval(() => this.#check(), this.pollMs);
    if (!this.holdsProcess) this.#poll.unref();
  }

  stop(): void {
    this.#unlisten?.();
    this.#unlisten = undefined;
    clearInterval(this.#poll);
    clearTimeout(this.#recheck);
    this.#poll = this.#recheck = undefined;
  }

  #written(): void {
    this.#rechecks = 0;
    if (!this.#check()) this.#scheduleRecheck();
  }

  #scheduleRecheck(): void {
    clearTimeout(this.#recheck);
    const delay = RECHECKS_MS[this.#rechecks];
    if (delay === undefined || !this.#unlisten) return;
    const previous = RECHECKS_MS[this.#rechecks - 1] ?? 0;
    this.#rechecks++;
    this.#recheck = setTimeout(() => {
      this.#recheck = undefined;
      if (!this.#check()) this.#scheduleRecheck();
    }, delay - previous);
  }

  /** Calls `onChange` if the file changed since the last check; says whether it did. */
  #check(): boolean {
    let version: number;
    try {
      version = this.#read();
    } catch {
      return true; // the connection closed under us (or is busy): nothing to look again for
    }
    if (version === this.#version) return false;
    this.#version = version;
    this.onChange();
    return true;
  }

  #read(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }
}
