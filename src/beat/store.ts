/**
 * The beat store port: where beat processes keep their leader lease, the last run of every
 * entry, and the entries added at run time. One per transport that can hold a lock (SQLite,
 * Redis, and memory for one process); opened from a URL, drivers loaded lazily.
 */
import type { Clock } from '../clock.js';
import { ConfigurationError } from '../errors.js';
import { maskPassword, parseTransportUrl } from '../url.js';
import type { StoredEntry } from './entry.js';

/** The lease was taken: `token` fences every write the leader makes. */
export interface LeaseGrant {
  readonly acquired: true;
  /** Unique to this tenure; the store refuses a fenced write carrying any other. */
  readonly token: string;
  /** Counts tenures: each new leader's is higher. */
  readonly epoch: number;
}

/** Another process holds the lease. */
export interface LeaseRefusal {
  readonly acquired: false;
  readonly holder: string | undefined;
  /** When it lapses unless renewed, from now (ms). */
  readonly expiresInMs: number;
}

/** The last run of one entry. */
export interface RunRecord {
  readonly name: string;
  /** The scheduled time (ms) of the last run sent or skipped; the next run comes after it. */
  readonly lastRunAt: number;
  /** Runs sent so far. */
  readonly runs: number;
  /** When the last run was sent (ms), if one was. */
  readonly sentAt?: number;
}

/** Who leads, for listings. */
export interface LeaderInfo {
  readonly holder: string;
  readonly epoch: number;
  readonly expiresInMs: number;
}

/** The entries kept in the store, and which entries (stored or in code) are paused. */
export interface StoreSnapshot {
  /** Changes with every add, change, removal, pause and resume. */
  readonly version: number;
  readonly entries: readonly StoredEntry[];
  readonly paused: readonly string[];
  /** Names of stored entries whose JSON could not be read (left out of `entries`). */
  readonly unreadable?: readonly string[];
}

/** A beat store. Every method rejects with a ConnectionError when the store cannot be reached. */
export interface BeatStore {
  /** The URL, credentials masked. */
  readonly displayUrl: string;
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Takes the lease for `leaseMs` if nobody holds it (or the holder's lapsed). */
  acquire(holder: string, leaseMs: number): Promise<LeaseGrant | LeaseRefusal>;
  /**
   * Extends the lease by `leaseMs` from now if `token` still holds it (compare-and-renew); false
   * when it does not. This is also the fencing check made before each send.
   */
  renew(token: string, leaseMs: number): Promise<boolean>;
  /** Gives the lease up if `token` holds it (compare-and-delete), so another takes over at once. */
  release(token: string): Promise<void>;
  /** The current holder, or null. */
  leader(): Promise<LeaderInfo | null>;
  /** Every entry's last run. */
  runs(): Promise<RunRecord[]>;
  /** Writes last runs if `token` still holds the lease (fenced); false, writing nothing, when it does not. */
  recordRuns(token: string, runs: readonly RunRecord[]): Promise<boolean>;
  /** The snapshot version alone (cheap; read every tick). */
  version(): Promise<number>;
  snapshot(): Promise<StoreSnapshot>;
  /** Adds or replaces a stored entry; true when it replaced one. */
  putEntry(entry: StoredEntry): Promise<boolean>;
  /** Removes a stored entry, its pause and its last run; false when there was none. */
  removeEntry(name: string): Promise<boolean>;
  /** Pauses or resumes an entry by name; false when it already was. */
  setPaused(name: string, paused: boolean): Promise<boolean>;
}

/** What opening a store takes besides its URL. */
export interface StoreContext {
  /** Lease times on SQLite and memory stores (Redis keeps time on its server). */
  clock: Clock;
  /** Separates beat groups sharing one store. */
  namespace: string;
}

/** The URL schemes a beat store can be opened on. */
export const STORE_SCHEMES = ['sqlite', 'redis', 'rediss', 'memory'] as const;

/** True when `url`'s scheme can hold beat's lock. */
export function canHoldLock(url: string): boolean {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  return scheme !== undefined && (STORE_SCHEMES as readonly string[]).includes(scheme);
}

/**
 * The store for an app: `lock` when given, else the broker when it can hold a lock (SQLite,
 * Redis, memory), else the result backend.
 *
 * @throws {@link ConfigurationError} saying to pass a lock URL when neither can.
 */
export function storeUrlFor(brokerUrl: string, backendUrl: string, lock?: string): string {
  if (lock !== undefined) {
    if (!canHoldLock(lock)) {
      throw new ConfigurationError(`the beat lock URL ${maskPassword(lock)} cannot hold a lock; use sqlite://PATH or redis://HOST:6379/0`);
    }
    return lock;
  }
  if (canHoldLock(brokerUrl) && !brokerUrl.includes('***')) return brokerUrl;
  if (canHoldLock(backendUrl) && !backendUrl.includes('***')) return backendUrl;
  throw new ConfigurationError(
    `beat keeps its leader lock, last runs and stored entries in SQLite or Redis, and neither the broker (${maskPassword(brokerUrl)}) nor the result backend (${maskPassword(backendUrl)}) is one; name one with --lock redis://HOST:6379/0 or --lock sqlite://PATH (app.beat.configure({ lock }) in code)`,
  );
}

/**
 * Creates (but does not connect) the store a URL names.
 *
 * @throws {@link ConfigurationError} for a scheme that cannot hold a lock.
 */
export async function createBeatStore(url: string, context: StoreContext): Promise<BeatStore> {
  const parsed = parseTransportUrl(url, 'broker');
  switch (parsed.scheme) {
    case 'sqlite':
      return new (await import('../transports/sqlite/beat-store.js')).SqliteBeatStore(parsed, url, context);
    case 'redis':
    case 'rediss':
      return new (await import('../transports/redis/beat-store.js')).RedisBeatStore(parsed, context);
    case 'memory':
      return new (await import('./memory-store.js')).MemoryBeatStore(parsed, context);
    default:
      throw new ConfigurationError(`the beat lock URL ${parsed.display} cannot hold a lock; use sqlite://PATH or redis://HOST:6379/0`);
  }
}
