/**
 * Type tests for canvas: a signature knows the leading arguments it still lacks and what it
 * returns, so chains, groups and chords type their results and refuse a step that cannot take
 * the previous result. The `@ts-expect-error` lines fail `npm run typecheck` if a wrong
 * workflow ever starts compiling.
 */
import { afterAll, describe, expectTypeOf, it } from 'vitest';
import {
  AsyncResult,
  Celeriac,
  Chain,
  Chord,
  Group,
  GroupResult,
  Signature,
  chain,
  chord,
  chunks,
  group,
  map,
  starmap,
  type IgnoresParent,
  type ResultOf,
} from 'celeriac';

// Nothing here is sent: every delay() is inside a function that is only type-checked.
const app = new Celeriac({ broker: 'memory://canvas-types', backend: 'memory://canvas-types' });
afterAll(() => app.close());
const add = app.task('types.add', (_ctx, a: number, b: number) => a + b);
const tsum = app.task('types.tsum', (_ctx, numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
const shout = app.task('types.shout', async (_ctx, text: string) => text.toUpperCase());
const join = app.task('types.join', (_ctx, parts: string[]) => parts.join(' '));
const greet = app.task('types.greet', (_ctx, name: string) => `hi ${name}`);

// These workflows are never sent: the function exists only to be type-checked.
function wrongWorkflows(): void {
  // @ts-expect-error a step taking a string after one returning a number
  chain(add.s(1, 2), shout.s());
  // @ts-expect-error the wrong step may come anywhere after the first
  chain(add.s(1, 2), add.s(3), shout.s(), add.s(4));
  // @ts-expect-error a complete signature cannot take the previous result too
  chain(add.s(1, 2), add.s(3, 4));
  // @ts-expect-error a step still lacking two arguments gets only one from its parent
  chain(add.s(1, 2), add.s());
  // @ts-expect-error pipe checks its step the same way
  add.s(1, 2).pipe(shout.s());
  // @ts-expect-error pipe refuses a complete signature too
  add.s(1, 2).pipe(add.s(3, 4));
  // @ts-expect-error and checks against the chain's last result when piped onto a chain
  chain(add.s(1, 2), add.s(3)).pipe(join.s());
  // @ts-expect-error a chord body taking strings after number members
  chord([add.s(1, 1), add.s(2, 2)], join.s());
  // @ts-expect-error a chord body taking one number, not the list of results
  chord([add.s(1, 1), add.s(2, 2)], add.s(1));
  // @ts-expect-error a complete body cannot take the header's results
  chord([add.s(1, 1)], tsum.s([1, 2]));
  // @ts-expect-error a header given as a group is checked the same way
  chord(group(add.s(1, 1), add.s(2, 2)), join.s());
  // @ts-expect-error s() takes a tail of the task's arguments, typed
  add.s('3');
  // @ts-expect-error si() takes all of them
  add.si(1);
  // @ts-expect-error a complete signature is sent with no more arguments
  add.s(1, 2).delay(3);
  // @ts-expect-error a partial one with what it lacks, typed
  add.s(3).delay('1');
  // @ts-expect-error an immutable one ignores any
  add.si(1, 2).delay(3);
  // @ts-expect-error set() takes the call options, camelCase
  add.s(1, 2).set({ countdwn: 5 });
}
void wrongWorkflows;

/** Calls that must compile (once typing bugs, now fixed). */
function optionalAndMixedCalls(): void {
  const greetMaybeLoudly = app.task('types.greet.loud', (_ctx, name: string, loud?: boolean) => (loud ? name.toUpperCase() : name));
  // An optional last parameter may be left out: s('x') is complete.
  greetMaybeLoudly.s('x').delay();
  expectTypeOf(greetMaybeLoudly.s('x')).toEqualTypeOf<Signature<[], string>>();
  // s(true) gives the optional tail; the name is still missing.
  expectTypeOf(greetMaybeLoudly.s(true)).toEqualTypeOf<Signature<[string], string>>();
  // A group of partial and immutable members needs what the partial ones need.
  chain(add.s(1, 2), group(add.s(1), shout.si('x')));
  // @ts-expect-error such a group still needs its partial member's number when sent alone
  group(add.s(1), shout.si('x')).delay();
}
void optionalAndMixedCalls;

describe('signature types', () => {
  it('know what a signature still lacks', () => {
    expectTypeOf(add.s(2, 3)).toEqualTypeOf<Signature<[], number>>();
    expectTypeOf(add.s(3)).toEqualTypeOf<Signature<[number], number>>();
    expectTypeOf(add.s()).toEqualTypeOf<Signature<[number, number], number>>();
    expectTypeOf(add.si(1, 2)).toEqualTypeOf<Signature<IgnoresParent, number>>();
    // Promises are unwrapped, as for delay().
    expectTypeOf(shout.s('x')).toEqualTypeOf<Signature<[], string>>();
  });

  it('send with exactly the arguments they lack', () => {
    expectTypeOf(add.s(2, 3).delay).parameters.toEqualTypeOf<[]>();
    expectTypeOf(add.s(3).delay).parameters.toEqualTypeOf<[number]>();
    expectTypeOf(add.si(1, 2).delay).parameters.toEqualTypeOf<[]>();
    expectTypeOf(add.s(3).delay).returns.toEqualTypeOf<AsyncResult<number>>();
    const sent = async () => add.s(3).delay(1);
    expectTypeOf(sent).returns.resolves.toEqualTypeOf<number>();
  });

  it('keep their types through set, link, linkError and clone', () => {
    expectTypeOf(add.s(3).set({ countdown: 5, queue: 'q' })).toEqualTypeOf<Signature<[number], number>>();
    expectTypeOf(add.s(3).link(tsum.s())).toEqualTypeOf<Signature<[number], number>>();
    expectTypeOf(add.si(1, 2).linkError(greet.si('failed'))).toEqualTypeOf<Signature<IgnoresParent, number>>();
    expectTypeOf(chain(add.s(1, 2), add.s(3)).set({ priority: 1 })).toEqualTypeOf(chain(add.s(1, 2), add.s(3)));
  });

  it("type a task known only by name by the result it names, and fit it anywhere", () => {
    const remote = app.signature<number>('py.add', [1]);
    expectTypeOf<ResultOf<typeof remote>>().toEqualTypeOf<number>();
    const asFirst = async () => chain(remote, add.s(3)).delay();
    expectTypeOf(asFirst).returns.resolves.toEqualTypeOf<number>();
    const asLater = async () => chain(add.s(1, 2), remote).delay();
    expectTypeOf(asLater).returns.resolves.toEqualTypeOf<number>();
    const asMember = async () => group(remote, shout.s('x')).delay();
    expectTypeOf(asMember).returns.resolves.toEqualTypeOf<[number, string]>();
    const asBody = async () => chord([add.s(1, 1)], app.signature<string>('py.report')).delay();
    expectTypeOf(asBody).returns.resolves.toEqualTypeOf<string>();
    const piped = async () => add.s(1, 2).pipe(remote).pipe(add.s(1)).delay();
    expectTypeOf(piped).returns.resolves.toEqualTypeOf<number>();
  });
});

describe('chain types', () => {
  it("await the last step's result", () => {
    const twoSteps = async () => chain(add.s(1, 2), add.s(3)).delay();
    expectTypeOf(twoSteps).returns.resolves.toEqualTypeOf<number>();
    const mixed = async () => chain(add.s(1, 2), add.s(3), app.signature<number[]>('py.range'), tsum.s()).delay();
    expectTypeOf(mixed).returns.resolves.toEqualTypeOf<number>();
    const toString = async () => chain(shout.s('a'), greet.s()).delay();
    expectTypeOf(toString).returns.resolves.toEqualTypeOf<string>();
    expectTypeOf(chain(add.s(1, 2), add.s(3)).delay).returns.toEqualTypeOf<AsyncResult<number>>();
    expectTypeOf(chain(add.s(1, 2), add.s(3))).toExtend<Chain>();
  });

  it('take an immutable step anywhere, whatever came before', () => {
    const later = async () => chain(add.s(1, 2), shout.si('x')).delay();
    expectTypeOf(later).returns.resolves.toEqualTypeOf<string>();
    const between = async () => chain(shout.s('x'), add.si(1, 2), add.s(3)).delay();
    expectTypeOf(between).returns.resolves.toEqualTypeOf<number>();
  });

  it('lack what their first step lacks', () => {
    expectTypeOf(chain(add.s(3), add.s(4)).delay).parameters.toEqualTypeOf<[number]>();
    expectTypeOf(chain(add.s(1, 2), add.s(4)).delay).parameters.toEqualTypeOf<[]>();
    expectTypeOf(chain(add.si(1, 2), add.s(4)).delay).parameters.toEqualTypeOf<[]>();
  });

  it('are built by pipe() with the same types', () => {
    const piped = add.s(1, 2).pipe(add.s(3)).pipe(add.s(4));
    expectTypeOf(piped.delay).returns.toEqualTypeOf<AsyncResult<number>>();
    const toText = async () => add.s(1, 2).pipe(shout.si('x')).pipe(greet.s()).delay();
    expectTypeOf(toText).returns.resolves.toEqualTypeOf<string>();
    expectTypeOf(add.s(3).pipe(add.s(4)).delay).parameters.toEqualTypeOf<[number]>();
  });

  it('take a group as a step and hand its results on as a list', () => {
    const overGroup = async () => chain(add.s(1, 2), group(add.s(1), add.s(2)), tsum.s()).delay();
    expectTypeOf(overGroup).returns.resolves.toEqualTypeOf<number>();
    const endingInGroup = async () => chain(add.s(1, 2), group(add.s(1), add.s(2))).delay();
    expectTypeOf(endingInGroup).returns.resolves.toEqualTypeOf<[number, number]>();
  });
});

describe('group types', () => {
  it("await their members' results in order and return a GroupResult", () => {
    const members = group(add.s(1, 1), shout.s('x'));
    expectTypeOf(members.delay).returns.toEqualTypeOf<GroupResult<[number, string]>>();
    const awaited = async () => group(add.s(1, 1), shout.s('x')).delay();
    expectTypeOf(awaited).returns.resolves.toEqualTypeOf<[number, string]>();
    expectTypeOf(group([add.s(1, 1), add.s(2, 2)] as const).delay).returns.toEqualTypeOf<GroupResult<[number, number]>>();
    expectTypeOf(members).toExtend<Group>();
  });

  it('pass their arguments to every member', () => {
    expectTypeOf(group(add.s(1), add.s(2)).delay).parameters.toEqualTypeOf<[number]>();
    expectTypeOf(group(add.si(1, 1), shout.si('x')).delay).parameters.toEqualTypeOf<[]>();
  });
});

describe('chord types', () => {
  it("await the body's result", () => {
    const summed = async () => chord([add.s(1, 1), add.s(2, 2)], tsum.s()).delay();
    expectTypeOf(summed).returns.resolves.toEqualTypeOf<number>();
    expectTypeOf(chord([add.s(1, 1), add.s(2, 2)], tsum.s()).delay).returns.toEqualTypeOf<AsyncResult<number>>();
    const joined = async () => chord(group(shout.s('a'), greet.s('b')), join.s()).delay();
    expectTypeOf(joined).returns.resolves.toEqualTypeOf<string>();
    const immutableBody = async () => chord([add.s(1, 1)], shout.si('done')).delay();
    expectTypeOf(immutableBody).returns.resolves.toEqualTypeOf<string>();
    expectTypeOf(chord([add.s(1, 1)], tsum.s())).toExtend<Chord>();
  });

  it('chain on after the body', () => {
    const after = async () => chain(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(10)).delay();
    expectTypeOf(after).returns.resolves.toEqualTypeOf<number>();
  });
});

describe('map, starmap and chunks types', () => {
  it('are immutable tasks resolving to the list of results', () => {
    expectTypeOf(map(tsum.s(), [[1], [2, 3]])).toEqualTypeOf<Signature<IgnoresParent, number[]>>();
    expectTypeOf(starmap<number>(add.s(), [[1, 2], [3, 4]])).toEqualTypeOf<Signature<IgnoresParent, number[]>>();
    const mapped = async () => map(shout.s(), ['a', 'b']).delay();
    expectTypeOf(mapped).returns.resolves.toEqualTypeOf<string[]>();
  });

  it('chunks: a group of lists', () => {
    const chunked = chunks<number>(add.s(), [[1, 2], [3, 4], [5, 6]], 2);
    expectTypeOf(chunked).toEqualTypeOf<Group<IgnoresParent, number[][]>>();
    expectTypeOf(chunked.delay).returns.toEqualTypeOf<GroupResult<number[][]>>();
  });
});
