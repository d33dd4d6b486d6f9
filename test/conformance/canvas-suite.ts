/**
 * The canvas conformance suite: chains, groups, chords, map/starmap/chunks, callbacks, the result
 * tree and refused embeds, each run end to end by an app and an in-process worker on a queue of
 * its own. Every broker runs it through a one-line test file, with a result backend that joins
 * chords.
 *
 * The tasks record what their handlers saw (ids, parent, root, group), so a case checks the
 * headers a step was sent with where the result meta does not store them.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AsyncResult,
  Celeriac,
  chain,
  chord,
  chunks,
  createLogger,
  group,
  GroupResult,
  map,
  starmap,
  TaskFailedError,
  TaskRevokedError,
  TimeoutError,
  type AnyResult,
  type Broker,
  type ControlCommand,
  type SignatureDict,
  type Task,
  type TaskContext,
  type Worker,
} from '../../src/index.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { emptyEmbed, type TaskMessage } from '../../src/protocol/message.js';
import { deleteAmqpQueues } from '../helpers/amqp.js';
import { until } from '../helpers/wait.js';

/** Where a suite's app sends tasks and keeps results. */
export interface CanvasUrls {
  broker: string;
  backend: string;
}

/** One run of a task, as its handler saw the request. */
export interface Run {
  id: string;
  /** The registered name of the handler that ran (a `celery.map` item runs under the map's id). */
  name: string;
  args: unknown[];
  rootId: string;
  parentId: string | null;
  group: string | null;
  groupIndex: number | null;
  /** When the handler returned or threw, in ms since the epoch; unset while it runs. */
  endedAt?: number;
}

/** How long a case waits for any one result, in seconds. */
export const WAIT = { timeout: 20 };
/** `cv.sleepy(n)` sleeps (SLEEPY_TOP - n) steps of this many ms: the smaller n, the longer. */
const SLEEPY_STEP_MS = 150;
const SLEEPY_TOP = 4;

/** The tasks every case can use, defined on the case's own app. */
function defineTasks(app: Celeriac, runs: Run[], gates: Gates) {
  /** Defines a task whose runs are recorded in `runs`. */
  const tracked = <A extends unknown[], R>(name: string, handler: (ctx: TaskContext, ...args: A) => R | Promise<R>): Task<A, R> =>
    app.task<A, R>(name, async (ctx, ...args) => {
      const { rootId, parentId, group: groupId, groupIndex } = ctx.request;
      const run: Run = { id: ctx.id, name, args, rootId, parentId, group: groupId, groupIndex };
      runs.push(run);
      try {
        return (await handler(ctx, ...args)) as R;
      } finally {
        run.endedAt = Date.now();
      }
    });

  const add = tracked('cv.add', (_ctx, a: number, b: number) => a + b);
  return {
    add,
    mul: tracked('cv.mul', (_ctx, a: number, b: number) => a * b),
    double: tracked('cv.double', (_ctx, n: number) => n * 2),
    tsum: tracked('cv.tsum', (_ctx, values: number[]) => values.reduce((total, value) => total + value, 0)),
    /** A chord body that returns what it was given: the header's results. */
    echo: tracked('cv.echo', (_ctx, values: unknown[]) => values),
    fail: tracked('cv.fail', (_ctx, value: unknown): never => {
      throw new RangeError(`bad value ${String(value)}`);
    }),
    /** Returns `n` after a sleep that is longer the smaller `n` is: members end in reverse. */
    sleepy: tracked('cv.sleepy', async (_ctx, n: number) => {
      await sleep((SLEEPY_TOP - n) * SLEEPY_STEP_MS);
      return n;
    }),
    /** Returns `key` once the case opens the gate of that name. */
    gate: tracked('cv.gate', async (_ctx, key: string) => {
      await gates.wait(key);
      return key;
    }),
    /** A success callback. */
    note: tracked('cv.note', (_ctx, value: unknown) => value),
    /** An error callback: Celery calls it with the failed task's id. */
    errback: tracked('cv.errback', (_ctx, taskId: string) => taskId),
    /** Sends `cv.add(n, 1)` from inside the handler and returns its id. */
    spawn: tracked('cv.spawn', async (_ctx, n: number) => {
      const child = add.delay(n, 1);
      await child.sent;
      return child.id;
    }),
    /** Sends two `cv.tree` children (labels + 'a', + 'b') while depth lasts; returns its label. */
    tree: tracked('cv.tree', async (_ctx, depth: number, label: string) => {
      if (depth > 0) {
        for (const side of ['a', 'b']) await app.sendTask('cv.tree', [depth - 1, label + side]).sent;
      }
      return label;
    }),
  };
}

/** The tasks of a harness. */
export type CanvasTasks = ReturnType<typeof defineTasks>;

/** Named gates a `cv.gate` task waits on, opened by the case. */
class Gates {
  readonly #open = new Map<string, { opened: Promise<void>; open: () => void }>();

  wait(key: string): Promise<void> {
    return this.#gate(key).opened;
  }

  open(key: string): void {
    this.#gate(key).open();
  }

  openAll(): void {
    for (const gate of this.#open.values()) gate.open();
  }

  #gate(key: string): { opened: Promise<void>; open: () => void } {
    let gate = this.#open.get(key);
    if (!gate) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      gate = { opened, open };
      this.#open.set(key, gate);
    }
    return gate;
  }
}

/** An app with the canvas tasks and a worker running them, on a queue no other case uses. */
export interface CanvasHarness {
  app: Celeriac;
  worker: Worker;
  broker: Broker;
  queue: string;
  tasks: CanvasTasks;
  /** Every task run so far, in start order. */
  runs: Run[];
  /** The runs of one task. */
  runsOf(name: string): Run[];
  /** The one run of a task id; fails the case if it did not run exactly once. */
  runOf(id: string): Run;
  /** Opens the named gate: the `cv.gate` tasks waiting on it return. */
  open(key: string): void;
  /** A queue nobody consumes, purged when the case ends. */
  strayQueue(): string;
  /** Waits until the worker has heard a revoke of these ids: from then on it refuses them. */
  heardRevoke(...ids: string[]): Promise<void>;
  /** Revokes task ids and waits until the worker has heard it. */
  revokeBeforeRun(...ids: string[]): Promise<void>;
  /**
   * Stops the worker (which waits for what it was still sending after its tasks), then checks
   * nothing is left waiting in the queue: after it, the runs recorded are every run there will be.
   */
  quiesce(): Promise<void>;
  close(): Promise<void>;
}

/** How a harness's worker runs. */
export interface HarnessOptions {
  /** Tasks the worker runs at once. Default 10. */
  concurrency?: number;
}

/**
 * Starts an app on `urls` with the canvas tasks and a worker on a fresh queue (the app's default
 * queue, so every step, callback and built-in task goes there).
 */
export async function openCanvasHarness(urls: CanvasUrls, options: HarnessOptions = {}): Promise<CanvasHarness> {
  const queue = `canvas-${randomUUID()}`;
  const app = new Celeriac({ broker: urls.broker, backend: urls.backend, defaultQueue: queue });
  const runs: Run[] = [];
  const gates = new Gates();
  const tasks = defineTasks(app, runs, gates);
  const strays: string[] = [];
  const worker = app.worker({ queues: [queue], logger: createLogger('critical'), concurrency: options.concurrency ?? 10 });
  let broker: Broker;
  let heard: Set<string>;
  try {
    broker = await app.broker();
    heard = listenForRevokes(broker);
    await worker.start();
  } catch (error) {
    await worker.stop(0);
    await app.close();
    throw error;
  }
  const runsOf = (name: string): Run[] => runs.filter((run) => run.name === name);
  const heardRevoke = (...ids: string[]): Promise<void> =>
    until(() => ids.every((id) => heard.has(id)), 10_000, `the worker to hear the revoke of ${ids.join(', ')}`);
  return {
    app,
    worker,
    broker,
    queue,
    tasks,
    runs,
    runsOf,
    runOf(id) {
      const matching = runs.filter((run) => run.id === id);
      expect(matching, `runs of task ${id}`).toHaveLength(1);
      return matching[0]!;
    },
    open: (key) => gates.open(key),
    strayQueue() {
      const stray = `canvas-stray-${randomUUID()}`;
      strays.push(stray);
      return stray;
    },
    heardRevoke,
    async revokeBeforeRun(...ids) {
      await app.revoke(ids);
      await heardRevoke(...ids);
    },
    async quiesce() {
      await worker.stop(5);
      expect(await broker.queueLength(queue), `messages left in ${queue}`).toBe(0);
    },
    async close() {
      gates.openAll();
      await worker.stop(1);
      for (const name of [queue, ...strays]) await broker.purge(name);
      await app.close();
      if (urls.broker.startsWith('amqp')) await deleteAmqpQueues(urls.broker, [queue, ...strays]);
    },
  };
}

/**
 * The ids of revoke commands the worker's control subscription has handled. It wraps the real
 * channel's subscribe (before the worker subscribes), so the ids are recorded right after the
 * worker's own handler ran: a case then knows the worker will refuse them.
 */
function listenForRevokes(broker: Broker): Set<string> {
  const heard = new Set<string>();
  const control = broker.control;
  if (!control) return heard;
  const subscribe = control.subscribe.bind(control);
  control.subscribe = (onCommand) =>
    subscribe((command: ControlCommand) => {
      onCommand(command);
      const ids = command.arguments['task_id'];
      if (command.method === 'revoke') for (const id of Array.isArray(ids) ? ids : [ids]) heard.add(String(id));
    });
  return heard;
}

/** Registers an afterEach that closes every harness opened through the function it returns. */
export function canvasHarnesses(urls: CanvasUrls): (options?: HarnessOptions) => Promise<CanvasHarness> {
  const opened: CanvasHarness[] = [];
  afterEach(async () => {
    for (const harness of opened.splice(0)) await harness.close();
  });
  return async (options) => {
    const harness = await openCanvasHarness(urls, options);
    opened.push(harness);
    return harness;
  };
}

/** `result` as one task's result (not a group's): a step of a chain, a child, a callback. */
export function single(result: AnyResult | null): AsyncResult<unknown> {
  expect(result).toBeInstanceOf(AsyncResult);
  return result as AsyncResult<unknown>;
}

/** The header of a chord's result: the group before its body. */
function headerOf(result: AnyResult): GroupResult<unknown[]> {
  expect(result.parent).toBeInstanceOf(GroupResult);
  return result.parent as GroupResult<unknown[]>;
}

/** The error a result's `get` rejects with; fails the case if it resolves instead. */
export async function failureOf(result: AsyncResult<unknown>): Promise<Error> {
  return result.get(WAIT).then(
    (value) => {
      throw new Error(`expected task ${result.id} to fail, but it returned ${JSON.stringify(value)}`);
    },
    (error: unknown) => error as Error,
  );
}

/** A task message for `cv.add(1, 1)` with a hand-written `embed.chain`. */
function withChain(id: string, steps: unknown[]): TaskMessage {
  return {
    id,
    task: 'cv.add',
    args: [1, 1],
    kwargs: {},
    embed: { ...emptyEmbed(), chain: steps as SignatureDict[] },
    eta: null,
    expires: null,
    retries: 0,
    timeLimit: [null, null],
    rootId: id,
    parentId: null,
    group: null,
    groupIndex: null,
    shadow: null,
    origin: 'canvas-conformance',
    ignoreResult: false,
    replyTo: null,
    priority: null,
    extraHeaders: {},
  };
}

/** A chain dict nested `levels` deep around one task. */
function nestedChain(levels: number): unknown {
  let signature: unknown = { task: 'cv.add', args: [1] };
  for (let i = 0; i < levels; i++) signature = { task: 'celery.chain', subtask_type: 'chain', kwargs: { tasks: [signature] }, options: {} };
  return signature;
}

/** Malformed `embed.chain` contents a worker must refuse, and what the refusal must say. */
const BAD_CHAINS: Array<{ what: string; steps: (ownId: string) => unknown[]; says: RegExp }> = [
  { what: 'a step whose task is not a name', steps: () => [{ task: 5 }], says: /embed\.chain\[0\] has no task name/ },
  { what: 'an unknown subtask_type', steps: () => [{ task: 'cv.add', subtask_type: 'bogus' }], says: /embed\.chain\[0\]\.subtask_type "bogus" is not one of/ },
  { what: 'signatures nested deeper than 32 levels', steps: () => [nestedChain(33)], says: /embed\.chain\[0\](\.kwargs\.tasks\[0\])+: signatures nest deeper than 32 levels/ },
  { what: "a step carrying the message's own task id", steps: (ownId) => [{ task: 'cv.add', args: [1], options: { task_id: ownId } }], says: /embed\.chain\[0\] would run task id \S+ again/ },
];

/** Runs the suite against an app on `urls` (the backend must join chords). */
export function describeCanvasConformance(name: string, urls: CanvasUrls): void {
  describe(`canvas conformance: ${name}`, () => {
    const setup = canvasHarnesses(urls);

    describe('chain', () => {
      it('passes each result on, and every step names the one before as parent and the first as root', async () => {
        const { tasks, app, runOf } = await setup();
        const { add, mul } = tasks;
        const result = chain(add.s(1, 2), add.s(3), mul.s(10)).delay();
        expect(await result.get(WAIT)).toBe(60);
        const second = single(result.parent);
        const first = single(second.parent);
        expect(first.parent).toBeNull();
        expect([await first.get(WAIT), await second.get(WAIT)]).toEqual([3, 6]);
        const ids = [first.id, second.id, result.id];
        expect(new Set(ids).size).toBe(3);
        expect(ids.map((id) => runOf(id).args)).toEqual([[1, 2], [3, 3], [6, 10]]);
        expect(ids.map((id) => runOf(id).parentId)).toEqual([null, first.id, second.id]);
        expect(ids.map((id) => runOf(id).rootId)).toEqual([first.id, first.id, first.id]);
        const metas = await Promise.all(ids.map((id) => app.asyncResult(id).info()));
        expect(metas.map((meta) => meta?.parent_id ?? null)).toEqual([null, first.id, second.id]);
      });

      it('is built fluently with pipe(), and delay() hands its arguments to the first step', async () => {
        const { tasks, runOf } = await setup();
        const { add, mul } = tasks;
        expect(await add.s(1, 2).pipe(add.s(3)).pipe(mul.s(10)).delay().get(WAIT)).toBe(60);
        const partial = chain(add.s(2), mul.s(10)).delay(1);
        expect(await partial.get(WAIT)).toBe(30);
        expect(runOf(single(partial.parent).id).args).toEqual([1, 2]);
      });

      it('stops at a failing step: the later steps fail with its error, and the errback runs once with its id', async () => {
        const { tasks, runsOf, quiesce } = await setup();
        const { add, fail, errback } = tasks;
        const result = chain(add.s(1, 2), fail.s(), add.s(3)).linkError(errback.s()).delay();
        const failed = single(result.parent);
        const cause = await failureOf(failed);
        expect(cause).toBeInstanceOf(TaskFailedError);
        expect(cause).toMatchObject({ excType: 'ValueError', message: 'ValueError: bad value 3' });
        const carried = await failureOf(result);
        expect(carried).toBeInstanceOf(TaskFailedError);
        expect(carried).toMatchObject({ excType: 'ValueError', message: cause.message });
        expect(await result.state()).toBe('FAILURE');
        await until(() => runsOf('cv.errback').length > 0, 10_000, 'the errback to run');
        await quiesce();
        expect(runsOf('cv.errback').map((run) => run.args)).toEqual([[failed.id]]);
        expect(runsOf('cv.add').map((run) => run.args)).toEqual([[1, 2]]);
      });

      it('marks the rest REVOKED when a step is revoked before it runs', async () => {
        const { tasks, runs, revokeBeforeRun } = await setup();
        const { add, mul } = tasks;
        const revokedId = randomUUID();
        await revokeBeforeRun(revokedId);
        const result = chain(add.s(1, 2), add.s(3).set({ taskId: revokedId }), mul.s(10)).delay();
        await expect(result.get(WAIT)).rejects.toBeInstanceOf(TaskRevokedError);
        const revoked = single(result.parent);
        expect(revoked.id).toBe(revokedId);
        expect(await revoked.state()).toBe('REVOKED');
        expect(await result.state()).toBe('REVOKED');
        expect(await single(revoked.parent).get(WAIT)).toBe(3);
        expect(runs.map((run) => run.id)).not.toContain(revokedId);
        expect(runs.map((run) => run.id)).not.toContain(result.id);
      });
    });

    it('link and linkError on one call: the callback gets the result, the errback the failed id, children lists the callback', async () => {
      const { tasks, runsOf, quiesce } = await setup();
      const { add, fail, note, errback } = tasks;
      const callbacks = { link: note.s(), linkError: errback.s() };
      const succeeded = add.applyAsync([1, 2], callbacks);
      const failed = fail.applyAsync([4], callbacks);
      expect(await succeeded.get(WAIT)).toBe(3);
      expect(await failureOf(failed)).toMatchObject({ excType: 'ValueError' });
      await until(() => runsOf('cv.note').length > 0 && runsOf('cv.errback').length > 0, 10_000, 'the callback and the errback to run');
      const children = await succeeded.children();
      expect(children.map((child) => child.id)).toEqual(runsOf('cv.note').map((run) => run.id));
      expect(await single(children[0]!).get(WAIT)).toBe(3);
      await quiesce();
      expect(runsOf('cv.note').map((run) => [run.args, run.parentId])).toEqual([[[3], succeeded.id]]);
      expect(runsOf('cv.errback').map((run) => run.args)).toEqual([[failed.id]]);
    });

    describe('group', () => {
      it('gives results in member order whatever the completion order, each member carrying its group and index', async () => {
        const { tasks, app, runOf } = await setup();
        const { sleepy } = tasks;
        const result = group(sleepy.s(1), sleepy.s(2), sleepy.s(3)).delay();
        expect(await result.get(WAIT)).toEqual([1, 2, 3]);
        const ended = result.results.map((member) => runOf(member.id).endedAt!);
        expect(ended[0]).toBeGreaterThan(ended[1]!);
        expect(ended[1]).toBeGreaterThan(ended[2]!);
        expect(result.results.map((member) => [runOf(member.id).group, runOf(member.id).groupIndex])).toEqual([
          [result.id, 0],
          [result.id, 1],
          [result.id, 2],
        ]);
        const metas = await Promise.all(result.results.map((member) => app.asyncResult(member.id).info()));
        expect(metas.map((meta) => meta?.group_id)).toEqual([result.id, result.id, result.id]);
      });

      it('reports states, completedCount and ready as members end', async () => {
        const { tasks, open } = await setup();
        const { add, gate } = tasks;
        const result = group(add.s(1, 1), gate.s('held')).delay();
        expect(await result.results[0]!.get(WAIT)).toBe(2);
        expect(await result.states()).toEqual(['SUCCESS', 'PENDING']);
        expect(await result.completedCount()).toBe(1);
        expect(await result.ready()).toBe(false);
        open('held');
        expect(await result.get(WAIT)).toEqual([2, 'held']);
        expect(await result.states()).toEqual(['SUCCESS', 'SUCCESS']);
        expect(await result.completedCount()).toBe(2);
        expect(await result.ready()).toBe(true);
      });

      it('puts a failing member’s error in its place with propagate: false', async () => {
        const { tasks } = await setup();
        const { add, fail } = tasks;
        const result = group(add.s(1, 1), fail.s(7), add.s(2, 2)).delay();
        const values = await result.get({ ...WAIT, propagate: false });
        expect(values[0]).toBe(2);
        expect(values[1]).toBeInstanceOf(TaskFailedError);
        expect(values[1]).toMatchObject({ excType: 'ValueError', message: 'ValueError: bad value 7' });
        expect(values[2]).toBe(4);
        await expect(result.get(WAIT)).rejects.toBeInstanceOf(TaskFailedError);
      });

      it('rejects get({ timeout }) with TimeoutError while a member never runs', async () => {
        const { tasks, strayQueue } = await setup();
        const { add } = tasks;
        const result = group(add.s(1, 1), add.s(2, 2).set({ queue: strayQueue() })).delay();
        expect(await result.results[0]!.get(WAIT)).toBe(2);
        const started = Date.now();
        await expect(result.get({ timeout: 0.5 })).rejects.toBeInstanceOf(TimeoutError);
        expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      });

      it('saves and restores by id, and forget() deletes the members and the saved group', async () => {
        const { tasks, app } = await setup();
        const { add } = tasks;
        const result = group(add.s(1, 1), add.s(2, 2)).delay();
        expect(await result.get(WAIT)).toEqual([2, 4]);
        await result.save();
        const restored = await app.restoreGroup<[number, number]>(result.id);
        expect(restored?.group).toBeInstanceOf(GroupResult);
        const saved = restored!.group;
        expect(saved.id).toBe(result.id);
        expect(saved.results.map((member) => member.id)).toEqual(result.results.map((member) => member.id));
        expect(await saved.get(WAIT)).toEqual([2, 4]);
        await saved.forget();
        expect(await app.restoreGroup(result.id)).toBeNull();
        for (const member of result.results) expect(await app.asyncResult(member.id).info()).toBeNull();
      });

      it('publishes 1000 members in one publishMany call, and they all complete', async () => {
        const { tasks, broker } = await setup({ concurrency: 50 });
        const { add } = tasks;
        // Counts calls on the real broker, which still does the publishing.
        const publishMany = broker.publishMany.bind(broker);
        const batches: number[] = [];
        broker.publishMany = (items) => {
          batches.push(items.length);
          return publishMany(items);
        };
        const result = group(Array.from({ length: 1000 }, (_, i) => add.s(i, i))).delay();
        try {
          await Promise.all(result.results.map((member) => member.sent));
        } finally {
          broker.publishMany = publishMany;
        }
        expect(batches).toEqual([1000]);
        expect(await result.get({ timeout: 120 })).toEqual(Array.from({ length: 1000 }, (_, i) => 2 * i));
      });
    });

    describe('chord', () => {
      it('calls the body once with the header results in member order', async () => {
        const { tasks, runsOf, runOf } = await setup();
        const { sleepy, echo } = tasks;
        const result = chord([sleepy.s(1), sleepy.s(2), sleepy.s(3)], echo.s()).delay();
        expect(await result.get(WAIT)).toEqual([1, 2, 3]);
        const ended = headerOf(result).results.map((member) => runOf(member.id).endedAt!);
        expect(ended[0]).toBeGreaterThan(ended[2]!);
        expect(runsOf('cv.echo').map((run) => run.args)).toEqual([[[1, 2, 3]]]);
      });

      it('fails the body with a ChordError naming a failed member, soon after the last member ends, and fires its errback once', async () => {
        const { tasks, runsOf, runOf, quiesce } = await setup();
        const { add, fail, sleepy, echo, errback } = tasks;
        const result = chord([add.s(1, 1), fail.s(7), sleepy.s(1)], echo.s().linkError(errback.s())).delay();
        const members = headerOf(result).results;
        const error = await failureOf(result);
        const readyAt = Date.now();
        expect(error).toBeInstanceOf(TaskFailedError);
        expect(error).toMatchObject({ excType: 'ChordError' });
        expect(error.message).toContain(`Dependency ${members[1]!.id} raised ValueError('bad value 7')`);
        expect(await result.state()).toBe('FAILURE');
        const lastEnded = Math.max(...members.map((member) => runOf(member.id).endedAt!));
        expect(readyAt - lastEnded).toBeLessThan(1000);
        await until(() => runsOf('cv.errback').length > 0, 10_000, 'the body errback to run');
        await quiesce();
        expect(runsOf('cv.echo')).toEqual([]);
        expect(runsOf('cv.errback').map((run) => run.args)).toEqual([[result.id]]);
      });

      it('fails the body when a member is revoked', async () => {
        const { tasks, app, runsOf, revokeBeforeRun, quiesce } = await setup();
        const { add, echo } = tasks;
        const revokedId = randomUUID();
        await revokeBeforeRun(revokedId);
        const result = chord([add.s(1, 1), add.s(2, 2).set({ taskId: revokedId })], echo.s()).delay();
        const error = await failureOf(result);
        expect(error).toMatchObject({ excType: 'ChordError' });
        expect(error.message).toContain(`Dependency ${revokedId} raised TaskRevokedError(`);
        expect(await app.asyncResult(revokedId).state()).toBe('REVOKED');
        await quiesce();
        expect(runsOf('cv.echo')).toEqual([]);
      });

      it('calls the body with [] when the header is empty', async () => {
        const { tasks } = await setup();
        expect(await chord([], tasks.echo.s()).delay().get(WAIT)).toEqual([]);
      });

      it('upgrades a group followed by a step in a chain to a chord', async () => {
        const { tasks } = await setup();
        const { add, tsum } = tasks;
        const result = chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s()).delay();
        expect(await result.get(WAIT)).toBe(34);
        expect(result.parent).toBeInstanceOf(GroupResult);
      });

      it('counts a chain in the header by its last step', async () => {
        const { tasks } = await setup();
        const { add, tsum } = tasks;
        expect(await chord([chain(add.s(1, 1), add.s(1)), add.s(2, 2)], tsum.s()).delay().get(WAIT)).toBe(7);
      });

      it('counts a chord in the header by its body’s result, as Celery does', async () => {
        const { tasks } = await setup();
        const { add, tsum, echo } = tasks;
        const inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s());
        expect(await chord([inner, add.s(5, 5)], echo.s()).delay().get(WAIT)).toEqual([6, 10]);
      });

      it('goes on to the next steps of a chain after its body', async () => {
        const { tasks } = await setup();
        const { add, tsum, mul } = tasks;
        const result = chain(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), mul.s(10)).delay();
        expect(await result.get(WAIT)).toBe(60);
        expect(await single(result.parent).get(WAIT)).toBe(6);
      });
    });

    it('map, starmap and chunks', async () => {
      const { tasks } = await setup();
      const { add, double } = tasks;
      expect(await map(double.s(), [1, 2, 3]).delay().get(WAIT)).toEqual([2, 4, 6]);
      expect(await starmap(add.s(), [[1, 1], [2, 3]]).delay().get(WAIT)).toEqual([2, 5]);
      const chunked = chunks(add.s(), [[1, 1], [2, 2], [3, 3]], 2).delay();
      expect(chunked).toBeInstanceOf(GroupResult);
      expect(chunked.results).toHaveLength(2);
      expect(await chunked.get(WAIT)).toEqual([[2, 4], [6]]);
    });

    describe('the result tree', () => {
      it('records a task sent from a handler as a child, with the sender as parent and its root as root', async () => {
        const { tasks, app, runOf } = await setup();
        const { add, spawn } = tasks;
        const result = chain(add.s(1, 1), spawn.s()).delay();
        const childId = await result.get(WAIT);
        const root = single(result.parent);
        expect((await result.info())?.children).toContainEqual([[childId, null], null]);
        const children = await result.children();
        expect(children.map((child) => child.id)).toEqual([childId]);
        expect(await single(children[0]!).get(WAIT)).toBe(3);
        expect((await app.asyncResult(childId).info())?.parent_id).toBe(result.id);
        expect(runOf(childId)).toMatchObject({ parentId: result.id, rootId: root.id });
        expect(runOf(result.id).rootId).toBe(root.id);
      });

      it('collect() walks the tree depth-first', async () => {
        const { tasks } = await setup();
        const labels: unknown[] = [];
        for await (const [, value] of tasks.tree.delay(2, 'r').collect(WAIT)) labels.push(value);
        expect(labels).toEqual(['r', 'ra', 'raa', 'rab', 'rb', 'rba', 'rbb']);
      });
    });

    describe('a whole workflow', () => {
      it('forget() on a chain’s last result forgets the earlier steps too', async () => {
        const { tasks, app } = await setup();
        const { add, mul } = tasks;
        const result = chain(add.s(1, 2), add.s(3), mul.s(10)).delay();
        expect(await result.get(WAIT)).toBe(60);
        const ids = [single(single(result.parent).parent).id, single(result.parent).id, result.id];
        // A step stores its result after sending the next one (as Celery does), so wait for each.
        expect(await Promise.all(ids.map((id) => app.asyncResult(id).get(WAIT)))).toEqual([3, 6, 60]);
        await result.forget();
        for (const id of ids) expect(await app.asyncResult(id).info()).toBeNull();
      });

      it('revoke({ parents: true }) on a chain not yet started prevents every step', async () => {
        const { tasks, app, runs, worker, heardRevoke } = await setup();
        const { add, mul } = tasks;
        const result = chain(add.s(1, 2).set({ countdown: 2 }), add.s(3), mul.s(10)).delay();
        await result.sent;
        const second = single(result.parent);
        const first = single(second.parent);
        const ids = [first.id, second.id, result.id];
        await result.revoke({ parents: true });
        await heardRevoke(...ids);
        expect(runs).toEqual([]); // the first step's countdown is not over yet
        for (const id of ids) await expect(app.asyncResult(id).get(WAIT)).rejects.toBeInstanceOf(TaskRevokedError);
        expect(worker.stats.revoked).toBe(1); // only the first step ever reached the worker
        expect(runs).toEqual([]);
      });
    });

    describe('a message whose embed.chain is malformed', () => {
      it.for(BAD_CHAINS)('is refused ($what): FAILURE naming the place, dead-lettered, and the worker goes on', async ({ steps, says }, { skip }) => {
        const { tasks, app, broker, queue, runs } = await setup();
        skip(!broker.listDeadLetters, `${name}: the broker cannot list its dead letters`);
        const id = randomUUID();
        await broker.publish(queue, encodeTaskMessage(withChain(id, steps(id))));
        const error = await failureOf(app.asyncResult(id));
        expect(error.message).toMatch(says);
        await until(
          async () => (await broker.listDeadLetters!(10_000)).some((letter) => letter.queue === queue && letter.message.headers['id'] === id),
          10_000,
          'the message to be dead-lettered',
        );
        const letter = (await broker.listDeadLetters!(10_000)).find((entry) => entry.queue === queue && entry.message.headers['id'] === id);
        expect(letter?.reason).toMatch(/^malformed: /);
        expect(letter?.reason).toMatch(says);
        expect(await tasks.add.delay(2, 2).get(WAIT)).toBe(4);
        expect(runs.map((run) => run.id)).not.toContain(id);
      });
    });
  });
}
