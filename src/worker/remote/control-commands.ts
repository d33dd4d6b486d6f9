/**
 * The remote-control commands a worker answers, with Celery's names, arguments and reply
 * shapes (`celery/worker/control.py`), so `celery inspect` / `celery control` and Flower work
 * with celeriac workers, and celeriac's own `inspect` / `control` with Python ones. Inspect
 * commands read; control commands change the worker. A command returns its reply payload, or
 * `undefined` when it sends none (shutdown).
 */
import { describeError } from '../../errors.js';

/** A task as `active`, `reserved` and `scheduled` describe it. */
export interface RequestInfo {
  id: string;
  name: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  type: string;
  hostname: string;
  time_start: number | null;
  acknowledged: boolean;
  delivery_info: { exchange: string; routing_key: string; priority: number | null; redelivered: boolean };
  worker_pid: number | null;
}

/** What the commands need of a worker. */
export interface ControlTarget {
  readonly hostname: string;
  /** The worker's Lamport clock now. */
  clock(): number;
  active(): RequestInfo[];
  reserved(): RequestInfo[];
  scheduled(): Array<{ eta: string; priority: number | null; request: RequestInfo }>;
  revokedIds(): string[];
  registered(): Array<{ name: string; rateLimit: string | null }>;
  activeQueues(): string[];
  stats(): Record<string, unknown>;
  conf(): Record<string, unknown>;
  revoke(ids: string[], terminate: boolean): void;
  /** Merges revoked ids another worker knew of (mingle). */
  mergeRevoked(ids: string[]): void;
  setRateLimit(taskName: string, rate: string | number | null): void;
  setTimeLimit(taskName: string, hard: number | null, soft: number | null): void;
  hasTask(taskName: string): boolean;
  shutdown(reason: string): void;
  /** Resizes the worker's pool; false when it has no pool that can. */
  resizePool(by: number): boolean;
  autoscale(max: number, min: number): boolean;
  addConsumer(queue: string): Promise<boolean>;
  cancelConsumer(queue: string): Promise<boolean>;
  setTaskEvents(on: boolean): void;
  heartbeat(): void;
}

/** A command's reply payload; `undefined` for none. */
type Reply = unknown;
type Handler = (target: ControlTarget, args: Record<string, unknown>) => Reply | Promise<Reply>;

const ok = (message: string): { ok: string } => ({ ok: message });
const error = (message: string): { error: string } => ({ error: message });

/** Celery's commands by name. */
const COMMANDS: Record<string, Handler> = {
  // inspect
  ping: () => ok('pong'),
  clock: (target) => ({ clock: target.clock() }),
  active: (target) => target.active(),
  reserved: (target) => target.reserved(),
  scheduled: (target) => target.scheduled(),
  revoked: (target) => target.revokedIds(),
  registered: (target, args) => {
    const items = Array.isArray(args['taskinfoitems']) ? args['taskinfoitems'] : [];
    return target.registered().map(({ name, rateLimit }) => (items.includes('rate_limit') && rateLimit ? `${name} [rate_limit=${rateLimit}]` : name));
  },
  active_queues: (target) => target.activeQueues().map(queueInfo),
  stats: (target) => target.stats(),
  conf: (target) => target.conf(),
  report: (target) => ok(JSON.stringify(target.stats(), null, 2)),
  query_task: (target, args) => queryTask(target, stringList(args['ids'] ?? args['task_id'])),
  hello: (target, args) => {
    if (args['from_node'] === target.hostname) return undefined;
    const revoked = args['revoked'];
    if (typeof revoked === 'object' && revoked !== null) target.mergeRevoked(Object.keys(revoked));
    return { revoked: Object.fromEntries(target.revokedIds().map((id) => [id, Date.now() / 1000])), clock: target.clock() };
  },
  // control
  revoke: (target, args) => {
    const ids = stringList(args['task_id']);
    target.revoke(ids, args['terminate'] === true);
    return ok(`tasks ${ids.join(', ')} flagged as revoked`);
  },
  terminate: (target, args) => {
    const ids = stringList(args['task_id']);
    target.revoke(ids, true);
    return ok(`terminate: tasks ${ids.join(', ')} flagged as revoked`);
  },
  rate_limit: (target, args) => {
    const name = args['task_name'];
    if (typeof name !== 'string' || !target.hasTask(name)) return error(`unknown task ${String(name)}`);
    try {
      target.setRateLimit(name, (args['rate_limit'] ?? null) as string | number | null);
    } catch (failure) {
      return error(`invalid rate limit string: ${describeError(failure)}`);
    }
    const rate = args['rate_limit'];
    return ok(rate === null || rate === 0 || rate === '0' ? 'rate limit disabled successfully' : 'new rate limit set successfully');
  },
  time_limit: (target, args) => {
    const name = args['task_name'];
    if (typeof name !== 'string' || !target.hasTask(name)) return error(`unknown task ${String(name)}`);
    target.setTimeLimit(name, numberOrNull(args['hard']), numberOrNull(args['soft']));
    return ok('time limits set successfully');
  },
  shutdown: (target, args) => {
    target.shutdown(typeof args['msg'] === 'string' ? args['msg'] : 'Got shutdown from remote');
    return undefined;
  },
  pool_grow: (target, args) => (target.resizePool(positive(args['n'])) ? ok('pool will grow') : error('this worker has no pool to grow')),
  pool_shrink: (target, args) => (target.resizePool(-positive(args['n'])) ? ok('pool will shrink') : error('this worker has no pool to shrink')),
  autoscale: (target, args) => {
    const max = Number(args['max']);
    const min = Number(args['min']);
    if (!Number.isInteger(max) || !Number.isInteger(min) || min < 0 || max < Math.max(1, min)) return error('autoscale needs integers max >= min >= 0');
    return target.autoscale(max, min) ? ok(`autoscale now max=${max} min=${min}`) : error('Autoscale not enabled');
  },
  add_consumer: async (target, args) => {
    const queue = args['queue'];
    if (typeof queue !== 'string' || queue === '') return error('add_consumer needs a queue');
    return (await target.addConsumer(queue)) ? ok(`add consumer ${queue}`) : ok(`already consuming from ${queue}`);
  },
  cancel_consumer: async (target, args) => {
    const queue = args['queue'];
    if (typeof queue !== 'string') return error('cancel_consumer needs a queue');
    return (await target.cancelConsumer(queue)) ? ok(`no longer consuming from ${queue}`) : error(`not consuming from ${queue}`);
  },
  enable_events: (target) => {
    target.setTaskEvents(true);
    return ok('task events enabled');
  },
  disable_events: (target) => {
    target.setTaskEvents(false);
    return ok('task events disabled');
  },
  heartbeat: (target) => {
    target.heartbeat();
    return undefined;
  },
};

/** Names of the commands a worker answers. */
export const CONTROL_COMMANDS: readonly string[] = Object.keys(COMMANDS);

/** The handler of `method`, if the worker knows it. */
export function controlCommand(method: string): Handler | undefined {
  return Object.hasOwn(COMMANDS, method) ? COMMANDS[method] : undefined;
}

function queryTask(target: ControlTarget, ids: string[]): Record<string, [string, RequestInfo]> {
  const found: Record<string, [string, RequestInfo]> = {};
  for (const info of target.active()) if (ids.includes(info.id)) found[info.id] = ['active', info];
  for (const info of target.reserved()) if (ids.includes(info.id)) found[info.id] = ['reserved', info];
  for (const { request } of target.scheduled()) if (ids.includes(request.id)) found[request.id] = ['scheduled', request];
  return found;
}

/** A queue as kombu describes it in `active_queues`. */
function queueInfo(name: string): Record<string, unknown> {
  return {
    name,
    exchange: { name, type: 'direct', arguments: null, durable: true, passive: false, auto_delete: false, delivery_mode: null, no_declare: false },
    routing_key: name,
    queue_arguments: null,
    binding_arguments: null,
    consumer_arguments: null,
    durable: true,
    exclusive: false,
    auto_delete: false,
    no_ack: false,
    alias: null,
    bindings: [],
    no_declare: null,
    expires: null,
    message_ttl: null,
    max_length: null,
    max_length_bytes: null,
    max_priority: null,
  };
}

function stringList(value: unknown): string[] {
  return (Array.isArray(value) ? value : [value]).filter((item): item is string => typeof item === 'string');
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function positive(value: unknown): number {
  const n = Number(value ?? 1);
  return Number.isInteger(n) && n > 0 ? n : 1;
}
