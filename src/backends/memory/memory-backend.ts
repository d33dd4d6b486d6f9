/**
 * `memory://[name]`: an in-process result backend, shared by every instance with the same name
 * in one process. Results expire after `?expires=SECONDS` (default one day).
 */
import { numberOption, type ParsedUrl } from '../../url.js';
import { SUCCESS } from '../../states.js';
import { DEFAULT_RESULT_EXPIRES_SECONDS, type ResultBackend, type ResultMeta, type Unwatch } from '../backend.js';
import { WatcherRegistry } from '../watchers.js';

interface Entry {
  meta: ResultMeta;
  expiresAt: number;
}

class ResultStore {
  readonly entries = new Map<string, Entry>();
  readonly watchers = new WatcherRegistry();
}

const stores = new Map<string, ResultStore>();

/** The in-process result backend. */
export class MemoryBackend implements ResultBackend {
  readonly displayUrl: string;
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
  }

  async connect(): Promise<void> {}

  async store(meta: ResultMeta): Promise<void> {
    const existing = this.#live(meta.task_id);
    if (existing?.meta.status === SUCCESS) return;
    this.#store.entries.set(meta.task_id, { meta, expiresAt: Date.now() + this.#expiresMs });
    this.#store.watchers.notify(meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.#live(taskId)?.meta ?? null;
  }

  async forget(taskId: string): Promise<void> {
    this.#store.entries.delete(taskId);
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    return this.#store.watchers.add(taskId, onChange);
  }

  async cleanup(): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const [id, entry] of this.#store.entries) {
      if (entry.expiresAt <= now) {
        this.#store.entries.delete(id);
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {}

  #live(taskId: string): Entry | undefined {
    const entry = this.#store.entries.get(taskId);
    if (entry && entry.expiresAt <= Date.now()) {
      this.#store.entries.delete(taskId);
      return undefined;
    }
    return entry;
  }
}
