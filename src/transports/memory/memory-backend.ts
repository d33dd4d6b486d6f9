/**
 * `memory://[name]`: an in-process result backend, shared by every instance with the same name
 * in one process. Results, saved groups and chord joins expire after `?expires=SECONDS`
 * (default one day).
 */
import { numberOption, type ParsedUrl } from '../../url.js';
import { SUCCESS } from '../../states.js';
import {
  DEFAULT_RESULT_EXPIRES_SECONDS,
  type ChordJoin,
  type ChordPart,
  type GroupTuple,
  type ResultBackend,
  type ResultMeta,
  type Unwatch,
} from '../../backends/backend.js';
import { WatcherRegistry } from '../../backends/watchers.js';

interface Expiring {
  expiresAt: number;
}

interface Entry extends Expiring {
  meta: ResultMeta;
}

interface SavedGroup extends Expiring {
  tuple: GroupTuple;
}

interface Join extends Expiring {
  /** Null until set: parts may end first, and are kept, as on Redis. */
  size: number | null;
  /** Keyed by task id: a redelivered member replaces its part and counts once. */
  parts: Map<string, ChordPart>;
}

class ResultStore {
  readonly entries = new Map<string, Entry>();
  readonly groups = new Map<string, SavedGroup>();
  readonly joins = new Map<string, Join>();
  readonly watchers = new WatcherRegistry();
}

const stores = new Map<string, ResultStore>();

/** The in-process result backend. */
export class MemoryBackend implements ResultBackend {
  readonly displayUrl: string;
  /** The join, shared by every instance on the same store. */
  readonly chords: ChordJoin;
  readonly #store: ResultStore;
  readonly #expiresMs: number;

  constructor(url: ParsedUrl) {
    this.displayUrl = url.display;
    this.#expiresMs = numberOption(url.options, 'expires', DEFAULT_RESULT_EXPIRES_SECONDS) * 1000;
    const name = url.url.host + url.url.pathname;
    let store = stores.get(name);
    if (!store) {
      store = new ResultStore();
      stores.set(name, store);
    }
    this.#store = store;
    this.chords = new MemoryChordJoin(store.joins, this.#expiresMs);
  }

  async connect(): Promise<void> {}

  async store(meta: ResultMeta): Promise<void> {
    const existing = live(this.#store.entries, meta.task_id);
    if (existing?.meta.status === SUCCESS) return;
    this.#store.entries.set(meta.task_id, { meta, expiresAt: Date.now() + this.#expiresMs });
    this.#store.watchers.notify(meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return live(this.#store.entries, taskId)?.meta ?? null;
  }

  async forget(taskId: string): Promise<void> {
    this.#store.entries.delete(taskId);
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    return this.#store.watchers.add(taskId, onChange);
  }

  async saveGroup(groupId: string, tuple: GroupTuple): Promise<void> {
    this.#store.groups.set(groupId, { tuple, expiresAt: Date.now() + this.#expiresMs });
  }

  async restoreGroup(groupId: string): Promise<GroupTuple | null> {
    return live(this.#store.groups, groupId)?.tuple ?? null;
  }

  async forgetGroup(groupId: string): Promise<void> {
    this.#store.groups.delete(groupId);
  }

  /** Deletes expired results, saved groups and chord joins; returns how many. */
  async cleanup(): Promise<number> {
    const now = Date.now();
    return expire(this.#store.entries, now) + expire(this.#store.groups, now) + expire(this.#store.joins, now);
  }

  async close(): Promise<void> {}
}

/** The join in a store's map. Each call runs to completion on the event loop, so it is atomic. */
class MemoryChordJoin implements ChordJoin {
  constructor(
    private readonly joins: Map<string, Join>,
    private readonly expiresMs: number,
  ) {}

  async setSize(groupId: string, size: number): Promise<void> {
    this.#renew(groupId).size = size;
  }

  async addPart(part: ChordPart): Promise<ChordPart[] | null> {
    const join = this.#renew(part.groupId);
    join.parts.set(part.taskId, part);
    if (join.size === null || join.parts.size < join.size) return null;
    this.joins.delete(part.groupId);
    return [...join.parts.values()].sort(byGroupIndex);
  }

  /** The live join of a group (a fresh one when none is), its expiry renewed. */
  #renew(groupId: string): Join {
    let join = live(this.joins, groupId);
    if (!join) {
      join = { size: null, parts: new Map(), expiresAt: 0 };
      this.joins.set(groupId, join);
    }
    join.expiresAt = Date.now() + this.expiresMs;
    return join;
  }
}

/** Header order; parts without an index last (stable, so those keep their arrival order). */
function byGroupIndex(a: ChordPart, b: ChordPart): number {
  if (a.groupIndex === null || b.groupIndex === null) return Number(a.groupIndex === null) - Number(b.groupIndex === null);
  return a.groupIndex - b.groupIndex;
}

/** The entry under `key` unless it has expired (then it is dropped). */
function live<T extends Expiring>(map: Map<string, T>, key: string): T | undefined {
  const entry = map.get(key);
  if (entry && entry.expiresAt <= Date.now()) {
    map.delete(key);
    return undefined;
  }
  return entry;
}

/** Drops every expired entry of `map`; returns how many. */
function expire(map: Map<string, Expiring>, now: number): number {
  let removed = 0;
  for (const [key, entry] of map) {
    if (entry.expiresAt <= now) {
      map.delete(key);
      removed++;
    }
  }
  return removed;
}
