/**
 * Applying signatures: turning a chain, group or chord into the task messages Celery would send
 * for it. Ids are assigned up front ("frozen"), so the caller gets every result handle at once;
 * only a chain's first step and a chord's header go out now, and workers send the rest.
 *
 * - chain: the first step is sent with the rest in `embed.chain` (last step first); a group
 *   followed by another step becomes a chord, as in Celery.
 * - group: members go out in one broker batch, with `group` and `group_index` headers.
 * - chord: the header's size is recorded with the backend's join, then the header members go
 *   out with the (frozen) body in `embed.chord`; an empty header sends the body at once.
 */
import { randomUUID } from 'node:crypto';
import type { ChordJoin } from '../backends/backend.js';
import { ConfigurationError } from '../errors.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AnyResult, AsyncResult, GroupResult } from '../result.js';
import { fromWireOptions, signaturesIn, stringIn, type SendOptions, type WireOptions } from './options.js';
import { Chain, Chord, Group, mergeCall, type AnySignature } from './signature.js';

/** One task message to send. */
export interface TaskCall {
  name: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: SendOptions;
}

/** What applying signatures needs from the app. */
export interface Dispatcher {
  /** Publishes calls in one broker batch once `before` has settled; resolves when they are sent. */
  send(calls: readonly TaskCall[], before?: Promise<unknown>): Promise<void>;
  /** The result backend's chord join; rejects with a clear error when it has none. */
  chordJoin(): Promise<ChordJoin>;
  /** A handle for a task id whose message goes out with `sent`. */
  asyncResult(id: string, sent: Promise<void>): AsyncResult<unknown>;
  /** A handle for a group. */
  groupResult(id: string, results: readonly AsyncResult<unknown>[]): GroupResult<unknown[]>;
  /** The app's reply address, frozen into each step so an `rpc://` backend's states reach it. */
  readonly replyTo: string;
}

/** Where frozen ids go: group, chord and workflow membership. */
interface Placement {
  id?: string | undefined;
  rootId?: string | undefined;
  parentId?: string | undefined;
  groupId?: string | undefined;
  groupIndex?: number | undefined;
  chord?: SignatureDict | undefined;
}

/** A signature with its ids assigned, and the handle for its result. */
interface Frozen {
  signature: AnySignature;
  result: AnyResult;
}

/** Applies signatures through a dispatcher. One instance serves one top-level call. */
export class Applier {
  /** Settles once the call's first message is sent: what every frozen handle waits on. */
  readonly #sent: Promise<void>;
  #settleSent!: (sending: Promise<void>) => void;

  constructor(private readonly dispatcher: Dispatcher) {
    this.#sent = new Promise<void>((resolve) => {
      this.#settleSent = resolve as (sending: Promise<void>) => void;
    });
    this.#sent.catch(() => undefined); // observed through each handle's sent / get()
  }

  /** Sends `signature` with `args` in front of its own, `kwargs` and `options` merged over its own. */
  apply(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult {
    try {
      return this.#apply(signature, args, kwargs, options);
    } catch (error) {
      this.#settleSent(Promise.reject(error)); // nothing was sent: the handles made so far say so
      throw error;
    }
  }

  #apply(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult {
    if (signature instanceof Chain) return this.#applyChain(signature, args, kwargs, options);
    if (signature instanceof Group) return this.#applyGroup(signature, args, kwargs, options);
    if (signature instanceof Chord) return this.#applyChord(signature, args, kwargs, options);
    const call = callOf(signature, args, kwargs, options);
    call.options.taskId ??= randomUUID();
    this.#send([call]);
    return this.dispatcher.asyncResult(call.options.taskId, this.#sent);
  }

  /** Publishes calls; the first publish of this applier is what its handles wait on. */
  #send(calls: readonly TaskCall[], before?: Promise<unknown>): void {
    this.#settleSent(this.dispatcher.send(calls, before));
  }

  #applyChain(chain: Chain, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult {
    const { task_id, group_id, group_index, chord, link, link_error, root_id, parent_id, ...rest } = { ...chain.options, ...options };
    const partial = chain.immutable ? chain.args : [...args, ...chain.args];
    const steps = this.#prepareSteps(chain.tasks, partial, kwargs, {
      id: stringIn(task_id),
      rootId: stringIn(root_id),
      parentId: stringIn(parent_id),
      groupId: stringIn(group_id),
      groupIndex: typeof group_index === 'number' ? group_index : undefined,
      chord: chord as SignatureDict | undefined,
    }, link_error);
    if (steps.length === 0) throw new ConfigurationError('cannot apply an empty chain');
    if (link) steps[0]!.signature = steps[0]!.signature.withOptions({ link: appendTo(steps[0]!.signature.options['link'], signaturesIn(link)) });
    const first = steps.pop()!;
    const remaining = steps.map((step) => step.signature.toDict());
    const inherited = Array.isArray(rest['chain']) ? (rest['chain'] as SignatureDict[]) : [];
    const sent = this.#apply(first.signature, [], {}, { ...rest, chain: [...inherited, ...remaining] });
    return steps.length === 0 ? sent : steps[0]!.result;
  }

  /**
   * Assigns ids to a chain's steps, last first (the order `embed.chain` wants), splicing nested
   * chains and upgrading a group followed by a step into a chord. Each step's handle gets the
   * one before it as `parent`.
   */
  #prepareSteps(tasks: readonly AnySignature[], args: readonly unknown[], kwargs: Record<string, unknown>, last: Placement, linkError: unknown): Frozen[] {
    const pending = [...tasks];
    const prepared: Frozen[] = [];
    const errbacks = linkError ? signaturesIn(linkError) : [];
    let previous: Frozen | undefined;
    while (pending.length > 0) {
      let task = unrollGroup(pending.pop()!);
      const isFirst = pending.length === 0;
      if (isFirst) task = task.clone(args, kwargs);
      if (task instanceof Chain) {
        pending.push(...task.tasks);
        continue;
      }
      if (task instanceof Group && previous) {
        prepared.pop();
        const body = previous.signature;
        task = new Chord(task.tasks, body, {}, task.boundHost);
      }
      const placement: Placement = prepared.length === 0 ? last : { rootId: last.rootId };
      const frozen = this.#freeze(task, placement);
      if (errbacks.length > 0) frozen.signature = frozen.signature.withOptions({ link_error: appendTo(frozen.signature.options['link_error'], errbacks) });
      if (previous && previous.result.parent === null) previous.result.parent = frozen.result;
      prepared.push(frozen);
      // A chord's handle is its body's; the step before it leads into its header.
      previous = { signature: frozen.signature, result: rootOf(frozen.result) };
    }
    return prepared;
  }

  /** Assigns ids to a signature (and to everything inside it) without sending it. */
  #freeze(signature: AnySignature, placement: Placement): Frozen {
    if (signature instanceof Chain) {
      const steps = this.#prepareSteps(signature.tasks, signature.args, signature.kwargs as Record<string, unknown>, placement, signature.options['link_error']);
      if (steps.length === 0) throw new ConfigurationError('cannot freeze an empty chain');
      const frozenChain = new Chain([...steps].reverse().map((step) => step.signature), signature.options, signature.boundHost);
      return { signature: frozenChain, result: steps[0]!.result };
    }
    if (signature instanceof Group) {
      const groupId = stringIn(signature.options['task_id']) ?? placement.groupId ?? randomUUID();
      const members = flattenGroup(signature.tasks).map((member, index) =>
        this.#freeze(member, { rootId: placement.rootId, parentId: placement.parentId, groupId, groupIndex: index, chord: placement.chord }),
      );
      const frozenGroup = new Group(members.map((member) => member.signature), { ...signature.options, task_id: groupId }, signature.boundHost);
      return { signature: frozenGroup, result: this.dispatcher.groupResult(groupId, members.map((member) => member.result as AsyncResult<unknown>)) };
    }
    if (signature instanceof Chord) {
      const body = this.#freeze(signature.body, placement);
      const groupId = signature.headerId ?? randomUUID();
      // Members get their group id only when the chord is applied, as in Celery: a Python
      // worker applying this chord picks the group id afresh.
      const header = signature.header.map((member, index) =>
        this.#freeze(member, { rootId: placement.rootId, parentId: placement.parentId, groupIndex: index, chord: body.signature.toDict() }),
      );
      rootOf(body.result).parent = this.dispatcher.groupResult(groupId, header.map((member) => member.result as AsyncResult<unknown>));
      // Like Celery, the chord carries its body's id: whoever marks a failed chain's later
      // steps finds the body under it.
      const options = { ...signature.options, task_id: body.result.id };
      const frozenChord = new Chord(header.map((member) => member.signature), body.signature, options, signature.boundHost, groupId);
      return { signature: frozenChord.withCall(signature.args, signature.immutable), result: body.result };
    }
    const options: WireOptions = { ...signature.options };
    options['task_id'] ??= placement.id ?? randomUUID();
    options['reply_to'] ??= this.dispatcher.replyTo;
    if (placement.rootId) options['root_id'] = placement.rootId;
    if (placement.parentId) options['parent_id'] = placement.parentId;
    if (placement.groupId && options['group_id'] === undefined) options['group_id'] = placement.groupId;
    if (placement.chord) options['chord'] = placement.chord;
    if (placement.groupIndex !== undefined) options['group_index'] = placement.groupIndex;
    return { signature: signature.withOptions(options), result: this.dispatcher.asyncResult(options['task_id'] as string, this.#sent) };
  }

  #applyGroup(group: Group, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): GroupResult<unknown[]> {
    const { link, link_error, task_id, ...rest } = { ...group.options, ...options };
    if (link) throw new ConfigurationError('a group cannot have a success callback (link): use a chord, whose body gets every result');
    if (link_error) throw new ConfigurationError('a group cannot have an error callback (link_error): set it on its members');
    const groupId = stringIn(task_id) ?? randomUUID();
    const partial = group.immutable ? [] : args;
    const calls: TaskCall[] = [];
    const results: AsyncResult<unknown>[] = [];
    flattenGroup(group.tasks).forEach((member, index) => {
      const placement: Placement = { rootId: stringIn(rest['root_id']), groupId, groupIndex: index, chord: rest['chord'] as SignatureDict | undefined };
      const frozen = this.#freeze(member.clone(partial, kwargs), placement);
      if (isContainer(frozen.signature)) {
        this.#apply(frozen.signature, [], {}, withoutPlacement(rest));
      } else {
        calls.push(callOf(frozen.signature, [], {}, withoutPlacement(rest)));
      }
      results.push(frozen.result as AsyncResult<unknown>);
    });
    if (calls.length > 0) this.#send(calls);
    else if (results.length === 0) this.#settleSent(Promise.resolve());
    return this.dispatcher.groupResult(groupId, results);
  }

  #applyChord(chord: Chord, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult {
    const merged: WireOptions = { ...chord.options, ...options };
    const { task_id: bodyId, chain, chord: outerChord, group_id: outerGroup, group_index: outerIndex, ...callOptions } = merged;
    // Call options go onto the body (a chain's remaining steps among them), as in Celery.
    const body = this.#freeze(chord.body.withOptions(chain ? { ...callOptions, chain } : callOptions), {
      id: stringIn(bodyId),
      rootId: stringIn(merged['root_id']),
      groupId: stringIn(outerGroup),
      groupIndex: typeof outerIndex === 'number' ? outerIndex : undefined,
      chord: outerChord as SignatureDict | undefined,
    });
    if (chord.header.length === 0) {
      this.#apply(body.signature, [[]], {}, {});
      return body.result;
    }
    const groupId = chord.headerId ?? randomUUID();
    const header = this.#freeze(new Group(chord.header, { task_id: groupId }, chord.boundHost), {
      rootId: stringIn(merged['root_id']),
      groupId,
      chord: body.signature.toDict(),
    });
    const joined = this.dispatcher.chordJoin().then((join) => join.setSize(groupId, chordSize(header.signature)));
    const partial = chord.immutable ? chord.args : [...args, ...chord.args];
    const memberOptions = withoutPlacement(callOptions);
    const calls: TaskCall[] = [];
    for (const member of (header.signature as Group).tasks) {
      const prepared = member.clone(partial, kwargs);
      if (isContainer(prepared)) {
        // A member that is itself a workflow goes out on its own, once the size is recorded.
        joined.then(() => this.#apply(prepared, [], {}, memberOptions)).catch(() => undefined);
      } else {
        calls.push(callOf(prepared, [], {}, memberOptions));
      }
    }
    this.#send(calls, joined);
    rootOf(body.result).parent = header.result;
    return body.result;
  }
}

function isContainer(signature: AnySignature): boolean {
  return signature instanceof Chain || signature instanceof Chord || signature instanceof Group;
}

/** The message for a task signature called with `args`, `kwargs` and `options`. */
function callOf(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): TaskCall {
  const merged = mergeCall(signature, args, kwargs, options);
  return { name: signature.task, args: [...merged.args], kwargs: { ...merged.kwargs }, options: fromWireOptions(merged.options) };
}

/**
 * How many header members a chord waits for (Celery's `_descend`): a task counts one, a group
 * its members, a chain its last step, a chord its body.
 */
export function chordSize(signature: AnySignature): number {
  if (signature instanceof Group) return signature.tasks.reduce((total, task) => total + chordSize(task), 0);
  if (signature instanceof Chain) {
    for (let i = signature.tasks.length - 1; i >= 0; i--) {
      const size = chordSize(signature.tasks[i]!);
      if (size > 0) return size;
    }
    return 0;
  }
  if (signature instanceof Chord) return chordSize(signature.body);
  return 1;
}

/** Members of nested groups run as members of the outer one. */
function flattenGroup(tasks: readonly AnySignature[]): AnySignature[] {
  return tasks.flatMap((task) => (task instanceof Group ? flattenGroup(task.tasks) : [task]));
}

/** A group of one member is that member. */
function unrollGroup(signature: AnySignature): AnySignature {
  return signature instanceof Group && signature.tasks.length === 1 ? signature.tasks[0]! : signature;
}

/** The first handle of a workflow's result: the one without a parent. */
function rootOf(result: AnyResult): AnyResult {
  let node = result;
  const seen = new Set<AnyResult>();
  while (node.parent && !seen.has(node)) {
    seen.add(node);
    node = node.parent;
  }
  return node;
}

/** Options for members: what places a task in a group or chord is set per member instead. */
function withoutPlacement(options: WireOptions): WireOptions {
  const { task_id, group_id, group_index, chord, ...rest } = options;
  return rest;
}

function appendTo(current: unknown, more: SignatureDict[]): SignatureDict[] {
  return [...signaturesIn(current), ...more];
}

