/**
 * Futures over distributed tasks: {@link AsyncResult} (await it, `get` with timeout and
 * signal, done-callbacks), and {@link gather}, {@link wait} and {@link asCompleted} over many.
 */
import { waitForReady, type ResultBackend, type ResultMeta } from './backends/backend.js';
import { TimeoutError } from './errors.js';
import { deserializeException, deserializeRevocation } from './protocol/exceptions.js';
import { isReady, PENDING, PROPAGATE_STATES, REVOKED, SUCCESS, type TaskState } from './states.js';

/** What a result needs from the app that made it. */
export interface ResultSource {
  backend(): Promise<ResultBackend>;
  revoke(taskIds: string[], options: RevokeOptions): Promise<void>;
}

/** Options for revoking a task. */
export interface RevokeOptions {
  /** Also fire the running task's AbortSignal. Default false: only tasks not yet started stop. */
  terminate?: boolean;
}

/** Options for {@link AsyncResult.get}. */
export interface GetOptions {
  /** Give up after this many seconds with a TimeoutError. */
  timeout?: number;
  /** Give up when this signal aborts. */
  signal?: AbortSignal;
  /** Reject on FAILURE/REVOKED (default true); false resolves with the error instead. */
  propagate?: boolean;
}

/** A future of one task's result. `await result` waits for it, like `result.get()`. */
export class AsyncResult<R = unknown> implements PromiseLike<R> {
  #ready: Promise<ResultMeta> | undefined;
  #meta: ResultMeta | undefined;

  constructor(
    /** The task id. */
    readonly id: string,
    private readonly source: ResultSource,
    /** Settles when the message is with the broker; rejects if it could not be sent. */
    readonly sent: Promise<void> = Promise.resolve(),
  ) {}

  /** Waits for the result: the value on SUCCESS, a rejection on FAILURE or REVOKED. */
  then<T1 = R, T2 = never>(
    onFulfilled?: ((value: R) => T1 | PromiseLike<T1>) | null,
    onRejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.get().then(onFulfilled, onRejected);
  }

  /** Waits for the result, with an optional timeout (seconds) and abort signal. */
  async get(options: GetOptions = {}): Promise<R> {
    const meta = await this.#waitReady(options);
    if (meta.status === SUCCESS) return meta.result as R;
    const error = meta.status === REVOKED ? deserializeRevocation(meta.result) : deserializeException(this.id, meta.result, meta.traceback);
    if (options.propagate === false) return error as R;
    throw error;
  }

  /** The current state; PENDING when nothing is stored yet. */
  async state(): Promise<TaskState> {
    return (await this.info())?.status ?? PENDING;
  }

  /** The stored meta (state, result, traceback, date_done ...), or null while PENDING. */
  async info(): Promise<ResultMeta | null> {
    if (this.#meta) return this.#meta;
    const meta = await (await this.source.backend()).get(this.id);
    if (meta && isReady(meta.status)) this.#meta = meta;
    return meta;
  }

  /** True once the task succeeded, failed or was revoked. */
  async ready(): Promise<boolean> {
    return isReady(await this.state());
  }

  /** True once the task succeeded. */
  async successful(): Promise<boolean> {
    return (await this.state()) === SUCCESS;
  }

  /** True once the task failed or was revoked. */
  async failed(): Promise<boolean> {
    return PROPAGATE_STATES.has(await this.state());
  }

  /**
   * Calls `callback` with this result once it is ready (at once if it already is). Inside the
   * callback, `await result` settles immediately.
   */
  onDone(callback: (result: AsyncResult<R>) => void): this {
    this.#waitReady({}).then(
      () => callback(this),
      () => undefined,
    );
    return this;
  }

  /** Revokes the task: it will not start; with `terminate`, a running one is signalled too. */
  async revoke(options: RevokeOptions = {}): Promise<void> {
    await this.source.revoke([this.id], options);
  }

  /** Deletes the stored result. */
  async forget(): Promise<void> {
    this.#meta = undefined;
    this.#ready = undefined;
    await (await this.source.backend()).forget(this.id);
  }

  /** Resolves with the meta once ready; shared by every waiter of this result. */
  #waitReady(options: { timeout?: number; signal?: AbortSignal }): Promise<ResultMeta> {
    this.#ready ??= this.#waitForever();
    this.#ready.catch(() => undefined);
    if (options.timeout === undefined && !options.signal) return this.#ready;
    return raceLimits(this.#ready, this.id, options);
  }

  async #waitForever(): Promise<ResultMeta> {
    await this.sent;
    const meta = await waitForReady(await this.source.backend(), this.id);
    this.#meta = meta;
    return meta;
  }
}

function raceLimits(ready: Promise<ResultMeta>, id: string, options: { timeout?: number; signal?: AbortSignal }): Promise<ResultMeta> {
  return new Promise<ResultMeta>((resolve, reject) => {
    const { timeout, signal } = options;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal?.reason);
    };
    const timer =
      timeout === undefined
        ? undefined
        : setTimeout(() => {
            cleanup();
            reject(new TimeoutError(`task ${id} was not ready within ${timeout}s`));
          }, timeout * 1000);
    signal?.addEventListener('abort', onAbort, { once: true });
    ready.then(
      (meta) => {
        cleanup();
        resolve(meta);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** The value types of a tuple of results. */
export type ResultValues<T extends readonly AsyncResult<unknown>[]> = {
  -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R : never;
};

/** The value types of a tuple of results, where a failure may stand in for a value. */
export type SettledValues<T extends readonly AsyncResult<unknown>[]> = {
  -readonly [K in keyof T]: T[K] extends AsyncResult<infer R> ? R | Error : never;
};

/**
 * Waits for every result and returns their values in order. The first failure rejects, unless
 * `returnExceptions` is set: then failures take their place in the array.
 */
export function gather<const T extends readonly AsyncResult<unknown>[]>(results: T, options?: { returnExceptions?: false; timeout?: number }): Promise<ResultValues<T>>;
export function gather<const T extends readonly AsyncResult<unknown>[]>(results: T, options: { returnExceptions: true; timeout?: number }): Promise<SettledValues<T>>;
export async function gather(
  results: readonly AsyncResult<unknown>[],
  options: { returnExceptions?: boolean; timeout?: number } = {},
): Promise<unknown[]> {
  const getOptions: GetOptions = { propagate: !options.returnExceptions };
  if (options.timeout !== undefined) getOptions.timeout = options.timeout;
  return Promise.all(results.map((result) => result.get(getOptions)));
}

/** When {@link wait} returns. */
export const FIRST_COMPLETED = 'FIRST_COMPLETED';
export const FIRST_EXCEPTION = 'FIRST_EXCEPTION';
export const ALL_COMPLETED = 'ALL_COMPLETED';
export type ReturnWhen = typeof FIRST_COMPLETED | typeof FIRST_EXCEPTION | typeof ALL_COMPLETED;

/** What {@link wait} returns: the results that are ready, and those that are not. */
export interface WaitOutcome<R> {
  done: AsyncResult<R>[];
  pending: AsyncResult<R>[];
}

/**
 * Waits until the first result is ready (FIRST_COMPLETED), the first one fails
 * (FIRST_EXCEPTION), or all are ready (ALL_COMPLETED, the default), or until `timeout` seconds
 * pass. Never rejects because a task failed.
 */
export function wait<R>(
  results: readonly AsyncResult<R>[],
  options: { returnWhen?: ReturnWhen; timeout?: number; signal?: AbortSignal } = {},
): Promise<WaitOutcome<R>> {
  const returnWhen = options.returnWhen ?? ALL_COMPLETED;
  const done = new Set<AsyncResult<R>>();
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ done: results.filter((r) => done.has(r)), pending: results.filter((r) => !done.has(r)) });
    };
    const onAbort = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      reject(options.signal?.reason);
    };
    const timer = options.timeout === undefined ? undefined : setTimeout(finish, options.timeout * 1000);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (results.length === 0) finish();
    for (const result of results) {
      result.get({ propagate: false }).then(
        (value) => {
          done.add(result);
          const failed = value instanceof Error;
          if (returnWhen === FIRST_COMPLETED || (returnWhen === FIRST_EXCEPTION && failed) || done.size === results.length) finish();
        },
        () => {
          done.add(result);
          if (returnWhen !== ALL_COMPLETED || done.size === results.length) finish();
        },
      );
    }
  });
}

/** One finished result, as {@link asCompleted} yields it. */
export type Completed<R> =
  | { result: AsyncResult<R>; ok: true; value: R }
  | { result: AsyncResult<R>; ok: false; error: Error };

/**
 * Yields each result as soon as it is ready, in completion order, with its value or error.
 * (Results are thenable, so they come wrapped: a generator would otherwise await them.) With
 * `timeout` (seconds, for the whole iteration), throws a TimeoutError when time runs out.
 */
export async function* asCompleted<R>(results: readonly AsyncResult<R>[], options: { timeout?: number } = {}): AsyncGenerator<Completed<R>> {
  const finished: Completed<R>[] = [];
  let wake: (() => void) | undefined;
  const arrive = (completed: Completed<R>): void => {
    finished.push(completed);
    wake?.();
  };
  for (const result of results) {
    result.get().then(
      (value) => arrive({ result, ok: true, value }),
      (error: unknown) => arrive({ result, ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
    );
  }
  const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout * 1000;
  for (let yielded = 0; yielded < results.length; yielded++) {
    while (finished.length === 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new TimeoutError(`${results.length - yielded} of ${results.length} results were not ready in time`);
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(remaining) ? setTimeout(resolve, remaining) : undefined;
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    yield finished.shift()!;
  }
}
