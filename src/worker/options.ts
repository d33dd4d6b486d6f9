/** Worker options and their defaults. */
import { hostname } from 'node:os';
import { toLogger, type ForeignLogger, type Logger } from '../logger.js';

/** How a worker runs. Durations are in seconds. */
export interface WorkerOptions {
  /** Queues to consume, most preferred first. Default: the app's default queue. */
  queues: string[];
  /** Tasks running at once on the event loop. Default 10. */
  concurrency: number;
  /** Messages taken from the broker ahead of time (unsettled at once). Default 4 × concurrency, as Celery (`worker_prefetch_multiplier` 4). */
  prefetch: number;
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
}

/** What `app.worker()` takes: any option may be left out, and the logger may be a foreign one. */
export type WorkerSettings = Partial<Omit<WorkerOptions, 'logger'>> & { logger?: Logger | ForeignLogger };

/** Fills in the defaults for any option not given. */
export function resolveWorkerOptions(given: WorkerSettings, defaultQueue: string, logger: Logger): WorkerOptions {
  const concurrency = given.concurrency ?? 10;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer; got ${concurrency}`);
  const prefetch = given.prefetch ?? concurrency * 4;
  if (!Number.isInteger(prefetch) || prefetch < concurrency) {
    throw new RangeError(`prefetch must be an integer of at least the concurrency (${concurrency}); got ${prefetch}`);
  }
  return {
    queues: given.queues?.length ? given.queues : [defaultQueue],
    concurrency,
    prefetch,
    hostname: given.hostname ?? `celeriac.${process.pid}@${hostname()}`,
    shutdownGrace: given.shutdownGrace ?? 30,
    maxMessageBytes: given.maxMessageBytes ?? 16 * 1024 * 1024,
    logger: given.logger ? toLogger(given.logger) : logger,
    revokedMax: given.revokedMax ?? 50_000,
    revokedExpires: given.revokedExpires ?? 10_800,
    trackChildren: given.trackChildren ?? true,
    eager: given.eager ?? false,
  };
}
