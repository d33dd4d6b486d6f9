/**
 * `memory://NAME`: a beat store inside one process, shared by every store opened on the same
 * name (and namespace). For tests and for apps on the in-process memory broker; lease times
 * come from the app's clock, so a `ManualClock` moves them.
 */
import { randomUUID } from 'node:crypto';
import type { ParsedUrl } from '../url.js';
import type { StoredEntry } from './entry.js';
import type { BeatStore, LeaderInfo, LeaseGrant, LeaseRefusal, RunRecord, StoreContext, StoreSnapshot } from './store.js';
import type { Clock } from '../clock.js';

interface Shared {
  lease: { token: string; holder: string; expiresAt: number } | undefined;
  epoch: number;
  version: number;
  runs: Map<string, RunRecord>;
  entries: Map<string, StoredEntry>;
  paused: Set<string>;
}

const stores = new Map<string, Shared>();

/** A beat store in this process's memory. */
export class MemoryBeatStore implements BeatStore {
  readonly displayUrl: string;
  readonly #shared: Shared;
  readonly #clock: Clock;

  constructor(url: ParsedUrl, context: StoreContext) {
    this.displayUrl = url.display;
    this.#clock = context.clock;
    const key = `${url.display}\n${context.namespace}`;
    let shared = stores.get(key);
    if (!shared) {
      shared = { lease: undefined, epoch: 0, version: 0, runs: new Map(), entries: new Map(), paused: new Set() };
      stores.set(key, shared);
    }
    this.#shared = shared;
  }

  async connect(): Promise<void> {}

  async close(): Promise<void> {}

  async acquire(holder: string, leaseMs: number): Promise<LeaseGrant | LeaseRefusal> {
    const now = this.#clock.now();
    const lease = this.#shared.lease;
    if (lease && lease.expiresAt > now) return { acquired: false, holder: lease.holder, expiresInMs: lease.expiresAt - now };
    const epoch = ++this.#shared.epoch;
    const token = `${epoch}.${randomUUID()}`;
    this.#shared.lease = { token, holder, expiresAt: now + leaseMs };
    return { acquired: true, token, epoch };
  }

  async renew(token: string, leaseMs: number): Promise<boolean> {
    if (!this.#holds(token)) return false;
    this.#shared.lease!.expiresAt = this.#clock.now() + leaseMs;
    return true;
  }

  async release(token: string): Promise<void> {
    if (this.#shared.lease?.token === token) this.#shared.lease = undefined;
  }

  async leader(): Promise<LeaderInfo | null> {
    const lease = this.#shared.lease;
    const now = this.#clock.now();
    if (!lease || lease.expiresAt <= now) return null;
    return { holder: lease.holder, epoch: Number(lease.token.split('.')[0]), expiresInMs: lease.expiresAt - now };
  }

  async runs(): Promise<RunRecord[]> {
    return [...this.#shared.runs.values()];
  }

  async recordRuns(token: string, runs: readonly RunRecord[]): Promise<boolean> {
    if (!this.#holds(token)) return false;
    for (const run of runs) this.#shared.runs.set(run.name, { ...run });
    return true;
  }

  async version(): Promise<number> {
    return this.#shared.version;
  }

  async snapshot(): Promise<StoreSnapshot> {
    const { version, entries, paused } = this.#shared;
    return { version, entries: [...entries.values()].map((entry) => structuredClone(entry)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), paused: [...paused] };
  }

  async putEntry(entry: StoredEntry): Promise<boolean> {
    const existed = this.#shared.entries.has(entry.name);
    this.#shared.entries.set(entry.name, structuredClone(entry));
    this.#shared.version++;
    return existed;
  }

  async removeEntry(name: string): Promise<boolean> {
    const existed = this.#shared.entries.delete(name);
    this.#shared.paused.delete(name);
    this.#shared.runs.delete(name);
    if (existed) this.#shared.version++;
    return existed;
  }

  async setPaused(name: string, paused: boolean): Promise<boolean> {
    const set = this.#shared.paused;
    if (set.has(name) === paused) return false;
    if (paused) set.add(name);
    else set.delete(name);
    this.#shared.version++;
    return true;
  }

  #holds(token: string): boolean {
    const lease = this.#shared.lease;
    return lease !== undefined && lease.token === token && lease.expiresAt > this.#clock.now();
  }
}
