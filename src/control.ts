/**
 * Remote control of the workers sharing a broker, in Celery's pidbox form, so Python workers
 * obey and answer too: `app.control.inspect().active()`, `app.control.rateLimit(...)`,
 * `app.control.shutdown()`. Commands that wait for replies collect them for `timeout` seconds
 * (default 1, as Celery's), until `limit` workers have answered, or, where the broker tells how
 * many workers heard the command (Redis), until all of them have.
 */
import { randomUUID } from 'node:crypto';
import type { Broker, ControlChannel } from './brokers/broker.js';
import { ConfigurationError } from './errors.js';
import { parseRate, type RateLimit } from './rate-limit.js';
import type { RevokeOptions } from './result.js';
import type { RequestInfo } from './worker/remote/control-commands.js';

/** Which workers a command is for. */
export interface Destination {
  /** Node names (`celeriac.123@host`, `w1@host`); default every worker. */
  destination?: string[];
}

/** How long to wait for replies, and for how many. */
export interface ReplyOptions extends Destination {
  /** Seconds to wait for replies. Default 1, as Celery's. */
  timeout?: number;
  /** Stop waiting once this many workers replied. */
  limit?: number;
}

/** Replies by node name. */
export type Replies<T> = Record<string, T>;

/** A control command's usual reply. */
export type Acknowledgement = { ok: string } | { error: string };

/** How long commands sent without waiting for replies stay valid for workers that hear them late. */
const FIRE_AND_FORGET_EXPIRY_MS = 10_000;

/** `app.control`: commands to every worker on the app's broker. */
export class Control {
  constructor(private readonly broker: () => Promise<Broker>) {}

  /** Read-only questions to the workers, answered per node. */
  inspect(options: ReplyOptions = {}): Inspect {
    return new Inspect(this, options);
  }

  /** Every worker that answers within the timeout: `{ node: { ok: 'pong' } }`. */
  ping(options: ReplyOptions = {}): Promise<Replies<{ ok: string }>> {
    return this.request('ping', {}, options);
  }

  /** Revokes tasks on every worker: they will not start; `terminate` also stops running ones. */
  async revoke(taskIds: string[], options: Pick<RevokeOptions, 'terminate'> & Destination = {}): Promise<void> {
    // No expiry: a broker that keeps commands (SQLite) hands a revoke to workers that start later.
    await this.#send({ method: 'revoke', arguments: { task_id: taskIds, terminate: options.terminate ?? false, signal: 'SIGTERM' }, destination: options.destination ?? null });
  }

  /** Stops the tasks where they run now (a thread or child is killed), and revokes them. */
  terminate(taskIds: string[], options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('terminate', { task_id: taskIds, signal: 'SIGTERM' }, options);
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

  /** Sets a task's time limits (seconds; null for none) on every worker, from its next run. */
  timeLimit(taskName: string, limits: { hard?: number | null; soft?: number | null }, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('time_limit', { task_name: taskName, hard: limits.hard ?? null, soft: limits.soft ?? null }, options);
  }

  /** Warm shutdown of every worker (or those named). */
  shutdown(options: Destination = {}): Promise<void> {
    return this.broadcast('shutdown', { msg: 'Got shutdown from remote' }, options);
  }

  /** Adds `n` slots to each worker's pool. */
  poolGrow(n = 1, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('pool_grow', { n }, options);
  }

  /** Removes `n` slots from each worker's pool. */
  poolShrink(n = 1, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('pool_shrink', { n }, options);
  }

  /** Sets the bounds of each worker's autoscaled pool. */
  autoscale(max: number, min: number, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('autoscale', { max, min }, options);
  }

  /** Makes the workers consume `queue` as well. */
  addConsumer(queue: string, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('add_consumer', { queue }, options);
  }

  /** Makes the workers stop consuming `queue`. */
  cancelConsumer(queue: string, options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('cancel_consumer', { queue }, options);
  }

  /** Turns task events on (Celery's `-E`) on every worker. */
  enableEvents(options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('enable_events', {}, options);
  }

  /** Turns task events off on every worker. */
  disableEvents(options: ReplyOptions = {}): Promise<Replies<Acknowledgement>> {
    return this.request('disable_events', {}, options);
  }

  /** Asks every worker for a heartbeat now. */
  heartbeat(options: Destination = {}): Promise<void> {
    return this.broadcast('heartbeat', {}, options);
  }

  /** Sends any command by its Celery name without waiting for replies, e.g. `broadcast('shutdown')`. */
  async broadcast(method: string, args: Record<string, unknown> = {}, options: Destination = {}): Promise<void> {
    await this.#send({ method, arguments: args, destination: options.destination ?? null, expiresAt: Date.now() + FIRE_AND_FORGET_EXPIRY_MS });
  }

  /**
   * Sends any command by its Celery name and collects the replies: `{ node: payload }` for each
   * worker that answered within `timeout` seconds (up to `limit` of them).
   */
  async request<T = unknown>(method: string, args: Record<string, unknown> = {}, options: ReplyOptions = {}): Promise<Replies<T>> {
    const control = await this.#channel(method);
    if (!control.openInbox) throw new ConfigurationError(`the broker's control channel carries no replies, so ${method} cannot be answered`);
    const timeoutMs = (options.timeout ?? 1) * 1000;
    const inbox = await control.openInbox();
    const ticket = randomUUID();
    const replies: Replies<T> = {};
    // Where the broker says how many workers heard the command, all of them having replied ends the wait.
    let limit = options.limit ?? Number.POSITIVE_INFINITY;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, timeoutMs);
        const settleIfDone = (): void => {
          if (Object.keys(replies).length < limit) return;
          clearTimeout(timer);
          resolve();
        };
        inbox.listen((replyTicket, body) => {
          if (replyTicket !== ticket) return; // a late reply to another command
          Object.assign(replies, body);
          settleIfDone();
        });
        control
          .broadcast({ method, arguments: args, destination: options.destination ?? null, replyTo: inbox.address, ticket, expiresAt: Date.now() + timeoutMs })
          .then((reached) => {
            if (typeof reached !== 'number') return;
            limit = Math.min(limit, reached, options.destination?.length ?? reached);
            settleIfDone();
          })
          .catch((error: unknown) => {
            clearTimeout(timer);
            reject(error);
          });
      });
    } finally {
      await inbox.close();
    }
    return replies;
  }

  async #send(command: Parameters<ControlChannel['broadcast']>[0]): Promise<void> {
    await (await this.#channel(command.method)).broadcast(command);
  }

  async #channel(method: string): Promise<ControlChannel> {
    const broker = await this.broker();
    if (!broker.control) throw new ConfigurationError(`the broker ${broker.displayUrl} has no control channel, so workers cannot be sent ${method}`);
    return broker.control;
  }
}

/** `app.control.inspect()`: what the workers are doing, per node. */
export class Inspect {
  constructor(
    private readonly control: Control,
    private readonly options: ReplyOptions,
  ) {}

  ping(): Promise<Replies<{ ok: string }>> {
    return this.#ask('ping');
  }

  /** Tasks running now. */
  active(): Promise<Replies<RequestInfo[]>> {
    return this.#ask('active');
  }

  /** Tasks taken from the broker, waiting for a slot (or their rate). */
  reserved(): Promise<Replies<RequestInfo[]>> {
    return this.#ask('reserved');
  }

  /** Tasks held for their ETA. */
  scheduled(): Promise<Replies<Array<{ eta: string; priority: number | null; request: RequestInfo }>>> {
    return this.#ask('scheduled');
  }

  /** Ids the workers will not run. */
  revoked(): Promise<Replies<string[]>> {
    return this.#ask('revoked');
  }

  /** Task names each worker runs. */
  registered(): Promise<Replies<string[]>> {
    return this.#ask('registered', { taskinfoitems: [] });
  }

  /** Queues each worker consumes. */
  activeQueues(): Promise<Replies<Array<Record<string, unknown> & { name: string }>>> {
    return this.#ask('active_queues');
  }

  /** Counters, pool, broker and resource use of each worker. */
  stats(): Promise<Replies<Record<string, unknown>>> {
    return this.#ask('stats');
  }

  /** Each worker's configuration. */
  conf(): Promise<Replies<Record<string, unknown>>> {
    return this.#ask('conf', { with_defaults: false });
  }

  /** Where these tasks are on each worker: `{ id: [state, info] }`. */
  queryTask(ids: string[]): Promise<Replies<Record<string, [string, RequestInfo]>>> {
    return this.#ask('query_task', { ids });
  }

  /** Each worker's report, as text. */
  report(): Promise<Replies<{ ok: string }>> {
    return this.#ask('report');
  }

  /** Each worker's Lamport clock. */
  clock(): Promise<Replies<{ clock: number }>> {
    return this.#ask('clock');
  }

  #ask<T>(method: string, args: Record<string, unknown> = {}): Promise<Replies<T>> {
    return this.control.request<T>(method, args, this.options);
  }
}
