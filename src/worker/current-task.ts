/**
 * The task running in the current async context, so a task sent from inside a handler names it
 * as parent and workflow root, and the worker records the new task among its children.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ResultTuple } from '../backends/backend.js';

/** What the app needs to know of the task a call is made from. */
export interface RunningTask {
  readonly id: string;
  readonly rootId: string;
  /** Results of the tasks sent while it ran, as Celery stores them in `children`. */
  readonly children: ResultTuple[];
}

/** The running task of the current async context, if any. */
export const currentTask = new AsyncLocalStorage<RunningTask>();
