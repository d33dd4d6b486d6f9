/**
 * The result backend port: store a task's state, read it, forget it, and hear when it changes.
 * Stored values are Celery's result meta, so Python clients read what TypeScript workers store.
 */
import { isReady, type TaskState } from '../states.js';

/** Celery's result meta, as stored (field names are Celery's). */
export interface ResultMeta {
  task_id: string;
  status: TaskState;
  /** The return value; an exception dict in RETRY/FAILURE/REVOKED; progress info in PROGRESS. */
  result: unknown;
  traceback: string | null;
  children: unknown[];
  /** ISO-8601 in ready states, otherwise null. */
  date_done: string | null;
  group_id?: string | null;
  parent_id?: string | null;
  name?: string | null;
  args?: unknown[] | null;
  kwargs?: Record<string, unknown> | null;
  worker?: string | null;
  retries?: number | null;
  queue?: string | null;
}

/** Stops a watch. */
export type Unwatch = () => void;

/** What a backend may need to know of the request whose state it stores. */
export interface StoreContext {
  /** The request's `reply_to` property (where the `rpc://` backend sends the state). */
  replyTo: string | null;
}

/** A result backend. */
export interface ResultBackend {
  readonly displayUrl: string;
  /**
   * True for backends that send each state to the task's `reply_to` (`rpc://`): a producer
   * connects such a backend before sending, so its reply queue exists when the first state comes.
   */
  readonly repliesToSender?: boolean;
  /** Opens the connection; rejects with a {@link ConnectionError} that says what failed. */
  connect(): Promise<void>;
  /**
   * Stores a task's state. A stored SUCCESS is never overwritten (a duplicate run of an
   * at-least-once task cannot replace it). Results expire after the backend's `expires`.
   */
  store(meta: ResultMeta, context?: StoreContext): Promise<void>;
  /** The stored meta, or null when nothing is stored (Celery's PENDING). */
  get(taskId: string): Promise<ResultMeta | null>;
  /** Deletes what is stored for a task. */
  forget(taskId: string): Promise<void>;
  /**
   * Calls `onChange` with the new meta each time a task's stored state changes, from now on
   * (callers read the current state with `get` after watching, to close the race). A backend
   * whose watch takes effect later than the call (a subscription on another connection) reads
   * the state itself once it does.
   */
  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch;
  /** Deletes expired results; returns how many. Backends that expire keys themselves return 0. */
  cleanup(): Promise<number>;
  close(): Promise<void>;
  /**
   * Stores a group's result tuple (Celery's `GroupResult.save()`): on key-value stores the key
   * `celery-taskset-meta-<groupId>` holding `{"result": tuple}`.
   */
  saveGroup(groupId: string, tuple: GroupTuple): Promise<void>;
  /** The tuple saved for a group, or null. */
  restoreGroup(groupId: string): Promise<GroupTuple | null>;
  /** Deletes a saved group. */
  forgetGroup(groupId: string): Promise<void>;
  /**
   * The chord join, where the backend has one (Celery's `on_chord_part_return`). Backends
   * without it (`rpc://`) refuse chords, as Celery does.
   */
  readonly chords?: ChordJoin;
}

/** A result as Celery writes it in tuples: `[[id, parent], null]` or a group `[[gid, parent], [members]]`. */
export type ResultTuple = [[string, ResultTuple | null], ResultTuple[] | null];
/** A saved group's tuple: `[[groupId, parent], [member tuples]]`. */
export type GroupTuple = [[string, ResultTuple | null], ResultTuple[]];

/** One chord header member's end, as the join records it. */
export interface ChordPart {
  groupId: string;
  taskId: string;
  /** Position in the header; orders the results handed to the body. Null sorts last. */
  groupIndex: number | null;
  /** The member's ready state (SUCCESS, FAILURE, REVOKED ...). */
  state: TaskState;
  /** Its return value, or the exception dict for FAILURE/REVOKED. */
  result: unknown;
}

/**
 * Counting the members of a chord's header as they end, so exactly one of them, on any worker
 * (Python or TypeScript), sends the body.
 */
export interface ChordJoin {
  /** Records how many members the header has; called before the first member is sent. */
  setSize(groupId: string, size: number): Promise<void>;
  /**
   * Records one member's end. Resolves with every member's part, in header order, for exactly
   * one call: the one that ends the last member. Every other call resolves with null. The
   * join's state is deleted once it completes. A part recorded twice (a redelivered member)
   * counts once where the backend can tell.
   */
  addPart(part: ChordPart): Promise<ChordPart[] | null>;
}

/** Why a backend cannot join chords, in the words every refusal uses. */
export function noChordJoin(backend: ResultBackend): string {
  return `the result backend ${backend.displayUrl} cannot join chords (Celery's rpc backend cannot either); use a redis:// or sqlite:// result backend`;
}

/** Default lifetime of a stored result: one day, as in Celery. */
export const DEFAULT_RESULT_EXPIRES_SECONDS = 86_400;

/**
 * Resolves with a task's meta once it is in a ready state. Built on `watch` + `get` only, so
 * every backend waits the same way; rejects with the signal's reason when aborted.
 */
export function waitForReady(backend: ResultBackend, taskId: string, signal?: AbortSignal): Promise<ResultMeta> {
  return new Promise<ResultMeta>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let settled = false;
    const finish = (meta: ResultMeta | null, error?: unknown): void => {
      if (settled) return;
      if (meta && !isReady(meta.status)) return;
      if (!meta && error === undefined) return;
      settled = true;
      unwatch();
      signal?.removeEventListener('abort', onAbort);
      if (meta) resolve(meta);
      else reject(error);
    };
    const onAbort = (): void => finish(null, signal?.reason);
    const unwatch = backend.watch(taskId, (meta) => finish(meta));
    signal?.addEventListener('abort', onAbort, { once: true });
    backend.get(taskId).then((meta) => finish(meta), (error: unknown) => finish(null, error));
  });
}
