/**
 * Task definitions: a name, a typed handler and its options. The handler's parameter types flow
 * to `delay(...)` and its return type to the awaited result.
 */
import type { AsyncResult } from './result.js';
import type { Logger } from './logger.js';
import type { TaskMessage } from './protocol/message.js';
import type { SignatureLike } from './canvas/options.js';
import type { RateLimit } from './rate-limit.js';
import type { StandardSchema } from './schema.js';
import { Signature, type CanvasHost, type IgnoresParent } from './canvas/signature.js';

/** What a running task knows of itself and can do. */
export interface TaskContext {
  /** The task id (stable across retries). */
  readonly id: string;
  /** The registered task name. */
  readonly name: string;
  /** How many times this task has been retried so far (0 on the first run). */
  readonly retries: number;
  /**
   * Fires when the task should stop: soft time limit, revoke with `terminate`, or worker
   * shutdown after its grace period. `signal.reason` says which.
   */
  readonly signal: AbortSignal;
  /** Keyword arguments that did not map onto positional parameters. */
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** The full decoded request (eta, parent and root ids, group, ...). */
  readonly request: Readonly<TaskMessage>;
  /** A logger whose lines carry the task name and id. */
  readonly log: Logger;
  /**
   * Reports progress: stored as state `PROGRESS` with `{current, total, ...info}` so clients
   * can show it. Calls are throttled; the last one always lands.
   */
  progress(current: number, total?: number, info?: Record<string, unknown>): void;
  /**
   * Asks for this task to run again later. Throws {@link Retry}, which the handler must let
   * propagate; throws `MaxRetriesExceededError` (or `error`) once retries are used up.
   */
  retry(options?: RetryOptions): never;
}

/** Options for {@link TaskContext.retry}. */
export interface RetryOptions {
  /** Seconds to wait; default: the task's backoff policy, else `defaultRetryDelay`. */
  countdown?: number;
  /** The error that caused the retry; re-thrown when retries are used up. */
  error?: unknown;
  /** Overrides the task's `maxRetries` for this call. */
  maxRetries?: number | null;
}

/** A task handler: the context first, then the task's own arguments. */
export type TaskHandler<A extends unknown[], R> = (ctx: TaskContext, ...args: A) => R | Promise<R>;

/** A class of errors, or a predicate, naming failures that retry automatically. */
export type ErrorMatcher = ReadonlyArray<abstract new (...args: never[]) => unknown> | ((error: unknown) => boolean);

/** Options of a task definition. Durations are in seconds, as in Celery. */
export interface TaskOptions<A extends unknown[] = unknown[]> {
  /** Queue to send to when the caller names none. Default: the app's default queue. */
  queue?: string;
  /** Retries allowed; null retries forever. Default 3. */
  maxRetries?: number | null;
  /** Seconds between retries when no backoff applies. Default 180. */
  defaultRetryDelay?: number;
  /** Errors that trigger an automatic retry. */
  autoretryFor?: ErrorMatcher;
  /** Exponential backoff for automatic retries: true = factor 1, a number = that factor. */
  retryBackoff?: boolean | number;
  /** Cap on the backoff countdown in seconds. Default 600. */
  retryBackoffMax?: number;
  /** Full jitter on the backoff countdown. Default true. */
  retryJitter?: boolean;
  /** Hard time limit in seconds: the task fails with TimeLimitExceeded. */
  timeLimit?: number;
  /** Soft time limit in seconds: the task's signal fires with SoftTimeLimitExceeded. */
  softTimeLimit?: number;
  /** Ack after the task finishes (at-least-once). Default true. */
  acksLate?: boolean;
  /**
   * With `acksLate`, a task that failed or timed out is acked (true, Celery's default) or moved
   * to the dead letters (false).
   */
  acksOnFailureOrTimeout?: boolean;
  /**
   * With `acksLate`, a task whose thread or child process died goes back to the queue to run
   * again (true) instead of ending FAILURE with `WorkerLostError` (false, Celery's default).
   */
  rejectOnWorkerLost?: boolean;
  /**
   * Where the task runs, whatever the worker's `--pool`: `event` on the worker's event loop
   * (I/O-bound work), `thread` in its thread pool, `process` in its process pool (CPU-bound
   * work). Default: the worker's pool.
   */
  runIn?: 'event' | 'thread' | 'process';
  /** Do not store the result. */
  ignoreResult?: boolean;
  /** Store STARTED when the task begins. Default false, as in Celery. */
  trackStarted?: boolean;
  /**
   * At most this many runs per worker (Celery's meaning): `'10/s'`, `'100/m'`, `'1000/h'` or a
   * number per second. Runs over the limit wait in the worker, in order, without holding up
   * other tasks. Change it at run time with `app.control.rateLimit()`.
   */
  rateLimit?: RateLimit;
  /** `global` shares the limit across every worker, kept in the broker (Redis, SQLite). Default `worker`. */
  rateLimitScope?: 'worker' | 'global';
  /** Limits each key separately: `(customerId) => customerId` gives each customer the whole rate. */
  rateLimitKey?(...args: A): string;
  /** Default priority 0–9. */
  priority?: number;
  /** Default expiry in seconds after sending. */
  expires?: number;
  /**
   * Names of the positional parameters, in order. Lets keyword arguments (from Python callers
   * or `applyAsync({kwargs})`) fill positions, and rejects unknown keywords.
   */
  params?: readonly string[];
  /**
   * Checks (and may convert) incoming arguments before the handler runs; throw to reject.
   * Schema libraries fit: `validate: (args) => MyTuple.parse(args)`.
   */
  validate?: (args: unknown[]) => A | void;
  /**
   * A Standard Schema (zod, valibot, arktype ...) for the argument list, e.g.
   * `z.tuple([z.number(), z.number()])`; the handler's argument types come from it. A worker
   * refuses arguments it rejects (FAILURE with the schema's messages, never retried).
   */
  schema?: StandardSchema<unknown, A>;
  /** Also check arguments against `schema` when calling, before anything is sent. Default false. */
  validateOnCall?: boolean;
}

/** Options of one call, on top of the task's own. Durations are in seconds. */
export interface ApplyOptions {
  /** Keyword arguments (Celery's kwargs). */
  kwargs?: Record<string, unknown>;
  /** Run no earlier than this many seconds from now. */
  countdown?: number;
  /** Run no earlier than this time. */
  eta?: Date;
  /** Discard (REVOKED) if not started by then: seconds from now, or a date. */
  expires?: number | Date;
  /** Queue to send to. */
  queue?: string;
  /** Publish through this exchange (RabbitMQ), as Celery's `exchange` option. */
  exchange?: string;
  /** The routing key for `exchange`. Default: the queue's name. */
  routingKey?: string;
  /** Priority 0–9. */
  priority?: number;
  /** Use this id instead of a fresh UUID. */
  taskId?: string;
  /** Hard time limit in seconds for this call. */
  timeLimit?: number;
  /** Soft time limit in seconds for this call. */
  softTimeLimit?: number;
  /** Do not store the result of this call. */
  ignoreResult?: boolean;
  /** Retry the publish on broker errors. Default true. */
  retry?: boolean;
  /** How to retry the publish: attempts and the delay between them (seconds). */
  retryPolicy?: PublishRetryPolicy;
  /** Extra message headers. */
  headers?: Record<string, unknown>;
  /** Sent with this task's result as their first argument when it succeeds (`embed.callbacks`). */
  link?: SignatureLike | readonly SignatureLike[];
  /**
   * Sent with this task's id as their first argument when it fails (`embed.errbacks`); the
   * error is in that task's stored result.
   */
  linkError?: SignatureLike | readonly SignatureLike[];
  /** Set by workers when a task sends another, linking the two in the result tree. */
  parentId?: string;
  /** The first task of the workflow. */
  rootId?: string;
}

/** Celery's publish retry policy. */
export interface PublishRetryPolicy {
  maxRetries?: number;
  intervalStart?: number;
  intervalStep?: number;
  intervalMax?: number;
}

/** Sends task messages and signatures; implemented by the app. */
export interface TaskSender extends CanvasHost {
  send<R>(name: string, args: unknown[], options: ApplyOptions, defaults: TaskOptions): AsyncResult<R>;
  sendMany<R>(name: string, argsList: readonly unknown[][], options: ApplyOptions, defaults: TaskOptions): AsyncResult<R>[];
}

/** A defined task. Call it with {@link Task.delay} or {@link Task.applyAsync}. */
export class Task<A extends unknown[] = unknown[], R = unknown> {
  constructor(
    /** The registered name, e.g. `tasks.add`. */
    readonly name: string,
    /** The function the worker runs. */
    readonly handler: TaskHandler<A, R>,
    /** The task's options. */
    readonly options: TaskOptions<A>,
    private readonly sender: TaskSender,
  ) {}

  /** Sends the task with these arguments; returns a future of its result. */
  delay(...args: A): AsyncResult<Awaited<R>> {
    return this.sender.send<Awaited<R>>(this.name, args, {}, this.options as TaskOptions);
  }

  /** Sends the task with arguments and call options (kwargs, countdown, eta, queue, ...). */
  applyAsync(args: A, options: ApplyOptions = {}): AsyncResult<Awaited<R>> {
    return this.sender.send<Awaited<R>>(this.name, args, options, this.options as TaskOptions);
  }

  /**
   * Sends one task per argument tuple in as few broker round trips as the broker allows (bulk
   * enqueue). `options` apply to every call; `taskId` is not allowed here.
   */
  delayMany(argsList: readonly A[], options: Omit<ApplyOptions, 'taskId'> = {}): AsyncResult<Awaited<R>>[] {
    return this.sender.sendMany<Awaited<R>>(this.name, argsList, options, this.options as TaskOptions);
  }

  /**
   * A signature of a call with the trailing arguments given: in a chain, the previous step's
   * result fills the first missing one. `add.s(2, 3)` is complete; `add.s(3)` still needs its
   * first argument.
   */
  s<G extends Suffixes<A>>(...args: G): Signature<DropSuffix<A, G>, Awaited<R>> {
    return new Signature<DropSuffix<A, G>, Awaited<R>>({ task: this.name, args }, this.sender);
  }

  /** An immutable signature: it runs with exactly these arguments and ignores any parent's result. */
  si(...args: A): Signature<IgnoresParent, Awaited<R>> {
    return new Signature<IgnoresParent, Awaited<R>>({ task: this.name, args, immutable: true }, this.sender);
  }
}

/** Every tail of an argument tuple, the whole and the empty one included. */
type Suffixes<A extends unknown[]> = A | (A extends [unknown, ...infer Tail] ? Suffixes<Tail> : A extends [] ? never : []);

/**
 * The leading arguments of `A` left when its tail `G` is given: none once `G` is a whole call
 * (optional parameters may be left out), else the first parameter and what the rest lacks.
 */
type DropSuffix<A extends unknown[], G extends unknown[]> = number extends A['length']
  ? A
  : G extends A
    ? []
    : A extends [infer Head, ...infer Tail]
      ? [Head, ...DropSuffix<Tail, G>]
      : [];

/** The argument tuple of a task. */
export type TaskArgs<T> = T extends Task<infer A, unknown> ? A : never;
/** The result type of a task. */
export type TaskResult<T> = T extends Task<unknown[], infer R> ? Awaited<R> : never;
