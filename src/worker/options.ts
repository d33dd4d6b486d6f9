/** Worker options and their defaults. */
import { availableParallelism, hostname } from 'node:os';
import type { PoolKind } from './executor.js';
import { toLogger, type ForeignLogger, type Logger } from '../logger.js';

/** How a worker runs. Durations are in seconds. */
export interface WorkerOptions {
  /** Queues to consume, most preferred first. Default: the app's default queue. */
  queues: string[];
  /**
   * Where tasks run unless their `runIn` option says otherwise: `event` (the event loop, for
   * I/O-bound work), `threads` (worker threads) or `processes` (child processes), for CPU-bound
   * work. Default `event`.
   */
  pool: PoolKind;
  /**
   * Slots of `pool`: tasks at once on the event loop (default 10), or threads or child
   * processes (default: the number of CPUs). With `autoscale`, its maximum.
   */
  concurrency: number;
  /** Threads for tasks with `runIn: 'thread'` when `pool` is not `threads`. Default: the number of CPUs. */
  threads: number;
  /** Child processes for tasks with `runIn: 'process'` when `pool` is not `processes`. Default: the number of CPUs. */
  processes: number;
  /** Replace a thread or child after it ran this many tasks. Default: never. */
  maxTasksPerChild: number | null;
  /**
   * Replace a child after a task that left it above this many KiB of resident memory (a
   * thread: of its heap), as Celery's `--max-memory-per-child`. Default: never.
   */
  maxMemoryPerChild: number | null;
  /**
   * `[max, min]`: the thread or process pool starts `min` slots, grows to `max` while tasks
   * wait, and shrinks back after slots sit idle. Default: fixed at `concurrency`.
   */
  autoscale: readonly [max: number, min: number] | null;
  /** With `autoscale`, how long a slot above the minimum may sit idle before it goes, in seconds. Default 30. */
  autoscaleIdle: number;
  /**
   * The module that defines the app (a path or file URL, `.js`, `.mjs`, `.cjs`, `.ts`, `.mts`):
   * threads and child processes load it to find the tasks. Required for the thread and process
   * pools; `celeriac worker -A` sets it.
   */
  module: string | null;
  /** Broker and backend URLs that threads and children apply over the module's own (`--broker`, `--backend`). */
  moduleOverrides: { broker?: string | undefined; backend?: string | undefined };
  /**
   * Messages taken from the broker ahead of time (unsettled at once). Default 4 × concurrency,
   * as Celery (`worker_prefetch_multiplier` 4), following the pool as it holds more: 4 × the
   * runs a thread or process pool holds while its slots queue short tasks. A prefetch given
   * stays as given.
   */
  prefetch: number;
  /** The multiplier a default prefetch follows the pool by; null for a prefetch given. */
  prefetchMultiplier: number | null;
  /** This worker's node name. Default `celeriac.<pid>@<host>`. */
  hostname: string;
  /** On shutdown, how long running tasks may take before their signal fires. Default 30. */
  shutdownGrace: number;
  /** Messages with larger bodies are refused. Default 16 MiB. */
  maxMessageBytes: number;
  /**
   * Where log lines go: a celeriac logger (`createLogger`), or a pino, winston or `console`
   * logger, adapted. Default: stderr at level info.
   */
  logger: Logger;
  /** How many revoked ids to remember, and for how long (seconds). Celery's: 50,000 / 3 h. */
  revokedMax: number;
  revokedExpires: number;
  /**
   * Tasks sent from inside a handler name it as their parent (and its workflow's root), and
   * are stored among its `children`, as Celery does. This follows the handler across `await`
   * with AsyncLocalStorage, which costs every promise in the process a little (on no-op tasks,
   * a tenth to a fifth of the throughput, bench/RESULTS.md). Off, such tasks start workflows of their own; callbacks
   * and chain steps are recorded either way. Default true.
   */
  trackChildren: boolean;
  /** Retries at once, without their countdown, as an eager app's own worker does. Default false. */
  eager: boolean;
  /**
   * Send task events (`task-received` … `task-failed`) for monitors, as Celery's `-E`; the
   * `enable_events`/`disable_events` commands switch them at run time. Worker events
   * (online, heartbeat, offline) are always sent. Default false.
   */
  taskEvents: boolean;
  /**
   * At start-up, ask the other workers which tasks they know to be revoked (Celery's mingle;
   * up to a second, on brokers whose control messages are not kept). Default true.
   */
  mingle: boolean;
}

/** What `app.worker()` takes: any option may be left out, and the logger may be a foreign one. */
export type WorkerSettings = Partial<Omit<WorkerOptions, 'logger' | 'module' | 'prefetchMultiplier'>> & { logger?: Logger | ForeignLogger; module?: string | URL | null };

/** Celery's `worker_prefetch_multiplier` default. */
const PREFETCH_MULTIPLIER = 4;

const POOLS: readonly PoolKind[] = ['event', 'threads', 'processes'];

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer; got ${value}`);
  return value;
}

/** Fills in the defaults for any option not given. */
export function resolveWorkerOptions(given: WorkerSettings, defaultQueue: string, logger: Logger): WorkerOptions {
  const pool = given.pool ?? 'event';
  if (!POOLS.includes(pool)) throw new RangeError(`pool must be one of ${POOLS.join(', ')}; got ${JSON.stringify(pool)}`);
  const cpus = availableParallelism();
  const autoscale = given.autoscale ?? null;
  if (autoscale) {
    const [max, min] = autoscale;
    if (!Number.isInteger(max) || !Number.isInteger(min) || min < 0 || max < 1 || min > max) {
      throw new RangeError(`autoscale must be [max, min] with 0 <= min <= max and max >= 1; got [${autoscale.join(', ')}]`);
    }
  }
  const concurrency = autoscale?.[0] ?? given.concurrency ?? (pool === 'event' ? 10 : cpus);
  positiveInteger('concurrency', concurrency);
  const threads = positiveInteger('threads', given.threads ?? cpus);
  const processes = positiveInteger('processes', given.processes ?? cpus);
  const maxTasksPerChild = given.maxTasksPerChild == null ? null : positiveInteger('maxTasksPerChild', given.maxTasksPerChild);
  const maxMemoryPerChild = given.maxMemoryPerChild == null ? null : positiveInteger('maxMemoryPerChild', given.maxMemoryPerChild);
  const prefetch = given.prefetch ?? concurrency * PREFETCH_MULTIPLIER;
  if (!Number.isInteger(prefetch) || prefetch < concurrency) {
    throw new RangeError(`prefetch must be an integer of at least the concurrency (${concurrency}); got ${prefetch}`);
  }
  return {
    queues: given.queues?.length ? given.queues : [defaultQueue],
    pool,
    concurrency,
    threads,
    processes,
    maxTasksPerChild,
    maxMemoryPerChild,
    autoscale,
    autoscaleIdle: given.autoscaleIdle ?? 30,
    module: given.module === undefined || given.module === null ? null : String(given.module),
    moduleOverrides: given.moduleOverrides ?? {},
    prefetch,
    prefetchMultiplier: given.prefetch === undefined ? PREFETCH_MULTIPLIER : null,
    hostname: given.hostname ?? `celeriac.${process.pid}@${hostname()}`,
    shutdownGrace: given.shutdownGrace ?? 30,
    maxMessageBytes: given.maxMessageBytes ?? 16 * 1024 * 1024,
    logger: given.logger ? toLogger(given.logger) : logger,
    revokedMax: given.revokedMax ?? 50_000,
    revokedExpires: given.revokedExpires ?? 10_800,
    trackChildren: given.trackChildren ?? true,
    eager: given.eager ?? false,
    taskEvents: given.taskEvents ?? false,
    mingle: given.mingle ?? true,
  };
}
