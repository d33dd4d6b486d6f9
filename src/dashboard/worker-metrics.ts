/**
 * A worker's own `/metrics` (`celeriac worker --metrics-port N`): the dashboard's metric names,
 * counted from the worker's typed events as they happen in this process, so each worker can be
 * scraped without a dashboard and without task events on the broker.
 *
 * - `celeriac_tasks_total{name,state}`: tasks that reached RECEIVED, STARTED, SUCCESS, FAILURE,
 *   RETRY, REVOKED or REJECTED here
 * - `celeriac_task_runtime_seconds{name}`: run time of tasks that succeeded
 * - `celeriac_queue_length{queue}`: the worker's queues, read from the broker at scrape time
 * - `celeriac_workers_up`, `celeriac_worker_up{worker}`: 1 while the worker runs
 * - `celeriac_worker_active_tasks{worker}`, `celeriac_worker_processed_total{worker}`
 * - `celeriac_worker_rejected_total{reason}`, `celeriac_worker_handed_back_total`: messages
 *   refused before they could run, and tasks handed back to the broker
 */
import type { Broker } from '../brokers/broker.js';
import type { TypedEmitter, WorkerEventMap } from '../events.js';
import { assertSafeListen, Guard, type AuthSettings } from './auth.js';
import { listen, sendText, type Listening } from './http.js';
import { PROMETHEUS_CONTENT_TYPE, Registry } from './prometheus.js';

/** What the metrics read of a worker (a `Worker` is one). */
export interface MeteredWorker extends TypedEmitter<WorkerEventMap> {
  readonly options: { readonly hostname: string; readonly queues: readonly string[] };
  readonly activeCount: number;
  readonly stats: { readonly succeeded: number; readonly failed: number; readonly retried: number; readonly revoked: number };
}

/** How long a scrape waits for the broker's queue lengths. */
const QUEUE_READ_TIMEOUT_MS = 2_000;

/**
 * The registry of a worker's metrics, counting from now on; `detach()` stops counting. Attach
 * it before `worker.start()` to count from the first task.
 */
export function workerMetrics(worker: MeteredWorker, broker: () => Promise<Broker>): { registry: Registry; detach: () => void } {
  const registry = new Registry();
  const tasksTotal = registry.counter('celeriac_tasks_total', 'Tasks that reached each state on this worker, by task name.');
  const runtime = registry.histogram('celeriac_task_runtime_seconds', 'Run time of tasks that succeeded, by task name.');
  const queueLength = registry.gauge('celeriac_queue_length', 'Messages waiting in each queue this worker consumes.');
  const workersUp = registry.gauge('celeriac_workers_up', 'Workers up: 1 while this worker runs.');
  const workerUp = registry.gauge('celeriac_worker_up', '1 while the worker runs, 0 once it stopped.');
  const active = registry.gauge('celeriac_worker_active_tasks', 'Tasks the worker runs now.');
  const processed = registry.counter('celeriac_worker_processed_total', 'Tasks the worker processed (succeeded, failed, retried or revoked).');
  const rejected = registry.counter('celeriac_worker_rejected_total', 'Messages refused before they could run, by reason.');
  const handedBack = registry.counter('celeriac_worker_handed_back_total', 'Tasks handed back to the broker (shutdown, lost slots).');
  let online = false;

  const count = (name: string | null, state: string): void => tasksTotal.inc({ name: name ?? '', state });
  const listeners: { [K in keyof WorkerEventMap]?: (payload: WorkerEventMap[K]) => void } = {
    'worker-online': () => void (online = true),
    'worker-offline': () => void (online = false),
    'task-received': ({ name }) => count(name, 'RECEIVED'),
    'task-started': ({ name }) => count(name, 'STARTED'),
    'task-succeeded': ({ name, runtime: seconds }) => {
      count(name, 'SUCCESS');
      runtime.observe({ name }, seconds);
    },
    'task-failed': ({ name }) => count(name, 'FAILURE'),
    'task-retried': ({ name }) => count(name, 'RETRY'),
    'task-revoked': ({ name }) => count(name, 'REVOKED'),
    'task-rejected': ({ name, reason }) => {
      count(name, 'REJECTED');
      rejected.inc({ reason });
    },
    'task-handed-back': () => handedBack.inc(),
  };
  for (const [event, listener] of Object.entries(listeners)) worker.on(event as keyof WorkerEventMap, listener as never);

  registry.collect(async () => {
    const hostname = worker.options.hostname;
    workersUp.set({}, online ? 1 : 0);
    workerUp.set({ worker: hostname }, online ? 1 : 0);
    active.set({ worker: hostname }, worker.activeCount);
    const { succeeded, failed, retried, revoked } = worker.stats;
    processed.set({ worker: hostname }, succeeded + failed + retried + revoked);
    queueLength.reset();
    if (!online) return;
    const lengths = await new Promise<Array<[string, number]> | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), QUEUE_READ_TIMEOUT_MS);
      broker()
        .then((connected) => Promise.all(worker.options.queues.map(async (queue): Promise<[string, number]> => [queue, await connected.queueLength(queue)])))
        .then(
          (value) => resolve(value),
          () => resolve(undefined),
        )
        .finally(() => clearTimeout(timer));
    });
    for (const [queue, length] of lengths ?? []) queueLength.set({ queue }, length);
  });

  return {
    registry,
    detach: () => {
      for (const [event, listener] of Object.entries(listeners)) worker.off(event as keyof WorkerEventMap, listener as never);
    },
  };
}

/** Options of {@link serveMetrics}. */
export interface MetricsServerOptions {
  host: string;
  port: number;
  auth?: AuthSettings;
}

/**
 * Serves `registry` at `/metrics` on `host:port`; beyond loopback only with auth (basic or
 * bearer, as Prometheus' scrape config sends them).
 */
export async function serveMetrics(registry: Registry, options: MetricsServerOptions): Promise<Listening> {
  const auth = options.auth ?? {};
  assertSafeListen(options.host, auth);
  const guard = new Guard(auth);
  return listen(options.host, options.port, (request, response) => {
    const outcome = guard.check(request);
    if (!outcome.ok) {
      sendText(response, outcome.status, `${outcome.reason}\n`, outcome.headers);
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendText(response, 405, 'only GET\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (path !== '/metrics') {
      sendText(response, path === '/' ? 200 : 404, 'celeriac worker metrics: GET /metrics\n');
      return;
    }
    registry.render().then(
      (text) => sendText(response, 200, text, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' }),
      (error: unknown) => sendText(response, 500, `metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
    );
  });
}
