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
  readonly uuid: string;
  /** False once evicted. */
  live: boolean;
  /** Unix seconds of its latest event. */
  timestamp: number;
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
  /** Tasks in arrival order; the live ones start at `#head`. */
  #order: Indexed[] = [];
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
    const previous = before?.state ?? null;
    if (!before) this.#evict();
    this.#reindex(task, before);
    return { task, previous };
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
    const { state, name, worker, since } = query;
    const order = this.#order;
    for (let i = order.length - 1; i >= this.#head; i--) {
      const entry = order[i]!;
      if (!entry.live) continue;
      if (state && entry.state !== state) continue;
      if (name && entry.name !== name) continue;
      if (worker && entry.worker !== worker) continue;
      if (since !== undefined && entry.timestamp < since) continue;
      if (search && !entry.text.includes(search) && !entry.uuid.startsWith(search)) continue;
      if (total >= offset && tasks.length < limit) tasks.push(this.state.tasks.get(entry.uuid)!);
      total++;
    }
    return { tasks, total, offset, limit };
  }

  /** Updates the index for `task`, which was indexed as `entry` (or not at all: a new arrival). */
  #reindex(task: TaskInfo, entry: Indexed | undefined): void {
    if (!entry) {
      entry = { uuid: task.uuid, live: true, timestamp: task.timestamp, state: task.state, name: task.name, worker: task.worker, parentId: null, args: null, kwargs: null, text: '' };
      this.#indexed.set(task.uuid, entry);
      this.#order.push(entry);
    } else {
      entry.timestamp = task.timestamp;
      if (entry.state === task.state && entry.name === task.name && entry.worker === task.worker && entry.parentId === task.parentId && entry.args === task.args && entry.kwargs === task.kwargs) return;
      this.#count(entry, -1);
    }
    entry.state = task.state;
    entry.name = task.name;
    entry.worker = task.worker;
    if (entry.args !== task.args || entry.kwargs !== task.kwargs || entry.text === '') {
      entry.args = task.args;
      entry.kwargs = task.kwargs;
      entry.text = `${task.args ?? ''}\n${task.kwargs ?? ''}`.toLowerCase();
    }
    this.#count(entry, 1);
    if (entry.parentId !== task.parentId) {
      if (entry.parentId) this.#children.get(entry.parentId)?.delete(task.uuid);
      if (task.parentId) {
        let children = this.#children.get(task.parentId);
        if (!children) this.#children.set(task.parentId, (children = new Set()));
        children.add(task.uuid);
      }
      entry.parentId = task.parentId;
    }
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
      const entry = this.#order[this.#head]!;
      const uuid = entry.uuid;
      if (this.state.tasks.has(uuid)) break;
      this.#head++;
      entry.live = false;
      this.#count(entry, -1);
      entry.text = ''; // what a dead entry holds until the order is compacted
      entry.args = entry.kwargs = null;
      if (entry.parentId) {
        const siblings = this.#children.get(entry.parentId);
        siblings?.delete(uuid);
        if (siblings?.size === 0) this.#children.delete(entry.parentId);
      }
      this.#children.delete(uuid);
      this.#indexed.delete(uuid);
    }
    if (this.#head > 10_000 && this.#head * 4 > this.#order.length) {
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
