/**
 * Coded error classes. Every error celeriac raises on purpose carries a stable `code`, so
 * callers, logs and the CLI can tell failures apart without parsing messages.
 */

/** Base class of every error celeriac raises on purpose. */
export class CeleriacError extends Error {
  /** A stable, machine-readable code such as `E_BROKER_URL`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A broker or backend URL could not be understood. */
export class ConfigurationError extends CeleriacError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CONFIG', message, options);
  }
}

/** The broker or result backend could not be reached. */
export class ConnectionError extends CeleriacError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CONNECTION', message, options);
  }
}

/** Why an incoming message could not be turned into a task request. */
export type ProtocolErrorReason =
  | 'oversized'
  | 'undecodable'
  | 'unsupported-content-type'
  | 'malformed'
  | 'unknown-protocol';

/** A broker or result backend was used before `connect()` (or after `close()`). */
export class NotConnectedError extends CeleriacError {
  constructor(what: string) {
    super('E_NOT_CONNECTED', `${what} is not connected (call connect() first, or send through an app, which connects on first use)`);
  }
}

/** An incoming message is not a valid Celery task message. */
export class ProtocolError extends CeleriacError {
  readonly reason: ProtocolErrorReason;

  constructor(reason: ProtocolErrorReason, message: string, options?: { cause?: unknown }) {
    super('E_PROTOCOL', message, options);
    this.reason = reason;
  }
}

/** A message names a task this worker does not know. Mirrors Celery's `NotRegistered`. */
export class NotRegistered extends CeleriacError {
  constructor(readonly taskName: string) {
    super('E_NOT_REGISTERED', `task ${JSON.stringify(taskName)} is not registered on this worker`);
  }
}

/** A task's arguments do not fit its definition. */
export class InvalidArguments extends CeleriacError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INVALID_ARGUMENTS', message, options);
  }
}

/** The hard time limit of a task ran out. Mirrors Celery's `TimeLimitExceeded`. */
export class TimeLimitExceeded extends CeleriacError {
  constructor(readonly seconds: number) {
    super('E_TIME_LIMIT', `hard time limit (${seconds}s) exceeded`);
  }
}

/** The soft time limit of a task ran out: the reason its AbortSignal fired. */
export class SoftTimeLimitExceeded extends CeleriacError {
  constructor(readonly seconds: number) {
    super('E_SOFT_TIME_LIMIT', `soft time limit (${seconds}s) exceeded`);
  }
}

/** Why a task was revoked. */
export type RevokeReason = 'revoked' | 'terminated' | 'expired' | 'shutdown';

/** A task was revoked, expired, or stopped by shutdown. Mirrors Celery's `TaskRevokedError`. */
export class TaskRevokedError extends CeleriacError {
  constructor(readonly reason: RevokeReason) {
    super('E_REVOKED', reason);
  }
}

/** A task asked to retry more times than its `maxRetries`. */
export class MaxRetriesExceededError extends CeleriacError {
  constructor(taskName: string, taskId: string, retries: number) {
    super('E_MAX_RETRIES', `can't retry ${taskName}[${taskId}] after ${retries} retries`);
  }
}

/**
 * A chord's body could not run: a header member failed or was revoked, or the join failed.
 * Mirrors Celery's `ChordError`; the body's result is FAILURE with it.
 */
export class ChordError extends CeleriacError {
  constructor(message: string) {
    super('E_CHORD', message);
  }
}

/**
 * The thread or child process running a task died before the task ended (it exited, crashed,
 * ran out of memory or was killed). Mirrors Celery's `WorkerLostError`.
 */
export class WorkerLostError extends CeleriacError {
  constructor(message: string) {
    super('E_WORKER_LOST', message);
  }
}

/** A value (a task's result, say) has no JSON form: a cycle, say. Mirrors kombu's `EncodeError`. */
export class EncodeError extends CeleriacError {
  constructor(message: string) {
    super('E_ENCODE', message);
  }
}

/** Waiting for a result ran out of time. */
export class TimeoutError extends CeleriacError {
  constructor(message: string) {
    super('E_TIMEOUT', message);
  }
}

/**
 * A task failed remotely. Rebuilt from Celery's stored exception (`exc_type`,
 * `exc_message`, `exc_module`), so a failure raised by a Python worker reads the same way.
 */
export class TaskFailedError extends CeleriacError {
  constructor(
    readonly taskId: string,
    readonly excType: string,
    readonly excModule: string,
    readonly excMessage: readonly unknown[],
    readonly remoteTraceback: string | null,
  ) {
    super('E_TASK_FAILED', `${excType}: ${excMessage.map(formatArg).join(', ')}`);
  }
}

function formatArg(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * Thrown by {@link TaskContext.retry}: tells the worker to re-send the task later. A handler
 * must let it propagate.
 */
export class Retry extends CeleriacError {
  constructor(
    readonly countdownSeconds: number,
    readonly reasonError: unknown,
  ) {
    super('E_RETRY', `retry in ${countdownSeconds}s: ${describeError(reasonError)}`);
  }
}

/** One line naming an error: `TypeError: bad input`, or the value itself. */
export function describeError(error: unknown): string {
  if (error instanceof TaskFailedError) return error.message; // already `ValueError: ...`
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
