/** A task as the `active`, `reserved` and `scheduled` inspect commands describe it, in Celery's fields. */
import type { Delivery } from '../../brokers/broker.js';
import type { TaskMessage } from '../../protocol/message.js';
import type { RequestInfo } from './control-commands.js';

/** A task as Celery's `active`/`reserved`/`scheduled` replies describe it. */
export function describeRequest(job: { request: TaskMessage; delivery: Delivery; startedAt?: number | undefined }, hostname: string, acknowledged: boolean): RequestInfo {
  const { request, delivery } = job;
  return {
    id: request.id,
    name: request.task,
    args: request.args,
    kwargs: request.kwargs,
    type: request.task,
    hostname,
    time_start: job.startedAt ?? null,
    acknowledged,
    delivery_info: { exchange: '', routing_key: delivery.queue, priority: request.priority, redelivered: delivery.redelivered },
    worker_pid: job.startedAt === undefined ? null : process.pid,
  };
}
