/**
 * The dashboard's `/metrics`: what the event stream says of the fleet, in Prometheus' text
 * format. The worker's `--metrics-port` serves the same names from the worker's own events
 * (see worker-metrics.ts), so one dashboard per fleet or one scrape per worker both work.
 *
 * - `celeriac_tasks_total{name,state}`: tasks that reached each state (counter)
 * - `celeriac_tasks{name,state}`: tasks the dashboard holds, by their state now (gauge)
 * - `celeriac_task_runtime_seconds{name}`: run time of tasks that succeeded (histogram)
 * - `celeriac_queue_length{queue}`, `celeriac_dead_letters{queue}`: read from the broker at scrape time
 * - `celeriac_queue_in_flight{queue}`: tasks received from each queue and not ended (events; see queue-flow.ts)
 * - `celeriac_workers_up`, `celeriac_worker_up{worker}`, `celeriac_worker_active_tasks{worker}`,
 *   `celeriac_worker_processed_total{worker}`: from heartbeats
 * - `celeriac_events_total{type}`, `celeriac_events_dropped_total`: the event stream itself
 */
import type { CeleryEvent } from '../brokers/broker.js';
import type { Fleet } from './fleet.js';
import { Registry } from './prometheus.js';
import type { TaskChange, TaskStore } from './store.js';
import { withTimeout } from './with-timeout.js';

/** How long a scrape waits for the broker's queue lengths. */
const QUEUE_READ_TIMEOUT_MS = 2_000;

export class DashboardMetrics {
  readonly registry = new Registry();
  readonly #tasksTotal = this.registry.counter('celeriac_tasks_total', 'Tasks that reached each state, by task name.');
  readonly #tasks = this.registry.gauge('celeriac_tasks', 'Tasks the dashboard holds, by task name and current state.');
  readonly #runtime = this.registry.histogram('celeriac_task_runtime_seconds', 'Run time of tasks that succeeded, by task name.');
  readonly #queueLength = this.registry.gauge('celeriac_queue_length', 'Messages waiting in each queue.');
  readonly #deadLetters = this.registry.gauge('celeriac_dead_letters', 'Messages moved aside to the dead letters of each queue.');
  readonly #inFlight = this.registry.gauge('celeriac_queue_in_flight', 'Tasks workers received from each queue that have not ended.');
  readonly #workersUp = this.registry.gauge('celeriac_workers_up', 'Workers whose heartbeats arrive.');
  readonly #workerUp = this.registry.gauge('celeriac_worker_up', '1 while a worker\'s heartbeats arrive, 0 once they stopped.');
  readonly #workerActive = this.registry.gauge('celeriac_worker_active_tasks', 'Tasks each worker runs now, by its last heartbeat.');
  readonly #workerProcessed = this.registry.counter('celeriac_worker_processed_total', 'Tasks each worker processed since it started, by its last heartbeat.');
  readonly #events = this.registry.counter('celeriac_events_total', 'Events received, by type.');
  readonly #dropped = this.registry.counter('celeriac_events_dropped_total', 'Events lost: malformed, or dropped because the dashboard fell behind.');
  readonly #stored = this.registry.gauge('celeriac_dashboard_tasks_stored', 'Tasks the dashboard holds (bounded; the oldest go first).');
  readonly #seriesDropped = this.registry.counter('celeriac_metrics_series_dropped_total', 'Label sets not recorded because a metric had too many.');

  constructor(
    store: TaskStore,
    fleet: Fleet,
    dropped: () => number,
  ) {
    this.registry.collect(() => {
      this.#tasks.reset();
      for (const [name, state, count] of store.countsByNameAndState()) this.#tasks.set({ name, state }, count);
      const workers = store.workers();
      this.#workerUp.reset();
      this.#workerActive.reset();
      let up = 0;
      for (const worker of workers) {
        const alive = store.state.isAlive(worker);
        if (alive) up++;
        this.#workerUp.set({ worker: worker.hostname }, alive ? 1 : 0);
        if (worker.active !== null) this.#workerActive.set({ worker: worker.hostname }, alive ? worker.active : 0);
        if (worker.processed !== null) this.#workerProcessed.set({ worker: worker.hostname }, worker.processed);
      }
      this.#workersUp.set({}, up);
      this.#dropped.set({}, dropped());
      this.#stored.set({}, store.size);
      this.#seriesDropped.set({}, this.registry.seriesDropped);
    });
    this.registry.collect(async () => {
      this.#queueLength.reset();
      this.#deadLetters.reset();
      this.#inFlight.reset();
      const queues = await withTimeout(fleet.queues(), QUEUE_READ_TIMEOUT_MS).catch(() => undefined);
      for (const queue of queues ?? []) {
        if (queue.length !== null) this.#queueLength.set({ queue: queue.name }, queue.length);
        if (queue.deadLetters !== null) this.#deadLetters.set({ queue: queue.name }, queue.deadLetters);
        this.#inFlight.set({ queue: queue.name }, queue.flow.inFlight);
      }
    });
  }

  /** Counts one event and what it changed. */
  observe(event: CeleryEvent, change: TaskChange | undefined): void {
    this.#events.inc({ type: event.type });
    if (!change) return;
    const name = change.task.name ?? '';
    if (change.previous !== change.task.state) this.#tasksTotal.inc({ name, state: change.task.state });
    if (event.type === 'task-succeeded' && typeof event['runtime'] === 'number') this.#runtime.observe({ name }, event['runtime']);
  }

  render(): Promise<string> {
    return this.registry.render();
  }
}
