/** `celeriac worker`: runs a worker until SIGINT/SIGTERM, with warm then cold shutdown. */
import { ConfigurationError } from '../errors.js';
import { createLogger, parseLogLevel } from '../logger.js';
import type { WorkerOptions } from '../worker/options.js';
import { loadApp, type AppOptions } from './load-app.js';

interface WorkerCommandOptions extends AppOptions {
  queues?: string[];
  concurrency: number;
  prefetch?: number;
  loglevel: string;
  hostname?: string;
  grace: number;
  trackChildren: boolean;
}

/** Starts the worker and resolves once it has shut down. */
export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  const logger = createLogger(parseLogLevel(options.loglevel));
  const app = await loadApp(options);
  if (app.brokerUrl.startsWith('memory:')) {
    throw new ConfigurationError(
      `the broker ${app.brokerUrl} lives inside one process, so a worker started on its own would never receive a task; use sqlite:// (the default) or redis:// / amqp://`,
    );
  }
  const workerOptions: Partial<WorkerOptions> = { concurrency: options.concurrency, logger, shutdownGrace: options.grace, trackChildren: options.trackChildren };
  if (options.queues) workerOptions.queues = options.queues;
  if (options.prefetch !== undefined) workerOptions.prefetch = options.prefetch;
  if (options.hostname) workerOptions.hostname = options.hostname;
  const worker = app.worker(workerOptions);
  const own = [...app.tasks.keys()].filter((name) => !name.startsWith('celery.')); // Celery's built-ins are on every app
  logger.info(`celeriac worker: ${own.length} tasks [${own.join(', ')}], broker ${(await app.broker()).displayUrl}`);

  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warning(`${signal} again: cold shutdown; unacked tasks go back to the broker`);
      process.exit(1);
    }
    logger.warning(`${signal}: warm shutdown (running tasks have ${options.grace}s); send it again to stop at once`);
    stopping = worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await worker.start();
    await new Promise<void>((resolve) => worker.once('worker-offline', () => resolve()));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await app.close();
  }
}
