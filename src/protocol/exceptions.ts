/**
 * Errors as Celery stores them in results: `{exc_type, exc_message: [...], exc_module}`, so a
 * Python client re-raises a failure from a TypeScript worker, and the other way round.
 */
import { CeleriacError, TaskFailedError, TaskRevokedError, type RevokeReason } from '../errors.js';

/** Celery's JSON form of an exception. */
export interface ExceptionDict {
  exc_type: string;
  exc_message: unknown[];
  exc_module: string;
}

// Our error classes travel under the names (and modules) Celery gives the same conditions.
const CELERY_NAMES: Record<string, readonly [type: string, module: string]> = {
  E_NOT_REGISTERED: ['NotRegistered', 'celery.exceptions'],
  E_TIME_LIMIT: ['TimeLimitExceeded', 'celery.exceptions'],
  E_SOFT_TIME_LIMIT: ['SoftTimeLimitExceeded', 'celery.exceptions'],
  E_REVOKED: ['TaskRevokedError', 'celery.exceptions'],
  E_MAX_RETRIES: ['MaxRetriesExceededError', 'celery.exceptions'],
  E_RETRY: ['Retry', 'celery.exceptions'],
  E_CHORD: ['ChordError', 'celery.exceptions'],
  E_WORKER_LOST: ['WorkerLostError', 'celery.exceptions'],
  E_ENCODE: ['EncodeError', 'kombu.exceptions'],
};

// JavaScript error names that mean the same thing as a Python builtin of that name.
const PYTHON_BUILTINS = new Set(['TypeError', 'SyntaxError', 'ReferenceError', 'RangeError', 'EvalError']);
const PYTHON_EQUIVALENTS: Record<string, string> = { RangeError: 'ValueError', ReferenceError: 'NameError' };

/** The module name errors from celeriac tasks carry, when no Python equivalent exists. */
export const JS_ERROR_MODULE = 'celeriac';

/** Serializes any thrown value into Celery's exception dict. */
export function serializeException(error: unknown): ExceptionDict {
  if (error instanceof TaskFailedError) {
    return { exc_type: error.excType, exc_message: [...error.excMessage], exc_module: error.excModule };
  }
  const celeryName = error instanceof CeleriacError ? CELERY_NAMES[error.code] : undefined;
  if (celeryName) return { exc_type: celeryName[0], exc_message: [(error as Error).message], exc_module: celeryName[1] };
  if (error instanceof Error) {
    const name = error.name || 'Error';
    if (PYTHON_BUILTINS.has(name)) {
      return { exc_type: PYTHON_EQUIVALENTS[name] ?? name, exc_message: [error.message], exc_module: 'builtins' };
    }
    return { exc_type: name, exc_message: [error.message], exc_module: JS_ERROR_MODULE };
  }
  return { exc_type: 'Error', exc_message: [String(error)], exc_module: JS_ERROR_MODULE };
}

/** True when `value` has the shape of Celery's exception dict. */
export function isExceptionDict(value: unknown): value is ExceptionDict {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record['exc_type'] === 'string';
}

/** Rebuilds a stored exception dict as an error a caller can throw. */
export function deserializeException(taskId: string, value: unknown, traceback: string | null): TaskFailedError {
  if (!isExceptionDict(value)) {
    return new TaskFailedError(taskId, 'Exception', 'builtins', [JSON.stringify(value)], traceback);
  }
  const message = Array.isArray(value.exc_message) ? value.exc_message : [value.exc_message];
  return new TaskFailedError(taskId, value.exc_type, String(value.exc_module ?? 'builtins'), message, traceback);
}

const REVOKE_REASONS: readonly RevokeReason[] = ['revoked', 'terminated', 'expired', 'shutdown'];

/** The error for a REVOKED result, whichever side stored it; its reason is `exc_message[0]`. */
export function deserializeRevocation(value: unknown): TaskRevokedError {
  const said = isExceptionDict(value) ? value.exc_message[0] : undefined;
  return new TaskRevokedError(REVOKE_REASONS.find((reason) => reason === said) ?? 'revoked');
}
