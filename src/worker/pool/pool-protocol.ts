/**
 * What a worker and its pool threads and child processes say to each other. Both kinds carry
 * the same messages by structured clone (`worker_threads` ports; `child_process` IPC with
 * `serialization: 'advanced'`). The hot traffic goes in batches of JSON text, one message per
 * turn each way: the runs handed to a slot ({@link RunOrder}: the task message's body as it
 * arrived and the headers decoding needs) and the runs that ended ({@link EndedRun}: results as
 * kombu JSON text, errors in Celery's exception form).
 */
import type { ResultTuple } from '../../backends/backend.js';
import type { LogFields, LogLevel } from '../../logger.js';
import type { ExceptionDict } from '../../protocol/exceptions.js';
import type { RevokeReason } from '../../errors.js';

/** Why a run's signal fires. */
export type AbortCause = { kind: 'soft-time-limit'; seconds: number } | { kind: 'revoked'; reason: RevokeReason };

/** One run as it crosses to a slot. */
export interface RunOrder {
  run: number;
  /** The task message's headers, less those only a human reads (`argsrepr`, `kwargsrepr`). */
  headers: Record<string, unknown>;
  /** The body's bytes as a `latin1` string (kombu JSON text, exact whatever its encoding). */
  body: string;
  replyTo?: string;
  priority?: number;
  /** The task's previous run, when tracing is on (a retry links to it). */
  trace?: Record<string, string>;
  /** Signals fired before the slot received it: they fire as soon as it starts. */
  aborts?: AbortCause[];
}

/** A failure as it crosses back: Celery's form, the stack, and whether the task asked to retry. */
export interface ThrownError {
  exception: ExceptionDict;
  traceback: string | null;
  retry: { reason: ExceptionDict | null; reasonTraceback: string | null; countdown: number } | null;
}

/** How a run a slot received ended there; `ms`, how long it ran there. */
export type EndedRun = { run: number; ms: number; children?: ResultTuple[]; trace?: Record<string, string> } & (
  | { result: string }
  | { error: ThrownError }
  /** Cancelled before it started (terminate of a queued run). */
  | { cancelled: true }
);

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
      /** Report memory with ended runs (for `maxMemoryPerChild`); measuring costs a child a fifth of a no-op's time. */
      reportMemory: boolean;
    }
  /** Runs to do one after the other, after those already queued: a JSON {@link RunOrder} array. */
  | { type: 'runs'; runs: string }
  | { type: 'abort'; run: number; cause: AbortCause }
  /** Drop a queued run that has not started (answered by an ended run with `cancelled`); one already started goes on. */
  | { type: 'cancel'; run: number }
  /** Finish: close the app's connections and exit. */
  | { type: 'exit' };

/** From a thread or child to the worker. */
export type ChildMessage =
  | { type: 'ready'; pid: number }
  /** The module could not be loaded: the child exits after this. */
  | { type: 'failed'; error: string }
  | { type: 'progress'; run: number; current: number; total: number | null; info: Record<string, unknown> }
  | { type: 'log'; run: number; prefix: string; level: LogLevel; fields: LogFields | null; message: string }
  | {
      type: 'ended';
      /** A JSON {@link EndedRun} array, in the order the runs ended. */
      runs: string;
      /** Resident memory of the child process, or heap in use of the thread, in KiB, when asked for. */
      memoryKiB: number | null;
    };
