/** Who is watching which task id: the shared bookkeeping behind every backend's `watch`. */
import type { ResultMeta, Unwatch } from './backend.js';

type Listener = (meta: ResultMeta) => void;

/** Listeners per task id; `notify` calls them on a later microtask, never inside the store. */
export class WatcherRegistry {
  readonly #listeners = new Map<string, Set<Listener>>();

  /** Adds a listener; the returned function removes it (and the id once nobody watches). */
  add(taskId: string, listener: Listener): Unwatch {
    let set = this.#listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.#listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#listeners.get(taskId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.#listeners.delete(taskId);
    };
  }

  /** True when anyone watches `taskId`. */
  has(taskId: string): boolean {
    return this.#listeners.has(taskId);
  }

  /** The ids being watched. */
  ids(): string[] {
    return [...this.#listeners.keys()];
  }

  get size(): number {
    return this.#listeners.size;
  }

  notify(meta: ResultMeta): void {
    const set = this.#listeners.get(meta.task_id);
    if (!set) return;
    queueMicrotask(() => {
      for (const listener of [...set]) listener(meta);
    });
  }
}
