/**
 * The Redis chord join shared with real Python Celery (Debian's python3-celery): members of one
 * chord end on both sides, and exactly one side, the one that ends the last member, has the
 * body: celeriac's join hands back the parts, Celery's `on_chord_part_return` sends the body
 * message (read here off the Python app's broker).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChordJoin, ChordPart, ResultBackend } from '../../src/backends/backend.js';
import { createBackend } from '../../src/backends/index.js';
import { pythonCeleryMissing } from './harness.js';

const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));
const BACKEND = 'redis://127.0.0.1:6379/11';
/** Where Celery sends the bodies it completes; nothing consumes them but this test. */
const PYTHON_BROKER = 'redis://127.0.0.1:6379/13';
const env = { ...process.env, CELERIAC_TEST_BACKEND: BACKEND, CELERIAC_TEST_BROKER: PYTHON_BROKER };

/** Why the Python side cannot run, or null when it can. */
const missing = pythonCeleryMissing();
if (missing) console.warn(`SKIPPED the Redis chord join interop with Python Celery: ${missing}`);

const children: ChildProcess[] = [];

/** Runs a command of chord_join.py; `done` resolves with its stdout once it exits 0. */
function python(...args: string[]): { child: ChildProcess; done: Promise<string> } {
  const child = spawn('/usr/bin/python3', ['chord_join.py', ...args], { cwd: PYTHON_DIR, env });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<string>((resolve, reject) =>
    child.once('exit', (status) => (status === 0 ? resolve(stdout) : reject(new Error(`chord_join.py ${args[0]} exited ${status}:\n${stderr}\n${stdout}`)))),
  );
  return { child, done };
}

/** Resolves once a `race` command has printed `ready`. */
function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('ready\n')) resolve();
    });
  });
}

const part = (groupId: string, taskId: string, groupIndex: number, result: unknown): ChordPart => ({ groupId, taskId, groupIndex, state: 'SUCCESS', result });

describe.skipIf(missing !== null)(`the Redis chord join shared with Python Celery${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let backend: ResultBackend;
  let join: ChordJoin;
  let backendRedis: Redis;
  let brokerRedis: Redis;

  beforeAll(async () => {
    backend = await createBackend(BACKEND);
    await backend.connect();
    join = backend.chords!;
    backendRedis = new Redis(BACKEND);
    brokerRedis = new Redis(PYTHON_BROKER);
  });
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  afterAll(async () => {
    await backend.close();
    await backendRedis.quit();
    await brokerRedis.quit();
  });

  /** How many of the join's three keys Redis still holds. */
  const joinKeys = (groupId: string): Promise<number> => backendRedis.exists(...['.j', '.s', '.t'].map((suffix) => `celery-taskset-meta-${groupId}${suffix}`));

  /** The positional arguments of every body Celery sent to `queue`, taking them off the list. */
  async function bodiesSent(queue: string): Promise<Array<{ task: unknown; args: unknown[] }>> {
    const envelopes = await brokerRedis.lrange(queue, 0, -1);
    await brokerRedis.del(queue);
    return envelopes.map((text) => {
      const envelope = JSON.parse(text) as { body: string; headers: { task: unknown } };
      const [args] = JSON.parse(Buffer.from(envelope.body, 'base64').toString('utf8')) as [unknown[]];
      return { task: envelope.headers.task, args };
    });
  }

  it('a chord whose last member ends in celeriac: the join hands back Python\'s parts and ours, in header order', async () => {
    const groupId = randomUUID();
    const queue = `chord-body-${groupId}`;
    await python('size', groupId, '3').done;
    await python('part', groupId, 'a2', '2', 'SUCCESS', '{"py": [1, 2]}', queue).done;
    await python('part', groupId, 'a0', '0', 'FAILURE', '"bad value 7"', queue).done;

    expect(await join.addPart(part(groupId, 'a1', 1, 'from ts'))).toEqual([
      { groupId, taskId: 'a0', groupIndex: 0, state: 'FAILURE', result: { exc_type: 'ValueError', exc_message: ['bad value 7'], exc_module: 'builtins' } },
      part(groupId, 'a1', 1, 'from ts'),
      part(groupId, 'a2', 2, { py: [1, 2] }),
    ]);
    expect(await joinKeys(groupId)).toBe(0);
    expect(await bodiesSent(queue)).toEqual([]);
  });

  it('a chord whose last member ends in Python: Celery sends the body with our results in order and deletes the join', async () => {
    const groupId = randomUUID();
    const queue = `chord-body-${groupId}`;
    await join.setSize(groupId, 3);
    expect(await join.addPart(part(groupId, 'b2', 2, { ts: true }))).toBeNull();
    expect(await join.addPart(part(groupId, 'b0', 0, 'zero'))).toBeNull();
    await python('part', groupId, 'b1', '1', 'SUCCESS', '1.5', queue).done;

    expect(await bodiesSent(queue)).toEqual([{ task: 'ts.chord_body', args: [['zero', 1.5, { ts: true }]] }]);
    expect(await joinKeys(groupId)).toBe(0);
    // A member of ours redelivered after Python completed the join finds no size: nothing completes.
    expect(await join.addPart(part(groupId, 'b2', 2, { ts: true }))).toBeNull();
  });

  it('members ending on both sides at once complete the chord exactly once', async () => {
    const groupId = randomUUID();
    const queue = `chord-body-${groupId}`;
    const size = 200;
    await join.setSize(groupId, size);
    const racer = python('race', groupId, '1', '2', String(size), queue);
    await ready(racer.child);
    racer.child.stdin!.write('go\n');
    const ours: ChordPart[][] = [];
    for (let index = 0; index < size; index += 2) {
      const parts = await join.addPart(part(groupId, `t${index}`, index, index));
      if (parts) ours.push(parts);
      await sleep(1); // fixed: paces our members to interleave with Python's (about one per millisecond)
    }
    await racer.done;

    const theirs = await bodiesSent(queue);
    const everyIndex = Array.from({ length: size }, (_, i) => i);
    expect(ours.length + theirs.length).toBe(1);
    if (ours.length === 1) expect(ours[0]!.map((p) => p.result)).toEqual(everyIndex);
    else expect(theirs[0]!.args).toEqual([everyIndex]);
    expect(await joinKeys(groupId)).toBe(0);
  });
});
