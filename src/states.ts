/** Task states, named and grouped exactly as Celery names and groups them. */

export const PENDING = 'PENDING';
export const RECEIVED = 'RECEIVED';
export const STARTED = 'STARTED';
export const PROGRESS = 'PROGRESS';
export const RETRY = 'RETRY';
export const SUCCESS = 'SUCCESS';
export const FAILURE = 'FAILURE';
export const REVOKED = 'REVOKED';
export const REJECTED = 'REJECTED';

/** Every state a task can be in; custom states are plain strings. */
export type TaskState =
  | typeof PENDING
  | typeof RECEIVED
  | typeof STARTED
  | typeof PROGRESS
  | typeof RETRY
  | typeof SUCCESS
  | typeof FAILURE
  | typeof REVOKED
  | typeof REJECTED
  | (string & {});

/** States after which a task will not change again. */
export const READY_STATES: ReadonlySet<string> = new Set([SUCCESS, FAILURE, REVOKED]);
/** Ready states whose result is an error. */
export const PROPAGATE_STATES: ReadonlySet<string> = new Set([FAILURE, REVOKED]);
/** States whose result is an exception dict. */
export const EXCEPTION_STATES: ReadonlySet<string> = new Set([RETRY, FAILURE, REVOKED]);

/** True when a task in `state` will not change again. */
export function isReady(state: string): boolean {
  return READY_STATES.has(state);
}

// Celery's precedence: lower index wins when two reports of one task are merged.
const PRECEDENCE = [SUCCESS, FAILURE, '', REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING];
const UNKNOWN_RANK = PRECEDENCE.indexOf('');

/** Celery's state precedence: a smaller number means the state wins a merge. */
export function precedence(state: string): number {
  const rank = PRECEDENCE.indexOf(state);
  return rank === -1 ? UNKNOWN_RANK : rank;
}
