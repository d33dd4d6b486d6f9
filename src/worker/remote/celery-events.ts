/**
 * A worker's task events in Celery's form (`task-received` … `task-rejected`), sent through an
 * {@link EventDispatcher} while attached: while task events are on (`-E`, or `enable_events`). The
 * fields are the ones Celery's workers send, reprs included, so `celery events`, Flower and
 * Python's `events.State` read them as their own.
 */
import type { TypedEmitter, WorkerEventMap } from '../../events.js';
import { serializeException } from '../../protocol/exceptions.js';
import { pythonRepr } from '../../protocol/repr.js';
import type { EventDispatcher } from '../../monitor/event-dispatcher.js';

/** Sends `worker`'s task events through `dispatcher` until the function it returns is called. */
export function attachCeleryEvents(worker: TypedEmitter<WorkerEventMap>, dispatcher: EventDispatcher): () => void {
  const send = (type: string, fields: Record<string, unknown>): void => dispatcher.sendTask(type, fields);
  const listeners: { [K in keyof WorkerEventMap]?: (payload: WorkerEventMap[K]) => void } = {
    'task-received': ({ id, name, args, kwargs, eta, expires, retries, rootId, parentId }) =>
      send('task-received', {
        uuid: id,
        name,
        args: pythonRepr(args),
        kwargs: pythonRepr(kwargs),
        root_id: rootId,
        parent_id: parentId,
        retries,
        eta: eta?.toISOString() ?? null,
        expires: expires?.toISOString() ?? null,
      }),
    'task-started': ({ id }) => send('task-started', { uuid: id }),
    'task-succeeded': ({ id, result, runtime }) => send('task-succeeded', { uuid: id, result: pythonRepr(result), runtime }),
    'task-failed': ({ id, error }) => send('task-failed', { uuid: id, exception: exceptionRepr(error), traceback: tracebackOf(error) }),
    'task-retried': ({ id, error }) => send('task-retried', { uuid: id, exception: exceptionRepr(error), traceback: tracebackOf(error) }),
    'task-revoked': ({ id, reason }) => send('task-revoked', { uuid: id, terminated: reason === 'terminated', signum: reason === 'terminated' ? 15 : null, expired: reason === 'expired' }),
    'task-rejected': ({ id }) => {
      if (id) send('task-rejected', { uuid: id, requeue: false });
    },
  };
  for (const [event, listener] of Object.entries(listeners)) worker.on(event as keyof WorkerEventMap, listener as never);
  return () => {
    for (const [event, listener] of Object.entries(listeners)) worker.off(event as keyof WorkerEventMap, listener as never);
  };
}

/** `ValueError('bad input')`, as Python's repr of the exception reads. */
function exceptionRepr(error: unknown): string {
  const { exc_type, exc_message } = serializeException(error);
  return `${exc_type}(${exc_message.map((part) => pythonRepr(part)).join(', ')})`;
}

function tracebackOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? '') : '';
}
