/**
 * Signatures: a task call described but not yet made (name, arguments, options), which can be
 * sent later, handed to another task as a callback, or composed into workflows: {@link chain},
 * {@link group} and {@link chord}. They serialize exactly as Celery's signature dicts, so a
 * workflow started in TypeScript can continue on a Python worker and the other way round.
 *
 * Types follow the arguments: a signature knows which leading arguments it still lacks (the
 * parent's result fills the first one in a chain) and what it returns, so a chain whose step
 * cannot take the previous step's result does not compile.
 */
import { ConfigurationError } from '../errors.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AnyResult, AsyncResult, GroupResult } from '../result.js';
import type { ApplyOptions } from '../task.js';
import { signatureDictOf, toWireOptions, type SignatureLike, type WireOptions } from './options.js';

declare const ignoresParent: unique symbol;

/** The missing arguments of a signature that ignores its parent's result (made with `si`). */
export interface IgnoresParent {
  readonly [ignoresParent]: true;
}

/** What a signature still needs: the leading arguments a parent's result or a call fills in. */
export type Missing = unknown[] | IgnoresParent;

/** The arguments `delay` takes for a signature missing `M`. */
export type MissingArgs<M> = M extends IgnoresParent ? [] : M extends unknown[] ? M : never;

/** Applies signatures; the app implements it. */
export interface CanvasHost {
  /** Sends what `signature` describes, with `args` prepended and `kwargs`/`options` merged. */
  applySignature(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): AnyResult;
}

/** Call options a signature can carry (everything `applyAsync` takes but the kwargs). */
export type SignatureOptions = Omit<ApplyOptions, 'kwargs'>;

/** The fields of a signature dict, in camelCase. */
export interface SignatureFields {
  task: string;
  args?: readonly unknown[];
  kwargs?: Readonly<Record<string, unknown>>;
  /** Celery's options dict (snake_case), as on the wire. */
  options?: Readonly<WireOptions>;
  immutable?: boolean;
  subtaskType?: string | null;
}

/** Any signature, whatever its types. */
export type AnySignature = Signature<any, any, any>;
/** The result type of a signature. */
export type ResultOf<S> = S extends Signature<any, infer R, any> ? R : never;
/** What a signature still needs. */
export type MissingOf<S> = S extends Signature<infer M, any, any> ? M : never;
/** What applying a signature returns: an AsyncResult, or a GroupResult for a group. */
export type HandleOf<S> = S extends Signature<any, any, infer H> ? H : never;

/**
 * A task call that can be made later. Create one with `task.s(...)`, `task.si(...)`,
 * `app.signature(name, ...)` or {@link signature}; compose them with {@link chain},
 * {@link group} and {@link chord}. Signatures are immutable: `set`, `link` and `clone` return
 * new ones.
 *
 * @typeParam M - the leading arguments it still lacks (`[]` when complete; {@link IgnoresParent} for `si`)
 * @typeParam R - what the task returns
 * @typeParam H - what applying it returns
 */
export class Signature<M extends Missing = unknown[], R = unknown, H = AsyncResult<R>> {
  /** Type-only: what the signature still needs and what it returns. Never set at run time. */
  declare readonly types?: { readonly missing: M; readonly result: R; readonly handle: H };
  /** The task's registered name. */
  readonly task: string;
  /** Arguments given so far; a parent's result goes in front of them (unless immutable). */
  readonly args: readonly unknown[];
  readonly kwargs: Readonly<Record<string, unknown>>;
  /** Celery's options dict (snake_case), as it travels on the wire. */
  readonly options: Readonly<WireOptions>;
  /** True for `si()`: the parent's result is not prepended. */
  readonly immutable: boolean;
  /** `chain`, `group` or `chord` for containers; null for a task. */
  readonly subtaskType: string | null;
  /** The app that sends it; signatures made from a dict alone have none until composed. */
  protected readonly host: CanvasHost | undefined;

  constructor(fields: SignatureFields, host?: CanvasHost) {
    this.task = fields.task;
    this.args = fields.args ?? [];
    this.kwargs = fields.kwargs ?? {};
    this.options = fields.options ?? {};
    this.immutable = fields.immutable ?? false;
    this.subtaskType = fields.subtaskType ?? null;
    this.host = host;
  }

  /** The task id this signature will run under, once set (by `set({ taskId })` or on sending). */
  get id(): string | undefined {
    const id = this.options['task_id'];
    return typeof id === 'string' ? id : undefined;
  }

  /** Celery's signature dict: `{task, args, kwargs, options, subtask_type, immutable}`. */
  toDict(): SignatureDict {
    return {
      task: this.task,
      args: [...this.args],
      kwargs: this.kwargsDict(),
      options: { ...this.options },
      subtask_type: this.subtaskType,
      immutable: this.immutable,
    };
  }

  /** The dict's kwargs; containers put their members there. */
  protected kwargsDict(): Record<string, unknown> {
    return { ...this.kwargs };
  }

  /** A copy with these call options added (Celery's `.set()`). */
  set(options: SignatureOptions): this {
    return this.copyWith({ options: { ...this.options, ...toWireOptions(options) } });
  }

  /** A copy with more arguments in front, kwargs merged and options added (Celery's `clone`). */
  clone(args: readonly unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): this {
    const merged = mergeCall(this, args, kwargs, toWireOptions(options));
    return this.copyWith(merged);
  }

  /** A copy that runs `callback` with this task's result when it succeeds. */
  link(callback: SignatureLike): this {
    return this.copyWith({ options: appendOption(this.options, 'link', callback) });
  }

  /** A copy that runs `errback` (with this task's id as its first argument) when it fails. */
  linkError(errback: SignatureLike): this {
    return this.copyWith({ options: appendOption(this.options, 'link_error', errback) });
  }

  /**
   * Chains `next` after this one: the fluent form of {@link chain}. `next` takes this
   * signature's result as its first argument (unless it is immutable).
   */
  pipe<N extends AnySignature>(next: N & StepAfter<N, R>): Chain<M, ResultOf<N>, HandleOf<N>> {
    return new Chain([...stepsOf(this), ...stepsOf(next)], {}, this.host ?? next.boundHost);
  }

  /** Sends it: `args` go in front of its own arguments, options are merged over its own. */
  applyAsync(args?: MissingArgs<M> | readonly unknown[], options: SignatureOptions & { kwargs?: Record<string, unknown> } = {}): H {
    const { kwargs = {}, ...rest } = options;
    return this.requireHost().applySignature(this, args ?? [], kwargs, toWireOptions(rest)) as H;
  }

  /** Sends it with the arguments it still lacks. */
  delay(...args: MissingArgs<M>): H {
    return this.applyAsync(args);
  }

  /** The app that sends this signature. */
  protected requireHost(): CanvasHost {
    if (!this.host) {
      throw new ConfigurationError(
        `the signature of ${JSON.stringify(this.task)} is not bound to an app: make it with app.signature(...) or task.s(...), or compose it with one that is`,
      );
    }
    return this.host;
  }

  /** @internal The app this signature was made by, if any. */
  get boundHost(): CanvasHost | undefined {
    return this.host;
  }

  /** @internal A copy bound to `host`, unless it already has one. */
  bind(host: CanvasHost | undefined): this {
    return this.host || !host ? this : this.copyWith({}, host);
  }

  /** @internal A copy with these wire options merged over its own. */
  withOptions(options: WireOptions): this {
    return this.copyWith({ options: { ...this.options, ...options } });
  }

  /** @internal A copy with these arguments and immutability. */
  withCall(args: readonly unknown[], immutable: boolean): this {
    return this.copyWith({ args, immutable });
  }

  /** A copy of this signature, of the same class, with some fields replaced. */
  protected copyWith(changes: Partial<SignatureFields>, host = this.host): this {
    const copy = Object.create(Object.getPrototypeOf(this) as object) as this;
    Object.assign(copy, this, changes, { host });
    return copy;
  }
}

/** The arguments, kwargs and options of a call of `signature`, merged as Celery merges them. */
export function mergeCall(signature: AnySignature, args: readonly unknown[], kwargs: Record<string, unknown>, options: WireOptions): Required<Pick<SignatureFields, 'args' | 'kwargs' | 'options'>> {
  // Celery keeps a signature's group_id even when the call names another: changing it would
  // stall the chord it counts toward.
  const merged: WireOptions = { ...signature.options };
  for (const [key, value] of Object.entries(options)) {
    if (key === 'group_id' && merged[key] !== undefined) continue;
    merged[key] = value;
  }
  if (signature.immutable) return { args: signature.args, kwargs: signature.kwargs, options: merged };
  return { args: [...args, ...signature.args], kwargs: { ...signature.kwargs, ...kwargs }, options: merged };
}

function appendOption(options: Readonly<WireOptions>, key: 'link' | 'link_error', value: SignatureLike): WireOptions {
  const current = options[key];
  const list = Array.isArray(current) ? current : current ? [current] : [];
  return { ...options, [key]: [...list, signatureDictOf(value)] };
}

/** A chain: each step runs after the previous one, with its result. */
export class Chain<M extends Missing = unknown[], R = unknown, H = AsyncResult<R>> extends Signature<M, R, H> {
  /** The steps, in order. */
  readonly tasks: readonly AnySignature[];

  constructor(tasks: readonly AnySignature[], options: WireOptions = {}, host?: CanvasHost) {
    super({ task: 'celery.chain', options, subtaskType: 'chain' }, host);
    this.tasks = tasks;
  }

  protected override kwargsDict(): Record<string, unknown> {
    return { tasks: dictsOf(this.tasks) };
  }
}

/** A group: its members run in parallel; its result is theirs, in order. */
export class Group<M extends Missing = unknown[], R extends readonly unknown[] = unknown[]> extends Signature<M, R, GroupResult<R>> {
  /** The members, in order. */
  readonly tasks: readonly AnySignature[];

  constructor(tasks: readonly AnySignature[], options: WireOptions = {}, host?: CanvasHost) {
    super({ task: 'celery.group', options, subtaskType: 'group' }, host);
    this.tasks = tasks;
  }

  protected override kwargsDict(): Record<string, unknown> {
    return { tasks: dictsOf(this.tasks) };
  }
}

/** A chord: a header group, then a body called with the list of the header's results. */
export class Chord<M extends Missing = unknown[], R = unknown> extends Signature<M, R, AsyncResult<R>> {
  /** The header's members, in order. */
  readonly header: readonly AnySignature[];
  /** Called with the header's results once every member succeeded. */
  readonly body: AnySignature;
  /** The header's group id, once assigned (a chord frozen as a chain step carries it). */
  readonly headerId: string | undefined;

  constructor(header: readonly AnySignature[], body: AnySignature, options: WireOptions = {}, host?: CanvasHost, headerId?: string) {
    super({ task: 'celery.chord', options, subtaskType: 'chord' }, host);
    this.header = header;
    this.body = body;
    this.headerId = headerId;
  }

  protected override kwargsDict(): Record<string, unknown> {
    const members = dictsOf(this.header);
    // A frozen header travels as a group dict holding its id, as Celery's frozen chords do.
    const header = this.headerId ? new Group(this.header, { task_id: this.headerId }).toDict() : members;
    return { kwargs: {}, header, body: this.body.toDict() };
  }
}

function dictsOf(signatures: readonly AnySignature[]): SignatureDict[] {
  return signatures.map((signature) => signature.toDict());
}

/** A step after one returning `P`: the step itself if it takes `P`, else the type it should have. */
export type StepAfter<S, P> =
  MissingOf<S> extends IgnoresParent
    ? S
    : MissingOf<S> extends [infer X]
      ? [P] extends [X]
        ? S
        : Signature<[P], ResultOf<S>, HandleOf<S>>
      : Signature<[P], ResultOf<S>, HandleOf<S>>;

/** The steps of a chain, each checked against the result of the one before. */
export type CheckedSteps<S extends readonly unknown[], P = never, First extends boolean = true> = S extends readonly [infer Head, ...infer Tail]
  ? [First extends true ? Head : StepAfter<Head, P>, ...CheckedSteps<Tail, ResultOf<Head>, false>]
  : S;

type Last<S extends readonly unknown[]> = S extends readonly [...unknown[], infer L] ? L : S[number];

/** The results of a list of signatures, in order. */
export type ResultsOf<S extends readonly unknown[]> = { -readonly [K in keyof S]: ResultOf<S[K]> };

/**
 * What a group needs: nothing when every member ignores its parent, else what its other members
 * need (the parent's result goes to each of them).
 */
type GroupMissing<S extends readonly unknown[]> = [Exclude<MissingOf<S[number]>, IgnoresParent>] extends [never]
  ? IgnoresParent
  : Exclude<MissingOf<S[number]>, IgnoresParent>;

/**
 * Runs signatures one after another, each with the previous one's result as its first
 * argument: one message goes out, and each worker sends the next step. The result is the last
 * step's; its `parent` walks back through the others.
 *
 * @example
 * ```ts
 * const total = await chain(add.s(1, 2), add.s(3), mul.s(10)).delay(); // (1 + 2 + 3) * 10
 * ```
 */
export function chain<const S extends readonly [AnySignature, ...AnySignature[]]>(
  ...steps: S & CheckedSteps<S>
): Chain<MissingOf<S[0]>, ResultOf<Last<S>>, HandleOf<Last<S>>> {
  return new Chain(steps, {}, hostOf(steps));
}

/**
 * Runs signatures in parallel; the {@link GroupResult} resolves with their results in order.
 * Members are sent in one broker round trip.
 */
export function group<const S extends readonly AnySignature[]>(...members: S): Group<GroupMissing<S>, ResultsOf<S>>;
export function group<const S extends readonly AnySignature[]>(members: S): Group<GroupMissing<S>, ResultsOf<S>>;
export function group(...input: unknown[]): Group<Missing, unknown[]> {
  const members = (input.length === 1 && Array.isArray(input[0]) ? input[0] : input) as AnySignature[];
  return new Group(members, {}, hostOf(members));
}

/** The members of a chord's header, given as a list or a group. */
type HeaderResults<G> = G extends Group<any, infer R> ? R : G extends readonly unknown[] ? ResultsOf<G> : never;
type HeaderMissing<G> = G extends Group<infer M, any> ? M : G extends readonly unknown[] ? GroupMissing<G> : never;

/**
 * Runs the header in parallel, then the body with the list of the header's results. If a
 * header member fails or is revoked, the body does not run: it ends FAILURE with a
 * `ChordError` and its error callbacks fire, once.
 */
export function chord<const G extends readonly AnySignature[] | Group<Missing, readonly unknown[]>, B extends AnySignature>(
  header: G,
  body: B & StepAfter<B, HeaderResults<G>>,
): Chord<HeaderMissing<G>, ResultOf<B>> {
  const members = header instanceof Group ? header.tasks : (header as readonly AnySignature[]);
  return new Chord(members, body, {}, hostOf([...members, body]));
}

/**
 * A signature for a task known only by name (defined in Python, say). It is bound to no app
 * until composed with one that is; prefer `app.signature(...)`, which is.
 */
export function signature<R = unknown>(name: string, args: readonly unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): Signature<any, R> {
  return new Signature({ task: name, args, kwargs, options: toWireOptions(options) });
}

/**
 * Runs `task` on each item, one after another inside one task (Celery's `map`): one message,
 * one result, the list of the task's results.
 */
export function map<R>(task: Signature<any, R, any>, items: readonly unknown[]): Signature<IgnoresParent, R[]> {
  return new Signature({ task: 'celery.map', kwargs: { task: task.toDict(), it: [...items] }, immutable: true }, task.boundHost);
}

/** Like {@link map}, but each item is a list of arguments (Celery's `starmap`). */
export function starmap<R>(task: Signature<any, R, any>, items: readonly (readonly unknown[])[]): Signature<IgnoresParent, R[]> {
  return new Signature({ task: 'celery.starmap', kwargs: { task: task.toDict(), it: items.map((item) => [...item]) }, immutable: true }, task.boundHost);
}

/**
 * Splits `items` (argument lists) into chunks of `size`, each run as one {@link starmap} task,
 * all chunks in parallel (Celery's `chunks`). Applying it gives a GroupResult of lists.
 */
export function chunks<R>(task: Signature<any, R, any>, items: readonly (readonly unknown[])[], size: number): Group<IgnoresParent, R[][]> {
  if (!Number.isInteger(size) || size < 1) throw new ConfigurationError(`chunks needs a whole number size of at least 1; got ${size}`);
  const parts: AnySignature[] = [];
  for (let start = 0; start < items.length; start += size) parts.push(starmap(task, items.slice(start, start + size)));
  return new Group(parts, {}, task.boundHost);
}

/**
 * The steps a signature adds to a chain: a chain of its own steps is spliced in (its error
 * callbacks going to each step, as Celery's `unchain_tasks` does), anything else is one step.
 */
function stepsOf(signature: AnySignature): AnySignature[] {
  if (!(signature instanceof Chain) || signature.args.length > 0) return [signature];
  const { link_error: linkError, ...rest } = signature.options;
  if (Object.keys(rest).length > 0) return [signature];
  const errbacks = Array.isArray(linkError) ? linkError : linkError ? [linkError] : [];
  return signature.tasks.map((task) => errbacks.reduce<AnySignature>((step, errback) => step.linkError(errback as SignatureDict), task));
}

function hostOf(signatures: readonly AnySignature[]): CanvasHost | undefined {
  for (const member of signatures) if (member.boundHost) return member.boundHost;
  return undefined;
}

/**
 * Rebuilds a signature from Celery's dict (already checked by `checkSignatureDict`): chains,
 * groups and chords become their classes, anything else a task signature (including the
 * built-in `celery.map`, `celery.starmap` and `celery.chunks` tasks).
 */
export function fromDict(dict: SignatureDict, host?: CanvasHost): AnySignature {
  const options = dict.options ?? {};
  const kwargs = dict.kwargs ?? {};
  const members = (list: unknown): AnySignature[] => (Array.isArray(list) ? list : []).map((item: SignatureDict) => fromDict(item, host));
  let signature: AnySignature;
  switch (dict.subtask_type) {
    case 'chain':
      signature = new Chain(members(kwargs['tasks']), options, host);
      break;
    case 'group':
      signature = new Group(members(kwargs['tasks']), options, host);
      break;
    case 'chord': {
      const header = kwargs['header'] as SignatureDict | SignatureDict[] | undefined;
      const headerTasks = members(Array.isArray(header) ? header : header?.kwargs?.['tasks']);
      if (!kwargs['body']) throw new ConfigurationError(`the chord ${JSON.stringify(dict.task)} has no body to call`);
      // The group id: the one its members were frozen with, else the header dict's.
      const headerId = Array.isArray(header) ? undefined : header?.options?.['task_id'];
      const memberGroup = headerTasks[0]?.options['group_id'];
      const id = typeof memberGroup === 'string' ? memberGroup : typeof headerId === 'string' ? headerId : undefined;
      signature = new Chord(headerTasks, fromDict(kwargs['body'] as SignatureDict, host), options, host, id);
      break;
    }
    default:
      return new Signature({ task: dict.task, args: dict.args ?? [], kwargs, options, immutable: dict.immutable ?? false, subtaskType: dict.subtask_type ?? null }, host);
  }
  // Containers keep the partial arguments and immutability their dict carries.
  return signature.withCall(dict.args ?? [], dict.immutable ?? false);
}
