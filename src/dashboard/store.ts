/**
 * The dashboard's memory of the fleet: a {@link State} fed by the event stream (workers alive
 * by heartbeat, tasks merged whatever order their events arrive in), bounded to `maxTasks`
 * tasks (the oldest go first), with the index the pages query: tasks in arrival order, counts
 * by state, name and worker, children by parent, and each task's searchable text. A filtered
 * page over 100,000 tasks is one pass over the arrival order, without sorting or copying.
 */
import type { CeleryEvent } from '../brokers/broker.js';
import type { Clock } from '../clock.js';
import { State, type EventTaskState, type TaskInfo, type WorkerInfo } from '../monitor/state.js';

/** Options of a {@link TaskStore}. */
export interface TaskStoreOptions {
  /** Tasks kept; the oldest go first. Default 100,000. */
  maxTasks?: number;
  clock?: Clock;
}

/** A query over the stored tasks; every field narrows it. */
export interface TaskQuery {
  state?: EventTaskState | undefined;
  name?: string | undefined;
  worker?: string | undefined;
  /** A task id (or its start), or text in its arguments, case-insensitive. */
  search?: string | undefined;
  /** Only tasks whose latest event is at or after this time (Unix seconds). */
  since?: number | undefined;
  /** Tasks skipped, newest first. Default 0. */
  offset?: number | undefined;
  /** Tasks returned. Default 50. */
  limit?: number | undefined;
}

/** One page of a query: the tasks, newest first, and how many match in all. */
export interface TaskPage {
  tasks: TaskInfo[];
  total: number;
  offset: number;
  limit: number;
}

/** What the index remembers of a task, to move its counts when it changes. */
interface Indexed {
  state: EventTaskState;
  name: string | null;
  worker: string | null;
  parentId: string | null;
  /** Lower-cased arguments, for search. */
  text: string;
  args: string | null;
  kwargs: string | null;
}

/** How a task changed with one event, for the metrics. */
export interface TaskChange {
  task: TaskInfo;
  /** Its state before the event; null for a task first seen. */
  previous: EventTaskState | null;
}

export class TaskStore {
  readonly state: State;
  /** Bumped on every task change, and on every worker change. */
  tasksVersion = 0;
  workersVersion = 0;
  readonly #maxTasks: number;
  /** Task ids in arrival order; the live ones start at `#head`. */
  #order: string[] = [];
  #head = 0;
  readonly #indexed = new Map<string, Indexed>();
  readonly #byState = new Map<string, number>();
  readonly #byName = new Map<string, number>();
  readonly #byWorker = new Map<string, number>();
  /** `name\0state` -> count. */
  readonly #byNameState = new Map<string, number>();
  readonly #children = new Map<string, Set<string>>();

  constructor(options: TaskStoreOptions = {}) {
    this.#maxTasks = options.maxTasks ?? 100_000;
    this.state = new State({ maxTasks: this.#maxTasks, ...(options.clock ? { clock: options.clock } : {}) });
  }

  /** Takes in one event; returns how its task changed (undefined for worker events and others). */
  event(event: CeleryEvent): TaskChange | undefined {
    this.state.event(event);
    if (event.type.startsWith('worker-')) {
      this.workersVersion++;
      return undefined;
    }
    const uuid = event['uuid'];
    if (typeof uuid !== 'string') return undefined;
    const task = this.state.tasks.get(uuid);
    if (!task) return undefined;
    this.tasksVersion++;
    const before = this.#indexed.get(uuid);
    if (!before) {
      this.#order.push(uuid);
      this.#evict();
    }
    this.#reindex(task, before);
    return { task, previous: before?.state ?? null };
  }

  /** A stored task, or undefined. */
  get(uuid: string): TaskInfo | undefined {
    return this.state.tasks.get(uuid);
  }

  /** Ids of the stored tasks that name `uuid` as their parent. */
  childrenOf(uuid: string): string[] {
    return [...(this.#children.get(uuid) ?? [])];
  }

  get size(): number {
    return this.#indexed.size;
  }

  /** Stored tasks by state. */
  countsByState(): ReadonlyMap<string, number> {
    return this.#byState;
  }

  /** Stored tasks by name, and by name and state (`[name, state, count]`). */
  countsByName(): ReadonlyMap<string, number> {
    return this.#byName;
  }

  countsByNameAndState(): Array<[string, string, number]> {
    return [...this.#byNameState].map(([key, count]) => {
      const [name = '', state = ''] = key.split('\0');
      return [name, state, count];
    });
  }

  /** Workers named by stored tasks. */
  countsByWorker(): ReadonlyMap<string, number> {
    return this.#byWorker;
  }

  /** Every worker the events named, alive or not. */
  workers(): WorkerInfo[] {
    return [...this.state.workers.values()].sort((a, b) => a.hostname.localeCompare(b.hostname));
  }

  /** The tasks that match `query`, newest first, one page of them. */
  query(query: TaskQuery = {}): TaskPage {
    const offset = Math.max(0, Math.floor(query.offset ?? 0));
    const limit = Math.min(1000, Math.max(1, Math.floor(query.limit ?? 50)));
    const search = query.search?.trim().toLowerCase() || undefined;
    if (search && this.state.tasks.has(search)) {
      const task = this.state.tasks.get(search)!;
      return { tasks: offset === 0 ? [task] : [], total: 1, offset, limit };
    }
    const tasks: TaskInfo[] = [];
    let total = 0;
    for (let i = this.#order.length - 1; i >= this.#head; i--) {
      const uuid = this.#order[i]!;
      const entry = this.#indexed.get(uuid);
      if (!entry) continue;
      if (query.state && entry.state !== query.state) continue;
      if (query.name && entry.name !== query.name) continue;
      if (query.worker && entry.worker !== query.worker) continue;
      if (search && !uuid.startsWith(search) && !entry.text.includes(search)) continue;
      if (query.since !== undefined) {
        const task = this.state.tasks.get(uuid);
        if (!task || task.timestamp < query.since) continue;
      }
      if (total >= offset && tasks.length < limit) tasks.push(this.state.tasks.get(uuid)!);
      total++;
    }
    return { tasks, total, offset, limit };
  }

  /** Updates the index for `task`, which was indexed as `before` (or not at all). */
  #reindex(task: TaskInfo, before: Indexed | undefined): void {
    if (before && before.state === task.state && before.name === task.name && before.worker === task.worker && before.parentId === task.parentId && before.args === task.args && before.kwargs === task.kwargs) return;
    if (before) this.#count(before, -1);
    const entry: Indexed = {
      state: task.state,
      name: task.name,
      worker: task.worker,
      parentId: task.parentId,
      args: task.args,
      kwargs: task.kwargs,
      text: before && before.args === task.args && before.kwargs === task.kwargs ? before.text : `${task.args ?? ''}\n${task.kwargs ?? ''}`.toLowerCase(),
    };
    this.#count(entry, 1);
    if (entry.parentId !== before?.parentId) {
      if (before?.parentId) this.#children.get(before.parentId)?.delete(task.uuid);
      if (entry.parentId) {
        let children = this.#children.get(entry.parentId);
        if (!children) this.#children.set(entry.parentId, (children = new Set()));
        children.add(task.uuid);
      }
    }
    this.#indexed.set(task.uuid, entry);
  }

  #count(entry: Indexed, by: 1 | -1): void {
    bump(this.#byState, entry.state, by);
    if (entry.name !== null) {
      bump(this.#byName, entry.name, by);
      bump(this.#byNameState, `${entry.name}\0${entry.state}`, by);
    }
    if (entry.worker !== null) bump(this.#byWorker, entry.worker, by);
  }

  /** Drops from the index what the State let go (its oldest tasks), and compacts the order. */
  #evict(): void {
    while (this.#head < this.#order.length) {
      const uuid = this.#order[this.#head]!;
      if (this.state.tasks.has(uuid)) break;
      this.#head++;
      const entry = this.#indexed.get(uuid);
      if (!entry) continue;
      this.#count(entry, -1);
      if (entry.parentId) {
        const siblings = this.#children.get(entry.parentId);
        siblings?.delete(uuid);
        if (siblings?.size === 0) this.#children.delete(entry.parentId);
      }
      this.#children.delete(uuid);
      this.#indexed.delete(uuid);
    }
    if (this.#head > 10_000 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next <= 0) counts.delete(key);
  else counts.set(key, next);
}
