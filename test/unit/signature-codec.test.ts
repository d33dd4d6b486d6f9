/**
 * Golden tests of the signature codec against Python Celery 5.2: for each canvas construction
 * in test/interop/golden/signatures.json, celeriac's equivalent writes exactly the dict Celery
 * writes, reads Celery's dict back into the right class without losing a field, and what it
 * writes is rebuilt by Celery's own canvas code as the same signature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, Chain, Chord, Group, Signature, chain, chord, chunks, group, map, starmap, type AnySignature, type SignatureDict } from '../../src/index.js';
import { fromDict } from '../../src/canvas/signature.js';
import { encodeJson, parseIsoDate } from '../../src/protocol/kombu-json.js';
import { celeryReads, committedSignatures, liveSignatures, type CeleryView } from '../helpers/golden-signatures.js';

const app = new Celeriac({ broker: 'memory://signature-codec', backend: 'memory://signature-codec' });
afterAll(() => app.close());

const add = app.task('golden.add', (_ctx, a: number, b: number) => a + b);
const tsum = app.task('golden.tsum', (_ctx, numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
const greet = app.task('golden.greet', (_ctx, name: string, excited?: boolean) => `hi ${name}${excited ? '!' : ''}`);

/** The celeriac construction of each golden case, by case name (the fixture's `celeriac`). */
const BUILDERS: Record<string, () => AnySignature> = {
  partial: () => add.s(3),
  complete: () => add.s(2, 3),
  immutable: () => add.si(1, 2),
  kwargs: () => app.signature('golden.add', [1], { b: 2 }),
  'by name with options': () => app.signature('py.only.here', [1], { k: 'v' }, { queue: 'elsewhere' }),
  'set options': () => add.s(1, 2).set({ countdown: 5, queue: 'q', priority: 3, expires: 10 }),
  'set expires date': () => add.s(1, 2).set({ expires: new Date('2030-01-02T03:04:05.678Z') }),
  'link and link_error': () => add.s(1, 2).link(add.s(10)).linkError(greet.si('failed')),
  chain: () => chain(add.s(1, 2), add.s(3)),
  pipe: () => add.s(1, 2).pipe(add.s(3)),
  'pipe onto chain': () => add.s(1, 2).pipe(add.s(3)).pipe(add.s(4)),
  group: () => group(add.s(1, 1), greet.s('x')),
  chord: () => chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
  'chord with group header': () => chord(group(add.s(1, 1), add.s(2, 2)), tsum.s()),
  'chain with group then step': () => chain(add.s(1, 2), chord([add.s(1), add.s(2)], tsum.s())),
  'chain ending in group': () => chain(add.s(1, 2), group(add.s(1), add.s(2))),
  'chain in group': () => group(chain(add.s(1, 2), add.s(3)), add.s(4, 4)),
  map: () => map(add.s(), [[1, 2], [3, 4]]),
  xmap: () => map(tsum.s(), [[1], [2, 3]]),
  starmap: () => starmap(add.s(), [[1, 2], [3, 4]]),
  chunks: () => chunks(add.s(), [[1, 2], [3, 4], [5, 6]], 2),
};

/**
 * The one legitimate difference in what the two sides write: a date option. kombu writes
 * microseconds (`…05.678000Z`), JavaScript milliseconds (a `Date`, `…05.678Z` once encoded);
 * both name the same instant and each side parses the other's. Only `eta`/`expires` change.
 */
function sameInstants<D extends { options?: Readonly<Record<string, unknown>> }>(dict: D): D {
  const options = { ...dict.options };
  for (const key of ['eta', 'expires']) {
    const value = options[key];
    if (value instanceof Date) options[key] = value.toISOString();
    else if (typeof value === 'string') options[key] = parseIsoDate(value)?.toISOString() ?? value;
  }
  return { ...dict, options };
}

/** The class a Celery dict must come back as, checked down through every member. */
function expectClasses(signature: AnySignature, dict: SignatureDict, path: string): void {
  const expected = { chain: Chain, group: Group, chord: Chord }[dict.subtask_type ?? ''] ?? Signature;
  expect(signature.constructor, path).toBe(expected);
  const kwargs = dict.kwargs ?? {};
  if (signature instanceof Chain || signature instanceof Group) {
    const tasks = kwargs['tasks'] as SignatureDict[];
    expect(signature.tasks, path).toHaveLength(tasks.length);
    signature.tasks.forEach((task, i) => expectClasses(task, tasks[i]!, `${path}.tasks[${i}]`));
  }
  if (signature instanceof Chord) {
    const header = kwargs['header'] as SignatureDict[];
    expect(signature.header, path).toHaveLength(header.length);
    signature.header.forEach((task, i) => expectClasses(task, header[i]!, `${path}.header[${i}]`));
    expectClasses(signature.body, kwargs['body'] as SignatureDict, `${path}.body`);
  }
}

/** The name of the class Celery's `maybe_signature` picks for each of ours. */
function celeryClassOf(signature: AnySignature): string {
  if (signature instanceof Chain) return '_chain';
  if (signature instanceof Group) return 'group';
  if (signature instanceof Chord) return '_chord';
  return 'Signature';
}

function membersOf(signature: AnySignature): CeleryView['members'] {
  if (signature instanceof Chain || signature instanceof Group) return signature.tasks.map((task) => task.task);
  if (signature instanceof Chord) return { header: signature.header.map((task) => task.task), body: signature.body.task };
  return null;
}

const golden = committedSignatures();
const built = golden.signatures.filter((c) => c.celeriac !== null);

describe('the golden fixture', () => {
  it('names a celeriac construction for every case, and every construction has a case', () => {
    expect(built.map((c) => c.name).sort()).toEqual(Object.keys(BUILDERS).sort());
    expect(golden.signatures.length).toBeGreaterThan(built.length);
  });

  it('is what the installed Celery generates now', () => {
    // Signature dicts carry no ids until frozen, so the committed ones must match exactly.
    expect(liveSignatures().signatures).toEqual(golden.signatures);
  });
});

describe('signatures celeriac writes', () => {
  for (const { name, celeriac, dict } of built) {
    it(`${name}: ${celeriac} writes Celery's dict`, () => {
      expect(sameInstants(BUILDERS[name]!().toDict())).toStrictEqual(sameInstants(dict));
    });
  }
});

describe("signatures read from Celery's dicts", () => {
  for (const { name, dict } of golden.signatures) {
    it(`${name}: round-trips as the right class`, () => {
      const signature = fromDict(structuredClone(dict));
      expect(signature.toDict()).toStrictEqual(dict);
      expectClasses(signature, dict, name);
    });
  }

  it('are bound to the app that reads them', () => {
    const dict = golden.signatures.find((c) => c.name === 'chain')!.dict;
    const signature = app.signatureFromDict(dict);
    expect(signature.boundHost).toBe(app);
    expect(fromDict(dict).boundHost).toBeUndefined();
  });
});

describe('signatures Celery reads from celeriac', () => {
  const ours = built.map((c) => BUILDERS[c.name]!());
  /** What Celery rebuilds from ours, and from its own dict of the same case. */
  let views: Array<{ view: CeleryView; reference: CeleryView }> = [];
  beforeAll(() => {
    // One Python run: our dicts as our encoder writes them, then Celery's own, case by case.
    const read = celeryReads(encodeJson([...ours.map((s) => s.toDict()), ...built.map((c) => c.dict)]));
    views = ours.map((_, i) => ({ view: read[i]!, reference: read[ours.length + i]! }));
  });

  built.forEach(({ name }, i) => {
    it(`${name}: Celery rebuilds ours as it rebuilds its own`, () => {
      const signature = ours[i]!;
      const { view, reference } = views[i]!;
      expect(view.type).toBe(celeryClassOf(signature));
      expect(view.task).toBe(signature.task);
      expect(view.args).toEqual(signature.args);
      expect(view.immutable).toBe(signature.immutable);
      expect(view.members).toEqual(membersOf(signature));
      // The steps Celery sends for a chain: the same for ours as for its own, known
      // differences included (a nested chain is spliced, a group then a step becomes a chord).
      expect(view.steps).toEqual(reference.steps);
      expect(sameInstants(view)).toEqual(sameInstants(reference));
    });
  });

  it('prepares a chain holding a group and then a step as Celery prepares its own', () => {
    // Celery upgrades the group to a chord when the chain is built, celeriac when it is sent;
    // a Python worker handed our unupgraded dict does the upgrade itself.
    const unupgraded = chain(add.s(1, 2), group(add.s(1), add.s(2)), tsum.s());
    expect(unupgraded.tasks.map((task) => task.task)).toEqual(['golden.add', 'celery.group', 'golden.tsum']);
    const reference = golden.signatures.find((c) => c.name === 'chain with group then step')!.dict;
    const [view, own] = celeryReads(encodeJson([unupgraded.toDict(), reference]));
    expect(view!.steps).toEqual(['Signature:golden.add', '_chord:celery.chord']);
    expect(view!.steps).toEqual(own!.steps);
  });
});
