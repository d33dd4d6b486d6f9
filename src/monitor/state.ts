/**
 * What the event stream says of a fleet, as Celery's `events.State` keeps it: workers (alive
 * while their heartbeats keep coming: within twice their `freq`, Celery's window) and tasks
 * (their state, times, worker, arguments, result or exception), whatever order events arrive
 * in: an event that logically happened before the task's current state adds its fields but does
 * not move the state back.
 */
import type { CeleryEvent } from '../brokers/broker.js';
import { systemClock, type Clock } from '../clock.js';

/** Task states as events report them. */
export type EventTaskState = 'PENDING' | 'RECEIVED' | 'STARTED' | 'SUCCESS' | 'FAILURE' | 'RETRY' | 'REVOKED' | 'REJECTED';

/** A worker as the events describe it. */
export interface WorkerInfo {
  hostname: string;
  pid: number | null;
  /** Seconds between its heartbeats. */
  freq: number;
  /** Unix seconds of its last heartbeat (or online event), null before the first. */
  lastHeartbeat: number | null;
  /** False once it went offline; see {@link State.isAlive} for the heartbeat window. */
  online: boolean;
  active: number | null;
  processed: number | null;
  loadavg: number[] | null;
  software: string | null;
}

/** A task as the events describe it. */
export interface TaskInfo {
  uuid: string;
  name: string | null;
  state: EventTaskState;
  worker: string | null;
  args: string | null;
  kwargs: string | null;
  result: string | null;
  exception: string | null;
  traceback: string | null;
  runtime: number | null;
  retries: number | null;
  rootId: string | null;
  parentId: string | null;
  /** Unix seconds of each state reached, e.g. `{ RECEIVED: 1.7e9, STARTED: ... }`. */
  timeline: Partial<Record<EventTaskState, number>>;
  /** Unix seconds of the latest event. */
  timestamp: number;
}

/** Celery's `HEARTBEAT_EXPIRE_WINDOW`: a worker is alive within twice its heartbeat interval. */
const EXPIRE_WINDOW = 2;
/** Celery's `states.PRECEDENCE`: earlier in the list = later in a task's life. */
const PRECEDENCE: readonly EventTaskState[] = ['SUCCESS', 'FAILURE', 'REVOKED', 'STARTED', 'RECEIVED', 'REJECTED', 'RETRY', 'PENDING'];
const TASK_STATES: Record<string, EventTaskState> = {
  'task-sent': 'PENDING',
  'task-received': 'RECEIVED',
  'task-started': 'STARTED',
  'task-succeeded': 'SUCCESS',
  'task-failed': 'FAILURE',
  'task-retried': 'RETRY',
  'task-revoked': 'REVOKED',
  'task-rejected': 'REJECTED',
};

/** Options of a {@link State}. */
export interface StateOptions {
  /** Tasks kept; the oldest go first. Default 10,000, as Celery's. */
  maxTasks?: number;
  clock?: Clock;
}

export class State {
  readonly workers = new Map<string, WorkerInfo>();
  readonly tasks = new Map<string, TaskInfo>();
  /** Events taken in. */
  eventCount = 0;
  readonly #maxTasks: number;
  readonly #clock: Clock;

  constructor(options: StateOptions = {}) {
    this.#maxTasks = options.maxTasks ?? 10_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** Takes in one event. */
  event(event: CeleryEvent): void {
    this.eventCount++;
    if (event.type.startsWith('worker-')) this.#workerEvent(event);
    else if (event.type.startsWith('task-')) this.#taskEvent(event);
  }

  /** True while `worker` is online and its last heartbeat is within the window. */
  isAlive(worker: WorkerInfo): boolean {
    return worker.online && worker.lastHeartbeat !== null && this.#clock.now() / 1000 <= worker.lastHeartbeat + worker.freq * EXPIRE_WINDOW;
  }

  /** Workers alive now. */
  aliveWorkers(): WorkerInfo[] {
    return [...this.workers.values()].filter((worker) => this.isAlive(worker));
  }

  /** Tasks, most recent first, optionally only those in `state`. */
  tasksByTime(state?: EventTaskState): TaskInfo[] {
    const tasks = [...this.tasks.values()].filter((task) => !state || task.state === state);
    return tasks.sort((a, b) => b.timestamp - a.timestamp);
  }

  #workerEvent(event: CeleryEvent): void {
    const hostname = String(event['hostname']);
    const worker: WorkerInfo = this.workers.get(hostname) ?? {
      hostname,
      pid: null,
      freq: 2,
      lastHeartbeat: null,
      online: true,
      active: null,
      processed: null,
      loadavg: null,
      software: null,
    };
    const timestamp = numberOr(event['timestamp'], this.#clock.now() / 1000);
    worker.pid = numberOr(event['pid'], worker.pid);
    worker.freq = numberOr(event['freq'], worker.freq) || 2;
    worker.active = numberOr(event['active'], worker.active);
    worker.processed = numberOr(event['processed'], worker.processed);
    if (Array.isArray(event['loadavg'])) worker.loadavg = event['loadavg'].map(Number);
    if (typeof event['sw_ident'] === 'string') worker.software = `${event['sw_ident']} ${stringOr(event['sw_ver'], '')}`.trim();
    if (event.type === 'worker-offline') {
      worker.online = false;
    } else {
      worker.online = true;
      worker.lastHeartbeat = Math.max(worker.lastHeartbeat ?? 0, timestamp);
    }
    this.workers.set(hostname, worker);
  }

  #taskEvent(event: CeleryEvent): void {
    const uuid = event['uuid'];
    const state = TASK_STATES[event.type];
    if (typeof uuid !== 'string' || !state) return;
    const timestamp = numberOr(event['timestamp'], this.#clock.now() / 1000);
    let task = this.tasks.get(uuid);
    if (!task) {
      task = { uuid, name: null, state, worker: null, args: null, kwargs: null, result: null, exception: null, traceback: null, runtime: null, retries: null, rootId: null, parentId: null, timeline: {}, timestamp };
      this.tasks.set(uuid, task);
      this.#trim();
    } else if (state !== 'RETRY' && task.state !== 'RETRY' && PRECEDENCE.indexOf(state) > PRECEDENCE.indexOf(task.state)) {
      // It happened before the state the task is in: take its fields, keep the state.
    } else {
      task.state = state;
      task.timestamp = Math.max(task.timestamp, timestamp);
    }
    task.timeline[state] = timestamp;
    if (event.type !== 'task-sent' && typeof event['hostname'] === 'string') task.worker = event['hostname'];
    task.name = stringOr(event['name'], task.name);
    task.args = stringOr(event['args'], task.args);
    task.kwargs = stringOr(event['kwargs'], task.kwargs);
    task.result = stringOr(event['result'], task.result);
    task.exception = stringOr(event['exception'], task.exception);
    task.traceback = stringOr(event['traceback'], task.traceback);
    task.runtime = numberOr(event['runtime'], task.runtime);
    task.retries = numberOr(event['retries'], task.retries);
    task.rootId = stringOr(event['root_id'], task.rootId);
    task.parentId = stringOr(event['parent_id'], task.parentId);
  }

  #trim(): void {
    for (const uuid of this.tasks.keys()) {
      if (this.tasks.size <= this.#maxTasks) return;
      this.tasks.delete(uuid);
    }
  }
}

function numberOr<T>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function stringOr<T>(value: unknown, fallback: T): string | T {
  return typeof value === 'string' ? value : fallback;
}
