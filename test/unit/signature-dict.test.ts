/**
 * Checking untrusted signature dicts (src/canvas/signature-dict.ts): every refusal is a
 * ProtocolError `malformed` naming the exact place in the message, and the embeds Python
 * Celery really publishes for chains and chords pass.
 */
import { describe, expect, it } from 'vitest';
import { ProtocolError, type Embed, type SignatureDict } from '../../src/index.js';
import { MAX_SIGNATURE_DEPTH, MAX_SIGNATURES, checkEmbed, checkSignatureDict } from '../../src/canvas/signature-dict.js';
import { committedSignatures, liveSignatures, type EmbedCase } from '../helpers/golden-signatures.js';

const OWN_ID = 'own-task-id';

function sig(task: string, fields: Partial<SignatureDict> = {}): SignatureDict {
  return { task, args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false, ...fields };
}

function withId(task: string, id: string): SignatureDict {
  return sig(task, { options: { task_id: id } });
}

function container(type: 'chain' | 'group', tasks: unknown[]): SignatureDict {
  return sig(`celery.${type}`, { kwargs: { tasks }, subtask_type: type });
}

function embed(parts: Partial<Embed>): Embed {
  return { callbacks: null, errbacks: null, chain: null, chord: null, ...parts };
}

/**
 * Expects `check` to refuse with a `malformed` ProtocolError whose message names `path`
 * exactly: the path followed by a space or a colon, so a longer path does not pass for it.
 */
function expectRefusal(check: () => unknown, path: string): ProtocolError {
  let caught: unknown;
  try {
    check();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  const error = caught as ProtocolError;
  expect(error.reason).toBe('malformed');
  const escaped = path.replace(/[.[\]]/g, '\\$&');
  expect(error.message).toMatch(new RegExp(`^${escaped}[ :]`));
  return error;
}

/** Signatures nested `levels` deep: chains inside chains around one task. */
function nestedChains(levels: number): SignatureDict {
  let inner = sig('golden.add');
  for (let level = 1; level < levels; level++) inner = container('chain', [inner]);
  return inner;
}

/** The path of the innermost signature of `nestedChains(levels)` checked as `root`. */
function innermostPath(root: string, levels: number): string {
  return root + '.kwargs.tasks[0]'.repeat(levels - 1);
}

describe('checkSignatureDict refuses', () => {
  it('a signature that is not an object', () => {
    expect(expectRefusal(() => checkSignatureDict('golden.add', 'callback'), 'callback').message).toContain('got a string');
    expectRefusal(() => checkSignatureDict(null, 'callback'), 'callback');
    expectRefusal(() => checkSignatureDict([sig('golden.add')], 'callback'), 'callback');
    expectRefusal(() => checkSignatureDict(container('chain', [sig('golden.add'), 42])), 'signature.kwargs.tasks[1]');
  });

  it('a missing or empty task name', () => {
    const { task: _task, ...nameless } = sig('golden.add');
    expectRefusal(() => checkSignatureDict(nameless), 'signature');
    expectRefusal(() => checkSignatureDict(sig('')), 'signature');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { task: 7 as unknown as string })), 'signature');
    expectRefusal(() => checkSignatureDict(container('group', [sig('golden.add'), sig('')])), 'signature.kwargs.tasks[1]');
  });

  it('args that are not a list', () => {
    expectRefusal(() => checkSignatureDict(sig('golden.add', { args: { 0: 1 } as unknown as unknown[] })), 'signature.args');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { args: '1, 2' as unknown as unknown[] })), 'signature.args');
  });

  it('kwargs that are not an object', () => {
    expectRefusal(() => checkSignatureDict(sig('golden.add', { kwargs: [1] as unknown as Record<string, unknown> })), 'signature.kwargs');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { kwargs: 'b=2' as unknown as Record<string, unknown> })), 'signature.kwargs');
  });

  it('options that are not an object', () => {
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: [] as unknown as Record<string, unknown> })), 'signature.options');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: 5 as unknown as Record<string, unknown> })), 'signature.options');
  });

  it('immutable that is not a boolean', () => {
    expectRefusal(() => checkSignatureDict(sig('golden.add', { immutable: 'yes' as unknown as boolean })), 'signature.immutable');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { immutable: 1 as unknown as boolean })), 'signature.immutable');
  });

  it('an unknown subtask_type', () => {
    const error = expectRefusal(() => checkSignatureDict(sig('celery.chain', { subtask_type: 'pipeline' })), 'signature.subtask_type');
    expect(error.message).toContain('"pipeline"');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { subtask_type: 3 as unknown as string })), 'signature.subtask_type');
  });

  it('container members that are not a list', () => {
    expectRefusal(() => checkSignatureDict(sig('celery.chain', { subtask_type: 'chain', kwargs: { tasks: sig('golden.add') } })), 'signature.kwargs.tasks');
    expectRefusal(() => checkSignatureDict(sig('celery.chain', { subtask_type: 'chain' })), 'signature.kwargs.tasks');
    expectRefusal(() => checkSignatureDict(sig('celery.group', { subtask_type: 'group', kwargs: { tasks: 'a,b' } })), 'signature.kwargs.tasks');
    expectRefusal(() => checkSignatureDict(sig('celery.chord', { subtask_type: 'chord', kwargs: { header: 'a', body: sig('golden.tsum') } })), 'signature.kwargs.header');
  });

  it('a bad signature in a chord, a callback or an option that holds signatures', () => {
    const chord = (header: unknown, body: unknown) => sig('celery.chord', { subtask_type: 'chord', kwargs: { kwargs: {}, header, body } });
    expectRefusal(() => checkSignatureDict(chord([sig('golden.add'), sig('golden.add', { args: 1 as unknown as unknown[] })], sig('golden.tsum'))), 'signature.kwargs.header[1].args');
    expectRefusal(() => checkSignatureDict(chord(container('group', [sig('')]), sig('golden.tsum'))), 'signature.kwargs.header.kwargs.tasks[0]');
    expectRefusal(() => checkSignatureDict(chord([sig('golden.add')], 'golden.tsum')), 'signature.kwargs.body');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: { link: [sig('golden.add'), sig('')] } })), 'signature.options.link[1]');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: { link_error: sig('golden.add', { immutable: 0 as unknown as boolean }) } })), 'signature.options.link_error.immutable');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: { chord: [sig('golden.tsum')] } })), 'signature.options.chord');
    expectRefusal(() => checkSignatureDict(sig('golden.add', { options: { chain: sig('golden.add') } })), 'signature.options.chain');
  });

  it(`nesting deeper than ${MAX_SIGNATURE_DEPTH} levels, at the first signature too deep`, () => {
    expect(checkSignatureDict(nestedChains(MAX_SIGNATURE_DEPTH))).toBeTruthy();
    const error = expectRefusal(() => checkSignatureDict(nestedChains(MAX_SIGNATURE_DEPTH + 1)), innermostPath('signature', MAX_SIGNATURE_DEPTH + 1));
    expect(error.message).toContain(`deeper than ${MAX_SIGNATURE_DEPTH}`);
    // Callbacks nest too: a link inside a link inside ... counts each level.
    let linked = sig('golden.add');
    for (let level = 1; level <= MAX_SIGNATURE_DEPTH; level++) linked = sig('golden.add', { options: { link: linked } });
    expectRefusal(() => checkSignatureDict(linked), 'signature' + '.options.link'.repeat(MAX_SIGNATURE_DEPTH));
  });

  it(`more than ${MAX_SIGNATURES} signatures, at the first one over`, () => {
    // The group itself counts: a group of MAX - 1 members is exactly at the limit.
    const members = (count: number) => Array.from({ length: count }, () => sig('golden.add'));
    expect(checkSignatureDict(container('group', members(MAX_SIGNATURES - 1)))).toBeTruthy();
    const error = expectRefusal(() => checkSignatureDict(container('group', members(MAX_SIGNATURES))), `signature.kwargs.tasks[${MAX_SIGNATURES - 1}]`);
    expect(error.message).toContain(`more than ${MAX_SIGNATURES}`);
  });
});

describe('checkEmbed refuses', () => {
  it('a malformed signature anywhere in the embed, naming where', () => {
    expectRefusal(() => checkEmbed(embed({ chain: [sig('golden.add'), 'golden.add' as unknown as SignatureDict] }), OWN_ID), 'embed.chain[1]');
    expectRefusal(() => checkEmbed(embed({ chord: sig('golden.tsum', { kwargs: [] as unknown as Record<string, unknown> }) }), OWN_ID), 'embed.chord.kwargs');
    expectRefusal(() => checkEmbed(embed({ callbacks: [sig('golden.add', { options: { link: [sig('')] } })] }), OWN_ID), 'embed.callbacks[0].options.link[0]');
    expectRefusal(() => checkEmbed(embed({ errbacks: [sig('golden.add'), sig('golden.add', { subtask_type: 'xchain' })] }), OWN_ID), 'embed.errbacks[1].subtask_type');
    expectRefusal(() => checkEmbed(embed({ chain: [container('chain', { 0: sig('golden.add') } as unknown as unknown[])] }), OWN_ID), 'embed.chain[0].kwargs.tasks');
  });

  it('nesting too deep below an embed field', () => {
    const levels = MAX_SIGNATURE_DEPTH + 1;
    expectRefusal(() => checkEmbed(embed({ chain: [nestedChains(levels)] }), OWN_ID), innermostPath('embed.chain[0]', levels));
    expect(() => checkEmbed(embed({ chain: [nestedChains(MAX_SIGNATURE_DEPTH)] }), OWN_ID)).not.toThrow();
  });

  it(`more than ${MAX_SIGNATURES} signatures across the whole embed`, () => {
    const half = Array.from({ length: MAX_SIGNATURES / 2 }, () => sig('golden.add'));
    expect(() => checkEmbed(embed({ chain: half, callbacks: half }), OWN_ID)).not.toThrow();
    expectRefusal(() => checkEmbed(embed({ chain: half, callbacks: [...half, sig('golden.add')] }), OWN_ID), `embed.callbacks[${MAX_SIGNATURES / 2}]`);
  });

  it("a chain step, chord body, callback or errback carrying the message's own id", () => {
    const step = expectRefusal(() => checkEmbed(embed({ chain: [withId('golden.add', 'a'), withId('golden.add', OWN_ID)] }), OWN_ID), 'embed.chain[1]');
    expect(step.message).toContain('already used by the task itself');
    expectRefusal(() => checkEmbed(embed({ chord: withId('golden.tsum', OWN_ID) }), OWN_ID), 'embed.chord');
    const callback = expectRefusal(() => checkEmbed(embed({ callbacks: [withId('golden.add', 'a'), withId('golden.add', OWN_ID)] }), OWN_ID), 'embed.callbacks[1]');
    expect(callback.message).toContain(OWN_ID);
    expectRefusal(() => checkEmbed(embed({ errbacks: [withId('golden.greet', OWN_ID)] }), OWN_ID), 'embed.errbacks[0]');
  });

  it('two chain steps with one id, or a chord body with a chain step\'s id', () => {
    const twice = expectRefusal(() => checkEmbed(embed({ chain: [withId('golden.add', 'x'), withId('golden.add', 'y'), withId('golden.tsum', 'x')] }), OWN_ID), 'embed.chain[2]');
    expect(twice.message).toContain('already used by embed.chain[0]');
    expectRefusal(() => checkEmbed(embed({ chain: [withId('golden.add', 'x')], chord: withId('golden.tsum', 'x') }), OWN_ID), 'embed.chord');
  });
});

describe("Celery's real embeds", () => {
  const cases: Array<[string, () => EmbedCase[]]> = [
    ['committed fixture', () => committedSignatures().embeds],
    ['generated now by the installed Celery', () => liveSignatures().embeds],
  ];
  for (const [source, load] of cases) {
    it(`pass (${source})`, () => {
      const embeds = load();
      expect(embeds.map((e) => e.name)).toEqual(['link and link_error', 'chain', 'chord header member', 'chord in chain', 'chain in chord header', 'chain in group']);
      for (const { name, id, embed: real } of embeds) expect(() => checkEmbed(real, id), name).not.toThrow();
      // They hold what the checks walk: steps, a chord body, a chord inside a chain step.
      const byName = new Map(embeds.map((e) => [e.name, e.embed]));
      expect(byName.get('chain')!.chain).toHaveLength(2);
      expect(byName.get('chord header member')!.chord?.options?.['task_id']).toEqual(expect.any(String));
      expect(byName.get('chord in chain')!.chain![0]!.subtask_type).toBe('chord');
    });
  }

  it("are refused once a step carries the message's own id", () => {
    const real = committedSignatures().embeds.find((e) => e.name === 'chain')!;
    const tampered = structuredClone(real.embed);
    tampered.chain![0]!.options!['task_id'] = real.id;
    expectRefusal(() => checkEmbed(tampered, real.id), 'embed.chain[0]');
    const header = committedSignatures().embeds.find((e) => e.name === 'chord header member')!;
    expectRefusal(() => checkEmbed(header.embed, header.embed.chord!.options!['task_id'] as string), 'embed.chord');
  });
});
