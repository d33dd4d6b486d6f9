/**
 * Futures over distributed tasks: {@link AsyncResult} (await it, `get` with timeout and
 * signal, done-callbacks, the workflow around it), {@link GroupResult} (a group's results in
 * order), and {@link gather}, {@link wait} and {@link asCompleted} over many.
 */
import { waitForReady, type GroupTuple, type ResultBackend, type ResultMeta, type ResultTuple } from './backends/backend.js';
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
  /**
   * Also revoke what comes before this result in its workflow (`parent`, recursively): the
   * earlier steps of a chain, the header of a chord. Default false.
   */
  parents?: boolean;
}

/** Any result handle: one task's, or a group's. */
export type AnyResult = AsyncResult<unknown> | GroupResult<readonly unknown[]>;

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
  /**
   * What ran before this task in its workflow, when this handle came from sending one: the
   * previous step of a chain, the header of a chord. Null otherwise.
   */
  parent: AnyResult | null = null;

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

  /**
   * Revokes the task: it will not start; with `terminate`, a running one is signalled too; with
   * `parents`, so is every step before it in its workflow.
   */
  async revoke(options: RevokeOptions = {}): Promise<void> {
    await this.source.revoke([this.id, ...(options.parents ? idsOf(this.parent) : [])], options);
  }

  /** Deletes the stored result, and those of the steps before it in its workflow (as Celery does). */
  async forget(): Promise<void> {
    this.#meta = undefined;
    this.#ready = undefined;
    await this.parent?.forget();
    await (await this.source.backend()).forget(this.id);
  }

  /**
   * The tasks this one sent while it ran, and the callbacks and next chain step it started,
   * as its stored result lists them (empty until it is ready).
   */
  async children(): Promise<AnyResult[]> {
    const meta = await this.info();
    return (meta?.children ?? []).flatMap((tuple) => {
      const child = resultFromTuple(tuple, this.source);
      return child ? [child] : [];
    });
  }

  /**
   * Walks the workflow below this task depth-first, waiting for each result: yields this
   * task's `[result, value]`, then each child's, and theirs (Celery's `collect`). A failure
   * rejects the iteration, unless `propagate` is false.
   */
  async *collect(options: GetOptions = {}): AsyncGenerator<[AsyncResult<unknown>, unknown]> {
    yield [this, await this.get(options)];
    for (const child of await this.children()) {
      const members = child instanceof GroupResult ? child.results : [child];
      for (const member of members) yield* member.collect(options);
    }
  }

  /** Celery's tuple for this result: `[[id, parent], null]`. */
  asTuple(): ResultTuple {
    return [[this.id, this.parent?.asTuple() ?? null], null];
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

/**
 * A future of a group's results, in the order of its members. `await group` resolves with the
 * list once all are ready, rejecting on the first failure (`get({ propagate: false })` puts
 * errors in their places instead).
 */
export class GroupResult<R extends readonly unknown[] = unknown[]> implements PromiseLike<R> {
  /** What ran before the group in its workflow, if anything. */
  parent: AnyResult | null = null;

  constructor(
    /** The group id (the `group` header of each member). */
    readonly id: string,
    /** One result per member, in order. */
    readonly results: readonly AsyncResult<unknown>[],
    private readonly source: ResultSource,
  ) {}

  /** Waits for every member: the ordered values, or a rejection with the first failure. */
  then<T1 = R, T2 = never>(
    onFulfilled?: ((value: R) => T1 | PromiseLike<T1>) | null,
    onRejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.get().then(onFulfilled, onRejected);
  }

  /**
   * Waits for every member (within `timeout` seconds for the whole group, if given). With
   * `propagate: false` (or {@link gather}'s `returnExceptions: true`), failures stand in the
   * list as errors rather than rejecting.
   */
  async get(options: GetOptions & { returnExceptions?: boolean } = {}): Promise<R> {
    const { returnExceptions, ...rest } = options;
    const memberOptions: GetOptions = returnExceptions ? { ...rest, propagate: false } : rest;
    // One timeout for the whole group: every member starts waiting now.
    return (await Promise.all(this.results.map((result) => result.get(memberOptions)))) as unknown as R;
  }

  /** Each member's current state, in order. */
  async states(): Promise<TaskState[]> {
    return Promise.all(this.results.map((result) => result.state()));
  }

  /** How many members have succeeded (Celery's `completed_count`). */
  async completedCount(): Promise<number> {
    return (await this.states()).filter((state) => state === SUCCESS).length;
  }

  /** True once every member is ready. */
  async ready(): Promise<boolean> {
    return (await this.states()).every(isReady);
  }

  /** True once every member succeeded. */
  async successful(): Promise<boolean> {
    return (await this.states()).every((state) => state === SUCCESS);
  }

  /** True once any member failed or was revoked. */
  async failed(): Promise<boolean> {
    return (await this.states()).some((state) => PROPAGATE_STATES.has(state));
  }

  /** Calls `callback` once every member is ready. */
  onDone(callback: (result: GroupResult<R>) => void): this {
    this.get({ propagate: false }).then(
      () => callback(this),
      () => undefined,
    );
    return this;
  }

  /** Revokes every member (and, with `parents`, what ran before the group). */
  async revoke(options: RevokeOptions = {}): Promise<void> {
    await this.source.revoke([...this.results.map((result) => result.id), ...(options.parents ? idsOf(this.parent) : [])], options);
  }

  /** Deletes every member's result and the saved group. */
  async forget(): Promise<void> {
    const backend = await this.source.backend();
    await Promise.all([...this.results.map((result) => result.forget()), backend.forgetGroup(this.id)]);
  }

  /**
   * Stores the group so {@link restoreGroup} can rebuild it by id, in Celery's format
   * (`celery-taskset-meta-<id>` on Redis), which Python's `GroupResult.restore` reads too.
   */
  async save(): Promise<void> {
    await (await this.source.backend()).saveGroup(this.id, this.asTuple());
  }

  /** Celery's tuple: `[[id, parent], [member tuples]]`. */
  asTuple(): GroupTuple {
    return [[this.id, this.parent?.asTuple() ?? null], this.results.map((result) => result.asTuple())];
  }
}

/**
 * Rebuilds a saved group (see {@link GroupResult.save}): `{ group }`, or null when none is
 * stored. (The handle comes wrapped: it is thenable, so a promise of it would resolve to the
 * group's values.)
 */
export async function restoreGroup<R extends readonly unknown[] = unknown[]>(source: ResultSource, groupId: string): Promise<{ group: GroupResult<R> } | null> {
  const tuple = await (await source.backend()).restoreGroup(groupId);
  const result = tuple ? resultFromTuple(tuple, source) : null;
  return result instanceof GroupResult ? { group: result as GroupResult<R> } : null;
}

/** A result handle from Celery's tuple form; null for something that is not one. */
export function resultFromTuple(tuple: unknown, source: ResultSource): AnyResult | null {
  if (!Array.isArray(tuple) || !Array.isArray(tuple[0]) || typeof tuple[0][0] !== 'string') return null;
  const [[id, parentTuple], members] = tuple as [[string, unknown], unknown];
  const parent = parentTuple ? resultFromTuple(parentTuple, source) : null;
  let result: AnyResult;
  if (Array.isArray(members)) {
    const results = members.map((member) => resultFromTuple(member, source)).filter((member): member is AsyncResult<unknown> => member instanceof AsyncResult);
    result = new GroupResult(id, results, source);
  } else {
    result = new AsyncResult(id, source);
  }
  result.parent = parent;
  return result;
}

/** The ids of a result and everything before it. */
function idsOf(result: AnyResult | null): string[] {
  if (!result) return [];
  const own = result instanceof GroupResult ? result.results.map((member) => member.id) : [result.id];
  return [...own, ...idsOf(result.parent)];
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
