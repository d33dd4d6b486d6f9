/**
 * What a worker does for a workflow once a task has ended, as Celery's worker does it:
 *
 * - on success, it sends the callbacks (`embed.callbacks`) and the next chain step (popped off
 *   `embed.chain`, the rest riding along), all with the result as first argument;
 * - on failure, it marks the rest of the chain FAILURE (so a waiter on the chain's result does
 *   not hang) and sends the error callbacks with the failed task's id;
 * - for a chord header member, in any ready state, it records the member with the backend's
 *   join, and the member that ends the header sends the body with the results in order, or, if a
 *   member failed or was revoked, fails the body with a {@link ChordError} and fires its error
 *   callbacks once.
 *
 * Revocation also marks the rest of a chain REVOKED (Celery leaves it PENDING for ever).
 */
import { noChordJoin, type ChordPart, type ResultBackend, type ResultTuple } from '../backends/backend.js';
import { ChordError, ConfigurationError } from '../errors.js';
import { serializeException, type ExceptionDict } from '../protocol/exceptions.js';
import type { SignatureDict, TaskMessage } from '../protocol/message.js';
import { pythonRepr } from '../protocol/repr.js';
import type { AnyResult } from '../result.js';
import { FAILURE, PROPAGATE_STATES, type TaskState } from '../states.js';
import { buildResultMeta, type MetaOrigin } from '../worker/result-meta.js';
import { isDict, signaturesIn, stringIn, type WireOptions } from './options.js';
import type { AnySignature } from './signature.js';

/** What continuing a workflow needs from the app. */
export interface ContinuationHost {
  applySignature(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult;
  signatureFromDict(dict: SignatureDict): AnySignature;
}

/** The fields of a request that continuing its workflow reads. */
export type WorkflowRequest = Pick<TaskMessage, 'id' | 'task' | 'rootId' | 'group' | 'groupIndex' | 'embed' | 'priority'>;

/** Continues workflows after their tasks end; one per worker. */
export class Continuation {
  constructor(
    private readonly host: ContinuationHost,
    private readonly backend: ResultBackend,
    private readonly origin: MetaOrigin,
  ) {}

  /**
   * Sends what follows a successful task: its callbacks, then its chain's next step. Resolves
   * with their results as Celery records them in the task's `children`, once they are sent.
   */
  async afterSuccess(request: WorkflowRequest, value: unknown): Promise<ResultTuple[]> {
    const { callbacks, chain } = request.embed;
    if (!callbacks && !chain) return [];
    const options: WireOptions = { parent_id: request.id, root_id: request.rootId };
    const steps: Array<{ signature: SignatureDict; options: WireOptions }> = (callbacks ?? []).map((callback) => ({ signature: callback, options }));
    if (chain && chain.length > 0) steps.push({ signature: chain[chain.length - 1]!, options: { ...options, chain: chain.slice(0, -1) } });
    const sent = await Promise.all(steps.map((step) => this.#send(step.signature, [value], step.options)));
    return sent.filter((tuple): tuple is ResultTuple => tuple !== null);
  }

  /**
   * Sends a step; resolves with its result tuple once sent (not the handle: a handle is
   * thenable, so an async function returning it would wait for the step's result). A step that can never be sent as asked
   * (a chord on a backend without a join) ends FAILURE with the reason, with the rest of its
   * chain, instead of failing the task that finished: retrying that would not help. Broker
   * errors still reject, so the finished task is handed back and its workflow continued later.
   */
  async #send(step: SignatureDict, args: readonly unknown[], options: WireOptions): Promise<ResultTuple | null> {
    try {
      const result = this.#apply(step, args, options);
      await whenSent(result);
      return result.asTuple();
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      const exception = serializeException(error);
      await this.#markStep(step, FAILURE, exception, null);
      for (const later of signaturesIn(options['chain'])) await this.#markStep(later, FAILURE, exception, null);
      return null;
    }
  }

  /**
   * After a task ended FAILURE or REVOKED (its own state already stored): marks the rest of its
   * chain with the same state, and, for FAILURE, sends its error callbacks.
   */
  async afterFailure(request: WorkflowRequest, state: TaskState, error: ExceptionDict, traceback: string | null): Promise<void> {
    for (const step of request.embed.chain ?? []) await this.#markStep(step, state, error, traceback);
    if (state === FAILURE) await this.#sendErrbacks(request.id, request.rootId, request.embed.errbacks ?? []);
  }

  /**
   * Records a chord header member's end with the join; the call that ends the header runs the
   * body, or fails it. Does nothing for a task that is not a chord member.
   */
  async chordPart(request: Pick<TaskMessage, 'id' | 'group' | 'groupIndex'> & { chord: SignatureDict | null }, state: TaskState, result: unknown): Promise<void> {
    const body = request.chord;
    if (!body || !request.group) return;
    const join = this.backend.chords;
    if (!join) {
      await this.failBody(body, new ChordError(noChordJoin(this.backend)));
      return;
    }
    const parts = await join.addPart({ groupId: request.group, taskId: request.id, groupIndex: request.groupIndex, state, result });
    if (parts) await this.completeChord(body, parts);
  }

  /** Sends a chord's body with its header's results in order, or fails it if any member failed. */
  async completeChord(body: SignatureDict, parts: readonly ChordPart[]): Promise<void> {
    const failed = parts.find((part) => PROPAGATE_STATES.has(part.state));
    if (failed) {
      await this.failBody(body, new ChordError(`Dependency ${failed.taskId} raised ${describeFailure(failed.result)}`));
      return;
    }
    try {
      await whenSent(this.#apply(body, [parts.map((part) => part.result)], {}));
    } catch (error) {
      await this.failBody(body, new ChordError(`Callback error: ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  /**
   * Ends a chord's body FAILURE with `error` without running it: stores the failure under the
   * body's id, marks the rest of its chain, and sends its error callbacks.
   */
  async failBody(body: SignatureDict, error: ChordError): Promise<void> {
    const options = body.options ?? {};
    const id = stringIn(options['task_id']);
    const exception = serializeException(error);
    if (id) await this.#storeFailure(id, body, FAILURE, exception, null);
    const request: WorkflowRequest = {
      id: id ?? '',
      task: body.task,
      rootId: stringIn(options['root_id']) ?? id ?? '',
      group: stringIn(options['group_id']) ?? null,
      groupIndex: typeof options['group_index'] === 'number' ? options['group_index'] : null,
      embed: { callbacks: null, errbacks: signaturesIn(options['link_error']), chain: signaturesIn(options['chain']), chord: null },
      priority: null,
    };
    await this.afterFailure(request, FAILURE, exception, null);
    // A body that is itself a member of an outer chord counts toward it as failed.
    if (id && isDict(options['chord'])) await this.chordPart({ id, group: request.group, groupIndex: request.groupIndex, chord: options['chord'] as SignatureDict }, FAILURE, exception);
  }

  /** Marks a chain step that will not run: its task, a chord's body, or a group's members. */
  async #markStep(step: SignatureDict, state: TaskState, error: ExceptionDict, traceback: string | null): Promise<void> {
    const options = step.options ?? {};
    if (step.subtask_type === 'group') {
      for (const member of signaturesIn(step.kwargs?.['tasks'])) await this.#markStep(member, state, error, traceback);
      return;
    }
    const body = step.subtask_type === 'chord' && isDict(step.kwargs?.['body']) ? (step.kwargs['body'] as SignatureDict) : undefined;
    const id = stringIn(options['task_id']) ?? (body ? stringIn(body.options?.['task_id']) : undefined);
    if (id) await this.#storeFailure(id, body ?? step, state, error, traceback);
    if (id && isDict(options['chord'])) {
      const group = stringIn(options['group_id']) ?? null;
      const groupIndex = typeof options['group_index'] === 'number' ? options['group_index'] : null;
      await this.chordPart({ id, group, groupIndex, chord: options['chord'] as SignatureDict }, state, error);
    }
  }

  async #storeFailure(id: string, signature: SignatureDict, state: TaskState, error: ExceptionDict, traceback: string | null): Promise<void> {
    const group = stringIn(signature.options?.['group_id']) ?? null;
    const meta = buildResultMeta({ id, task: signature.task, retries: 0, group, parentId: null }, state, error, traceback, this.origin);
    await this.backend.store(meta, { replyTo: stringIn(signature.options?.['reply_to']) ?? null });
  }

  /** Celery sends error callbacks with the failed task's id as their first argument. */
  async #sendErrbacks(taskId: string, rootId: string, errbacks: readonly SignatureDict[]): Promise<void> {
    const options: WireOptions = { parent_id: taskId, root_id: rootId || taskId };
    await Promise.all(errbacks.map((errback) => this.#send(errback, [taskId], options)));
  }

  #apply(dict: SignatureDict, args: readonly unknown[], options: WireOptions): AnyResult {
    return this.host.applySignature(this.host.signatureFromDict(dict), args, {}, options);
  }
}

/** Resolves once a result's message (or its group's messages) went out; rejects if not. */
function whenSent(result: AnyResult): Promise<void> {
  return 'results' in result ? Promise.all(result.results.map((member) => member.sent)).then(() => undefined) : result.sent;
}

/** How Celery words a failed member in a ChordError: `ValueError('bad')`. */
function describeFailure(result: unknown): string {
  if (typeof result === 'object' && result !== null && typeof (result as ExceptionDict).exc_type === 'string') {
    const { exc_type, exc_message } = result as ExceptionDict;
    const args = Array.isArray(exc_message) ? exc_message : [exc_message];
    return `${exc_type}(${args.map((arg) => pythonRepr(arg)).join(', ')})`;
  }
  return pythonRepr(result);
}
