/**
 * Remote control of the workers sharing a broker: commands broadcast over its control channel
 * in Celery's pidbox form, so Python workers obey them too.
 */
import type { Broker } from './brokers/broker.js';
import { ConfigurationError } from './errors.js';
import { parseRate, type RateLimit } from './rate-limit.js';
import type { RevokeOptions } from './result.js';

/** Which workers a command is for. */
export interface Destination {
  /** Node names (`celeriac.123@host`); default every worker. */
  destination?: string[];
}

/** `app.control`: commands to every worker on the app's broker. */
export class Control {
  constructor(private readonly broker: () => Promise<Broker>) {}

  /** Revokes tasks on every worker: they will not start; `terminate` also stops running ones. */
  async revoke(taskIds: string[], options: Pick<RevokeOptions, 'terminate'> & Destination = {}): Promise<void> {
    await this.broadcast('revoke', { task_id: taskIds, terminate: options.terminate ?? false, signal: 'SIGTERM' }, options);
  }

  /**
   * Sets a task's rate limit on every worker (or those named), from its next run; `null` or 0
   * lifts it. Takes effect within a moment, without a restart.
   *
   * @throws {@link ConfigurationError} for a rate that is not `'10/s'`, `'100/m'`, `'1000/h'` or a number.
   */
  async rateLimit(taskName: string, rate: RateLimit | null, options: Destination = {}): Promise<void> {
    parseRate(rate, 'rate');
    const wire = rate === null ? '0' : typeof rate === 'number' ? `${rate}/s` : rate;
    await this.broadcast('rate_limit', { task_name: taskName, rate_limit: wire }, options);
  }

  /** Sends any command by its Celery name, e.g. `broadcast('shutdown')`. */
  async broadcast(method: string, args: Record<string, unknown> = {}, options: Destination = {}): Promise<void> {
    const broker = await this.broker();
    if (!broker.control) throw new ConfigurationError(`the broker ${broker.displayUrl} has no control channel, so workers cannot be sent ${method}`);
    await broker.control.broadcast({ method, arguments: args, destination: options.destination ?? null });
  }
}
