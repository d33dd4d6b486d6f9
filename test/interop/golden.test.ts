/**
 * Golden tests against real Python Celery (Debian's python3-celery, run as /usr/bin/python3):
 * messages Celery publishes decode correctly, and messages we encode are read by Celery's own
 * worker-side code exactly as meant. Exceptions cross both ways.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NotRegistered, TimeLimitExceeded } from '../../src/errors.js';
import { decodeTaskMessage } from '../../src/protocol/decode.js';
import { encodeTaskMessage } from '../../src/protocol/encode.js';
import { deserializeException, serializeException } from '../../src/protocol/exceptions.js';
import { emptyEmbed, type TaskMessage, type TransportMessage } from '../../src/protocol/message.js';

const HERE = fileURLToPath(new URL('./golden/', import.meta.url));
const PYTHON = '/usr/bin/python3';

interface GoldenCase {
  name: string;
  headers: Record<string, unknown>;
  properties: Record<string, unknown>;
  content_type: string;
  content_encoding: string;
  body_base64: string;
  expect: Record<string, unknown>;
}

function python(script: string, input: string, args: string[] = []): string {
  const run = spawnSync(PYTHON, [HERE + script, ...args], { input, encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) throw new Error(`${script} failed (${run.status}): ${run.stderr}`);
  return run.stdout;
}

function toTransport(raw: GoldenCase): TransportMessage {
  return {
    headers: raw.headers,
    properties: raw.properties,
    contentType: raw.content_type,
    contentEncoding: raw.content_encoding,
    body: Buffer.from(raw.body_base64, 'base64'),
  };
}

function checkDecoded(raw: GoldenCase): void {
  const decoded = decodeTaskMessage(toTransport(raw));
  const { expect: want } = raw;
  expect(decoded.id, raw.name).toBe(want['id']);
  expect(decoded.task, raw.name).toBe(want['task']);
  if ('args' in want) expect(decoded.args, raw.name).toEqual(want['args']);
  if ('kwargs' in want) expect(decoded.kwargs, raw.name).toEqual(want['kwargs']);
  if ('retries' in want) expect(decoded.retries, raw.name).toBe(want['retries']);
  if ('timelimit' in want) expect(decoded.timeLimit, raw.name).toEqual(want['timelimit']);
  if ('eta' in want) expect(decoded.eta?.toISOString(), raw.name).toBe(want['eta']);
  if ('expires' in want) expect(decoded.expires?.toISOString(), raw.name).toBe(want['expires']);
  if ('has_eta' in want) expect(decoded.eta, raw.name).toBeInstanceOf(Date);
  if ('priority' in want) expect(decoded.priority, raw.name).toBe(want['priority']);
  if ('group' in want) expect(decoded.group, raw.name).toBe(want['group']);
  if ('group_index' in want) expect(decoded.groupIndex, raw.name).toBe(want['group_index']);
  if ('callbacks' in want) expect(decoded.embed.callbacks?.map((s) => s.task), raw.name).toEqual(want['callbacks']);
  if ('errbacks' in want) expect(decoded.embed.errbacks?.map((s) => s.task), raw.name).toEqual(want['errbacks']);
  if ('chain' in want) expect(decoded.embed.chain?.map((s) => s.task), raw.name).toEqual(want['chain']);
}

describe('messages published by Python Celery 5.2', () => {
  it('decode as Celery meant them (committed fixture)', () => {
    const cases = JSON.parse(readFileSync(HERE + 'messages.json', 'utf8')) as GoldenCase[];
    expect(cases.length).toBeGreaterThanOrEqual(11);
    for (const raw of cases) checkDecoded(raw);
  });

  it('decode as Celery meant them (generated now by the installed Celery)', () => {
    const cases = JSON.parse(python('generate_messages.py', '')) as GoldenCase[];
    const committed = JSON.parse(readFileSync(HERE + 'messages.json', 'utf8')) as GoldenCase[];
    expect(cases.map((c) => c.name)).toEqual(committed.map((c) => c.name));
    for (const raw of cases) checkDecoded(raw);
  });
});

function taskMessage(overrides: Partial<TaskMessage>): TaskMessage {
  return {
    id: 'golden-1',
    task: 'ts.task',
    args: [],
    kwargs: {},
    embed: emptyEmbed(),
    eta: null,
    expires: null,
    retries: 0,
    timeLimit: [null, null],
    rootId: 'golden-1',
    parentId: null,
    group: null,
    groupIndex: null,
    shadow: null,
    origin: 'gen1@test',
    ignoreResult: false,
    replyTo: null,
    priority: null,
    extraHeaders: {},
    ...overrides,
  };
}

interface CeleryView {
  id: string;
  name: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  eta: string | null;
  expires: string | null;
  time_limits: [number | null, number | null];
  retries: number;
  root_id: string;
  parent_id: string | null;
  group: string | null;
  group_index: number | null;
  argsrepr: string;
  kwargsrepr: string;
  callbacks: string[];
  chain: string[];
  correlation_id: string;
}

function celeryReads(messages: TaskMessage[]): CeleryView[] {
  const wire = messages.map(encodeTaskMessage).map((w) => ({
    headers: w.headers,
    properties: w.properties,
    content_type: w.contentType,
    content_encoding: w.contentEncoding,
    body_base64: w.body.toString('base64'),
  }));
  return JSON.parse(python('check_messages.py', JSON.stringify(wire))) as CeleryView[];
}

describe('messages we encode', () => {
  it('are read by Celery\'s worker Request exactly as meant', () => {
    const sig = (task: string) => ({ task, args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false });
    const [full, plain] = celeryReads([
      taskMessage({
        id: 'm-full',
        task: 'ts.full',
        args: [1, 'Zoë ☃', { deep: [true, null, 2.5] }],
        kwargs: { when: new Date('2030-01-02T03:04:05.678Z'), n: 7 },
        eta: new Date('2030-01-02T03:04:05.678Z'),
        expires: new Date('2030-01-03T00:00:00.000Z'),
        retries: 3,
        timeLimit: [10, 5],
        rootId: 'root-1',
        parentId: 'parent-1',
        group: 'group-1',
        groupIndex: 4,
        priority: 6,
        embed: { callbacks: [sig('ts.cb')], errbacks: null, chain: [sig('ts.last'), sig('ts.next')], chord: null },
      }),
      taskMessage({ id: 'm-plain', task: 'ts.plain', args: [2, 3] }),
    ]);
    expect(full).toEqual({
      id: 'm-full',
      name: 'ts.full',
      args: [1, 'Zoë ☃', { deep: [true, null, 2.5] }],
      kwargs: { when: '2030-01-02T03:04:05.678Z', n: 7 },
      eta: '2030-01-02T03:04:05.678000+00:00',
      expires: '2030-01-03T00:00:00+00:00',
      time_limits: [10, 5],
      retries: 3,
      root_id: 'root-1',
      parent_id: 'parent-1',
      group: 'group-1',
      group_index: 4,
      argsrepr: "[1, 'Zoë ☃', {'deep': [True, None, 2.5]}]",
      kwargsrepr: "{'when': '2030-01-02T03:04:05.678Z', 'n': 7}",
      callbacks: ['ts.cb'],
      chain: ['ts.last', 'ts.next'],
      correlation_id: 'm-full',
    });
    expect(plain).toMatchObject({ id: 'm-plain', args: [2, 3], kwargs: {}, eta: null, time_limits: [null, null], root_id: 'golden-1' });
  });

  it('carry argsrepr the way Python itself prints the values', () => {
    const values = [[1, 'a', null, true, false, 1.5, [], {}], { "it's": 'say "hi"', nested: { x: [null] } }];
    const [view] = celeryReads([taskMessage({ args: values[0] as unknown[], kwargs: values[1] as Record<string, unknown> })]);
    const pythonRepr = spawnSync(PYTHON, ['-c', 'import json,sys; a,k=json.load(sys.stdin); print(repr(a)); print(repr(k))'], {
      input: JSON.stringify(values),
      encoding: 'utf8',
    }).stdout.trim().split('\n');
    expect([view!.argsrepr, view!.kwargsrepr]).toEqual(pythonRepr);
  });
});

describe('exceptions across the wire', () => {
  it('are rebuilt by Python from what our workers store', () => {
    const custom = new Error('custom failure');
    custom.name = 'CustomError';
    const dicts = [new TypeError('wrong type'), custom, new NotRegistered('ts.missing'), new TimeLimitExceeded(3)].map(serializeException);
    const rebuilt = JSON.parse(python('check_messages.py', JSON.stringify(dicts), ['exceptions'])) as Array<{ type: string; text: string }>;
    expect(rebuilt.map((e) => e.type)).toEqual(['TypeError', 'CustomError', 'NotRegistered', 'TimeLimitExceeded']);
    expect(rebuilt[0]!.text).toBe('wrong type');
    expect(rebuilt[1]!.text).toBe('custom failure');
    expect(rebuilt[3]!.text).toContain('hard time limit (3s) exceeded');
  });

  it('stored by Python Celery are rebuilt here with their type, module and message', () => {
    const dicts = JSON.parse(python('check_messages.py', JSON.stringify([['ValueError', 'bad value'], ['KeyError', 'k'], ['CustomError', 'c']]), ['prepare'])) as unknown[];
    const errors = dicts.map((d) => deserializeException('t', d, 'Traceback ...'));
    expect(errors.map((e) => [e.excType, e.excModule])).toEqual([
      ['ValueError', 'builtins'],
      ['KeyError', 'builtins'],
      ['CustomError', '__main__'],
    ]);
    expect(errors[0]!.message).toBe('ValueError: bad value');
    expect(errors[0]!.remoteTraceback).toBe('Traceback ...');
  });
});
