/** `celeriac worker`: runs a worker until SIGINT/SIGTERM, with warm then cold shutdown. */
import { resolve } from 'node:path';
import { ConfigurationError } from '../errors.js';
import { createLogger, parseLogLevel } from '../logger.js';
import type { PoolKind } from '../worker/executor.js';
import { startBeat } from './beat-command.js';
import { checkWorkerWeb, type WorkerWebOptions } from './dashboard-command.js';
import { loadApp, type AppOptions } from './load-app.js';

interface WorkerCommandOptions extends AppOptions, WorkerWebOptions {
  queues?: string[];
  pool: PoolKind;
  concurrency?: number;
  autoscale?: [number, number];
  autoscaleIdle?: number;
  taskEvents?: boolean;
  withoutMingle?: boolean;
  maxTasksPerChild?: number;
  maxMemoryPerChild?: number;
  threads?: number;
  processes?: number;
  prefetch?: number;
  loglevel: string;
  hostname?: string;
  grace: number;
  trackChildren: boolean;
  /** -B: run beat in this worker too. */
  beat?: boolean;
  lock?: string;
}

/** Starts the worker and resolves once it has shut down. */
export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  const logger = createLogger(parseLogLevel(options.loglevel));
  const startWeb = await checkWorkerWeb(options); // --dashboard, --metrics-port: refused before anything connects
  const app = await loadApp(options);
  if (app.brokerUrl.startsWith('memory:')) {
    throw new ConfigurationError(
      `the broker ${app.brokerUrl} lives inside one process, so a worker started on its own would never receive a task; use sqlite:// (the default) or redis:// / amqp://`,
    );
  }
  const worker = app.worker({
    pool: options.pool,
    logger,
    shutdownGrace: options.grace,
    trackChildren: options.trackChildren,
    taskEvents: options.taskEvents === true,
    mingle: options.withoutMingle !== true,
    ...(options.app ? { module: resolve(options.app), moduleOverrides: { broker: options.broker, backend: options.backend } } : {}),
    ...definedOnly({
      queues: options.queues,
      concurrency: options.concurrency,
      prefetch: options.prefetch,
      hostname: options.hostname,
      autoscale: options.autoscale,
      autoscaleIdle: options.autoscaleIdle,
      maxTasksPerChild: options.maxTasksPerChild,
      maxMemoryPerChild: options.maxMemoryPerChild,
      threads: options.threads,
      processes: options.processes,
    }),
  });
  const own = [...app.tasks.keys()].filter((name) => !name.startsWith('celery.')); // Celery's built-ins are on every app
  const pool = worker.options.pool === 'event' ? `event loop, ${worker.options.concurrency} at once` : `${worker.options.pool}, ${worker.options.autoscale ? `${worker.options.autoscale[1]}-${worker.options.autoscale[0]}` : worker.options.concurrency} slots`;
  logger.info(`celeriac worker: ${own.length} tasks [${own.join(', ')}], broker ${(await app.broker()).displayUrl}, pool ${pool}`);

  if (options.lock !== undefined && !options.beat) throw new ConfigurationError('--lock is for beat: pass -B too');
  let stopBeat: (() => Promise<void>) | undefined;
  let stopWeb: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warning(`${signal} again: cold shutdown; unacked tasks go back to the broker`);
      process.exit(1);
    }
    logger.warning(`${signal}: warm shutdown (running tasks have ${options.grace}s); send it again to stop at once`);
    void stopBeat?.();
    stopping = worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    stopWeb = await startWeb(app, worker, logger);
    await worker.start();
    if (options.beat) stopBeat = await startBeat(app, logger, options.lock);
    await new Promise<void>((resolve) => worker.once('worker-offline', () => resolve()));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stopBeat?.();
    await stopWeb?.();
    await app.close();
  }
}

/** The entries of `options` that are set. */
function definedOnly<T extends Record<string, unknown>>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
