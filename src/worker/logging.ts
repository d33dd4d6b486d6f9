/** Turns a worker's events into log lines: the logger is one more listener of the event map. */
import { describeError } from '../errors.js';
import type { WorkerEventMap } from '../events.js';
import type { TypedEmitter } from '../events.js';
import type { Logger } from '../logger.js';

/** Subscribes `logger` to a worker's events. Lines the level hides cost nothing. */
export function attachLogging(worker: TypedEmitter<WorkerEventMap>, logger: Logger): void {
  worker.on('worker-online', ({ hostname, queues }) => logger.info(`${hostname} ready; consuming ${queues.join(', ')}`));
  worker.on('worker-offline', ({ hostname }) => logger.info(`${hostname} stopped`));
  if (logger.enabled('debug')) {
    worker.on('task-received', ({ id, name }) => logger.debug(`Task ${name}[${id}] received`));
  }
  if (logger.enabled('info')) {
    worker.on('task-succeeded', ({ id, name, runtime, result }) =>
      logger.info(`Task ${name}[${id}] succeeded in ${runtime.toFixed(3)}s: ${preview(result)}`),
    );
  }
  worker.on('task-failed', ({ id, name, error, runtime }) =>
    logger.error(`Task ${name}[${id}] raised unexpected: ${describeError(error)} (after ${runtime.toFixed(3)}s)`),
  );
  worker.on('task-retried', ({ id, name, error, countdown, retries }) =>
    logger.info(`Task ${name}[${id}] retry ${retries} in ${countdown}s: ${describeError(error)}`),
  );
  worker.on('task-revoked', ({ id, name, reason }) => logger.warning(`Task ${name}[${id}] ${reason === 'expired' ? 'expired' : `revoked (${reason})`}`));
  worker.on('task-rejected', ({ id, name, reason, detail }) =>
    logger.warning(`Refused message${id ? ` ${id}` : ''}${name ? ` for ${name}` : ''} (${reason}): ${detail}`),
  );
  worker.on('task-handed-back', ({ id, name }) => logger.info(`Task ${name}[${id}] handed back to the broker`));
  worker.on('error', ({ error, during }) => logger.error(`error while ${during}: ${describeError(error)}`));
}


function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? 'undefined';
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
