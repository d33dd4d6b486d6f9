/**
 * Opening the embedded SQLite file, and noticing when it changes: in this process through an
 * emitter keyed by the file's path, in other processes through `PRAGMA data_version`.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { ConfigurationError, ConnectionError } from '../../errors.js';

export type Database = BetterSqlite3.Database;

/** How writes reach the disk: NORMAL survives a process crash, FULL also a power cut. */
export type Synchronous = 'normal' | 'full';

/** Reads the `synchronous` URL option (default `normal`). */
export function synchronousOption(options: URLSearchParams): Synchronous {
  const value = options.get('synchronous') ?? 'normal';
  if (value !== 'normal' && value !== 'full') throw new ConfigurationError(`URL option synchronous=${value} is not one of normal, full`);
  return value;
}

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

/**
 * Calls `onChange` when another connection (another process) commits to the file, by polling
 * `PRAGMA data_version`: every `minMs` right after a change, backing off to `maxMs` while quiet.
 */
export class ExternalChangeWatcher {
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #delay: number;
  #version: number;

  constructor(
    private readonly db: Database,
    private readonly onChange: () => void,
    private readonly minMs = 1,
    private readonly maxMs = 50,
  ) {
    this.#delay = minMs;
    this.#version = this.#read();
  }

  /** Starts (or keeps) polling. */
  start(): void {
    this.#running = true;
    this.#schedule();
  }

  /** Polls fast again: something is likely to change soon. */
  hurry(): void {
    this.#delay = this.minMs;
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer || !this.#running) return;
    this.#timer = setTimeout(() => this.#check(), this.#delay);
  }

  #check(): void {
    this.#timer = undefined;
    let version: number;
    try {
      version = this.#read();
    } catch {
      return; // the connection closed under us
    }
    if (version !== this.#version) {
      this.#version = version;
      this.#delay = this.minMs;
      this.onChange();
    } else {
      this.#delay = Math.min(this.maxMs, this.#delay * 2);
    }
    this.#schedule();
  }

  #read(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }
}
