/** Building the Celery result meta a worker stores for each state. */
import type { ResultMeta } from '../backends/backend.js';
import { formatIsoDate } from '../protocol/kombu-json.js';
import type { TaskMessage } from '../protocol/message.js';
import { isReady, type TaskState } from '../states.js';

/** Who stores the meta, for the extended fields. */
export interface MetaOrigin {
  hostname: string;
  queue: string;
}

/** Celery's result meta for `request` in `status`, with the extended fields filled in. */
export function buildResultMeta(
  request: Pick<TaskMessage, 'id' | 'task' | 'retries' | 'group' | 'parentId'>,
  status: TaskState, result: unknown, traceback: string | null, origin: MetaOrigin, children: unknown[] = []): ResultMeta {
  const meta: ResultMeta = {
    task_id: request.id,
    status,
    result,
    traceback,
    children,
    date_done: isReady(status) ? formatIsoDate(new Date()) : null,
    name: request.task,
    worker: origin.hostname,
    retries: request.retries,
    queue: origin.queue,
  };
  if (request.group !== null) meta.group_id = request.group;
  if (request.parentId !== null) meta.parent_id = request.parentId;
  return meta;
}
