/**
 * The seam between deciding what runs and running it. The worker picks a task, applies its
 * limits and records how it ended; an executor runs one handler and reports an outcome, on the
 * event loop ({@link InlineExecutor}), in a thread or in a child process (`pool/`).
 */
import type { ResultTuple } from '../backends/backend.js';
import type { Logger } from '../logger.js';
import type { TaskMessage, TransportMessage } from '../protocol/message.js';
import type { Task } from '../task.js';
import { matchesAutoretry, mayRetry, retryCountdown } from './retry-policy.js';
import { Retry } from '../errors.js';

/** Where a task runs: on the worker's event loop, in a thread, or in a child process. */
export type PoolKind = 'event' | 'threads' | 'processes';

/** One task to run. */
export interface RunRequest {
  readonly request: TaskMessage;
  /** The message as it arrived: a pool child decodes its arguments from it. */
  readonly message: TransportMessage;
  readonly task: Task<never, unknown>;
  /** Arguments checked against the task's parameters (and schema), for a run in this process. */
  readonly args: unknown[];
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** Where the task's `ctx.log` lines go. */
  readonly logger: Logger;
  /** The trace context of the task's previous run, when tracing is on: a slot continues from it. */
  readonly trace?: Record<string, string> | undefined;
  /**
   * Called once when the run starts, before its handler runs: at once on the event loop; in a
   * pool, when its slot takes it up, which may be after runs queued ahead of it there (a run
   * that never starts, cancelled or its pool closed, never calls it). Its time limits count from
   * here, and here it becomes active.
   */
  readonly onStart: () => void;
  /** Receives the task's `ctx.progress` reports. */
  readonly onProgress: (current: number, total: number | null, info: Record<string, unknown>) => void;
}

/** How a run ended, as the executor saw it; `trace`, when a slot traced the run, its context. */
export type RunOutcome = (
  | { readonly kind: 'returned'; readonly value: unknown; readonly children: ResultTuple[] }
  /** The handler threw (or was stopped by `terminate`); `retry` when the task asks to run again. */
  | { readonly kind: 'threw'; readonly error: unknown; readonly retry: RetryRequest | null; readonly children: ResultTuple[] }
  /** The thread or child process running it died. */
  | { readonly kind: 'lost'; readonly error: Error; readonly children: ResultTuple[] }
) & { readonly trace?: Record<string, string> | undefined };

/** A run that should happen again: after `countdown` seconds, recording `reason`. */
export interface RetryRequest {
  readonly reason: unknown;
  readonly countdown: number;
}

/** One run in progress. */
export interface Execution {
  /** Settles once with how the run ended; never rejects. */
  readonly outcome: Promise<RunOutcome>;
  /**
   * How the run ended, when it ended before `run` returned (a handler that returned a plain
   * value or threw on the event loop): the worker records it at once, without a promise.
   */
  readonly immediate?: RunOutcome | undefined;
  /** Fires the task's AbortSignal with `reason` (soft time limit, revoke, shutdown); the run goes on. */
  signal(reason: Error): void;
  /**
   * Ends the run now with `reason` as its error: a run that has not started is dropped; a
   * thread or child process running it is killed and replaced; on the event loop the handler is
   * abandoned (its signal fires) as JavaScript cannot stop a running function.
   */
  terminate(reason: Error): void;
}

/** Runs handlers, holding up to `capacity` runs at once. */
export interface Executor {
  readonly kind: PoolKind;
  /** Runs going on at once, at most: the event loop's concurrency, or a pool's slots. */
  readonly concurrency: number;
  /**
   * Runs it may hold at once: its concurrency, times how many runs a pool slot may queue while
   * tasks are short (so it may change).
   */
  readonly capacity: number;
  /** Runs it holds (started or not). */
  readonly busy: number;
  /** Makes it ready to run (threads and children started). */
  start(): Promise<void>;
  /** Takes a run (see {@link RunRequest.onStart} for when it starts); only call while `busy < capacity`. */
  run(run: RunRequest): Execution;
  /** Stops it; runs still going are terminated. */
  close(): Promise<void>;
  /** Grows (or shrinks, `by` < 0) its capacity; false when it cannot. */
  resize?(by: number): boolean;
  /** Sets its autoscale bounds; false when it does not autoscale. */
  autoscale?(max: number, min: number): boolean;
  /** Its threads' ids or child processes' pids. */
  slotIds?(): number[];
}

/**
 * Whether an error a handler threw asks for another run: a {@link Retry} from `ctx.retry()`, or
 * an error the task retries automatically while retries remain. Decided where the error lives
 * (its class matters), so in the thread or child that ran the handler.
 */
export function retryRequestFor(task: Task<never, unknown>, request: Pick<TaskMessage, 'retries'>, error: unknown): RetryRequest | null {
  if (error instanceof Retry) return { reason: error.reasonError, countdown: error.countdownSeconds };
  const options = task.options;
  if (matchesAutoretry(options.autoretryFor, error) && mayRetry(options.maxRetries, request.retries)) {
    return { reason: error, countdown: retryCountdown(options, request.retries) };
  }
  return null;
}
