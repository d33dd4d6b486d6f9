/**
 * What a worker and its pool threads and child processes say to each other. Both kinds carry
 * the same messages by structured clone (`worker_threads` ports; `child_process` IPC with
 * `serialization: 'advanced'`). Task arguments travel inside the task message as it arrived,
 * results as kombu JSON text, errors in Celery's exception form.
 */
import type { ResultTuple } from '../../backends/backend.js';
import type { LogFields, LogLevel } from '../../logger.js';
import type { ExceptionDict } from '../../protocol/exceptions.js';
import type { TransportMessage } from '../../protocol/message.js';
import type { RevokeReason } from '../../errors.js';

/** Why a run's signal fires. */
export type AbortCause = { kind: 'soft-time-limit'; seconds: number } | { kind: 'revoked'; reason: RevokeReason };

/** From the worker to a thread or child. */
export type ParentMessage =
  | {
      type: 'init';
      /** The app's module, as `importAppModule` takes it. */
      module: string;
      overrides: { broker?: string | undefined; backend?: string | undefined };
      trackChildren: boolean;
      /** Levels the worker's logger writes, so `ctx.log.enabled()` answers in the child. */
      logLevels: LogLevel[];
      /** Report memory after each task (for `maxMemoryPerChild`); measuring costs a child a fifth of a no-op's time. */
      reportMemory: boolean;
    }
  /** `trace`: the task's previous run, when tracing is on (a retry links to it). */
  | { type: 'run'; runId: number; message: TransportMessage; trace?: Record<string, string> | undefined }
  | { type: 'abort'; runId: number; cause: AbortCause }
  /** Finish: close the app's connections and exit. */
  | { type: 'exit' };

/** A failure as it crosses back: Celery's form, the stack, and whether the task asked to retry. */
export interface ThrownError {
  exception: ExceptionDict;
  traceback: string | null;
  retry: { reason: ExceptionDict | null; reasonTraceback: string | null; countdown: number } | null;
}

/** From a thread or child to the worker. */
export type ChildMessage =
  | { type: 'ready'; pid: number }
  /** The module could not be loaded: the child exits after this. */
  | { type: 'failed'; error: string }
  | { type: 'progress'; runId: number; current: number; total: number | null; info: Record<string, unknown> }
  | { type: 'log'; runId: number; prefix: string; level: LogLevel; fields: LogFields | null; message: string }
  | {
      type: 'done';
      runId: number;
      outcome: { kind: 'returned'; json: string } | ({ kind: 'threw' } & ThrownError);
      children: ResultTuple[];
      /** Resident memory of the child process, or heap in use of the thread, in KiB, when asked for. */
      memoryKiB: number | null;
      /** The run's trace context, when the app traces: what the worker sends next continues it. */
      trace?: Record<string, string> | undefined;
    };
