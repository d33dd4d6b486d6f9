/**
 * The beat stores (memory, a SQLite file, real Redis), one suite for all: the lease is held by
 * one process at a time and changes hands only once it lapses or is given up; a writer whose
 * lease was taken over is fenced out (no renewal, no state written); stored entries, pauses and
 * the version every beat polls.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { createBeatStore, type BeatStore } from '../../src/beat/store.js';
import type { StoredEntry } from '../../src/beat/entry.js';

const REDIS = 'redis://127.0.0.1:6379/5';
const dir = mkdtempSync(join(tmpdir(), 'celeriac-beat-store-'));
const inspector = new Redis(REDIS, { lazyConnect: true });
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await inspector.quit();
});

const opened: BeatStore[] = [];
const redisNamespaces: string[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
  for (const namespace of redisNamespaces.splice(0)) {
    const keys = await inspector.keys(`celeriac.beat.${namespace}.*`);
    if (keys.length > 0) await inspector.del(...keys);
  }
});

const LEASE = 400;

const kinds: Array<[string, () => string]> = [
  ['memory', () => `memory://beat-${randomUUID()}`],
  ['sqlite', () => `sqlite://${join(dir, `${randomUUID()}.db`)}`],
  ['redis', () => REDIS],
];

describe.each(kinds)('%s beat store', (_kind, urlFor) => {
  /** `count` connections to one fresh store (its own namespace). */
  async function stores(count: number, namespace = randomUUID()): Promise<BeatStore[]> {
    const url = urlFor();
    const made: BeatStore[] = [];
    for (let i = 0; i < count; i++) {
      const store = await createBeatStore(url, { clock: systemClock, namespace });
      await store.connect();
      opened.push(store);
      made.push(store);
    }
    if (url.startsWith('redis')) redisNamespaces.push(namespace);
    return made;
  }

  const run = (name: string, lastRunAt: number, runs = 1) => ({ name, lastRunAt, runs });

  test('one holder at a time; the lease changes hands once it lapses, with a higher epoch', async () => {
    const [a, b] = await stores(2);
    const first = await a!.acquire('a', LEASE);
    expect(first).toMatchObject({ acquired: true, epoch: 1 });
    const refused = await b!.acquire('b', LEASE);
    expect(refused).toMatchObject({ acquired: false, holder: 'a' });
    expect(refused.acquired === false && refused.expiresInMs).toBeGreaterThan(0);
    expect(refused.acquired === false && refused.expiresInMs).toBeLessThanOrEqual(LEASE);
    expect(await b!.leader()).toMatchObject({ holder: 'a', epoch: 1 });
    await sleep(LEASE + 50);
    const second = await b!.acquire('b', LEASE);
    expect(second).toMatchObject({ acquired: true, epoch: 2 });
    expect(await a!.leader()).toMatchObject({ holder: 'b', epoch: 2 });
  });

  test('renewal keeps the lease past its length; only with the holder token', async () => {
    const [a, b] = await stores(2);
    const grant = await a!.acquire('a', LEASE);
    if (!grant.acquired) throw new Error('not acquired');
    for (let i = 0; i < 4; i++) {
      await sleep(LEASE / 3);
      expect(await a!.renew(grant.token, LEASE)).toBe(true);
    }
    expect(await b!.renew('1.not-the-token', LEASE)).toBe(false);
    expect(await b!.acquire('b', LEASE)).toMatchObject({ acquired: false, holder: 'a' });
  });

  test('a holder whose lease lapsed and was taken is fenced out: no renewal, no state written', async () => {
    const [a, b] = await stores(2);
    const stale = await a!.acquire('a', LEASE);
    if (!stale.acquired) throw new Error('not acquired');
    expect(await a!.recordRuns(stale.token, [run('tick', 1000)])).toBe(true);
    await sleep(LEASE + 50);
    const fresh = await b!.acquire('b', LEASE);
    if (!fresh.acquired) throw new Error('not acquired');
    expect(await a!.renew(stale.token, LEASE)).toBe(false);
    expect(await a!.recordRuns(stale.token, [run('tick', 2000, 2)])).toBe(false);
    expect(await b!.runs()).toEqual([run('tick', 1000)]);
    expect(await b!.recordRuns(fresh.token, [run('tick', 2000, 2)])).toBe(true);
    expect(await a!.runs()).toEqual([run('tick', 2000, 2)]);
    await a!.release(stale.token); // a stale release frees nothing
    expect(await a!.acquire('a', LEASE)).toMatchObject({ acquired: false, holder: 'b' });
  });

  test('a lapsed lease nobody took cannot be renewed either: its holder must take it again', async () => {
    const [a] = await stores(1);
    const grant = await a!.acquire('a', LEASE);
    if (!grant.acquired) throw new Error('not acquired');
    await sleep(LEASE + 50);
    expect(await a!.renew(grant.token, LEASE)).toBe(false);
    expect(await a!.recordRuns(grant.token, [run('tick', 1)])).toBe(false);
    expect(await a!.acquire('a', LEASE)).toMatchObject({ acquired: true, epoch: 2 });
  });

  test('giving the lease up lets another take it at once', async () => {
    const [a, b] = await stores(2);
    const grant = await a!.acquire('a', 60_000);
    if (!grant.acquired) throw new Error('not acquired');
    await a!.release(grant.token);
    expect(await b!.leader()).toBeNull();
    expect(await b!.acquire('b', LEASE)).toMatchObject({ acquired: true, epoch: 2 });
  });

  test('many connections racing for a free lease: exactly one wins', async () => {
    const many = await stores(8);
    const results = await Promise.all(many.map((store, i) => store.acquire(`beat-${i}`, 5_000)));
    expect(results.filter((result) => result.acquired)).toHaveLength(1);
  });

  test('namespaces do not share a lease, runs or entries', async () => {
    const url = urlFor();
    const [x, y] = await Promise.all(
      ['x', 'y'].map(async (suffix) => {
        const namespace = `${randomUUID()}-${suffix}`;
        if (url.startsWith('redis')) redisNamespaces.push(namespace);
        const store = await createBeatStore(url, { clock: systemClock, namespace });
        await store.connect();
        opened.push(store);
        return store;
      }),
    );
    expect(await x!.acquire('x', LEASE)).toMatchObject({ acquired: true });
    expect(await y!.acquire('y', LEASE)).toMatchObject({ acquired: true });
    await x!.putEntry(entry('only-x'));
    expect((await y!.snapshot()).entries).toEqual([]);
  });

  test('stored entries, pauses and the version every beat polls', async () => {
    const [a, b] = await stores(2);
    expect(await a!.version()).toBe(0);
    expect(await a!.putEntry(entry('poll'))).toBe(false);
    expect(await a!.putEntry(entry('nightly'))).toBe(false);
    expect(await b!.version()).toBe(2);
    expect(await a!.putEntry({ ...entry('poll'), schedule: { every: 60 } })).toBe(true);
    expect(await a!.setPaused('nightly', true)).toBe(true);
    expect(await a!.setPaused('nightly', true)).toBe(false);
    expect(await a!.setPaused('code-entry', true)).toBe(true); // an entry in code is paused by name
    const snapshot = await b!.snapshot();
    expect(snapshot.version).toBe(5);
    expect(snapshot.entries.map((e) => [e.name, e.schedule])).toEqual([
      ['nightly', { every: 30 }],
      ['poll', { every: 60 }],
    ]);
    expect([...snapshot.paused].sort()).toEqual(['code-entry', 'nightly']);
    const grant = await a!.acquire('a', 5_000);
    if (!grant.acquired) throw new Error('not acquired');
    await a!.recordRuns(grant.token, [run('nightly', 5), run('poll', 6)]);
    expect(await b!.removeEntry('nightly')).toBe(true);
    expect(await b!.removeEntry('nightly')).toBe(false);
    const after = await a!.snapshot();
    expect(after.entries.map((e) => e.name)).toEqual(['poll']);
    expect(after.paused).toEqual(['code-entry']);
    expect(after.version).toBe(6);
    expect(await a!.runs()).toEqual([run('poll', 6)]);
  });
});

describe('an entry whose stored JSON cannot be read', () => {
  test.each(['sqlite', 'redis'] as const)('%s: is left out and named, the others still load', async (kind) => {
    const namespace = randomUUID();
    const url = kind === 'sqlite' ? `sqlite://${join(dir, `${randomUUID()}.db`)}` : REDIS;
    const store = await createBeatStore(url, { clock: systemClock, namespace });
    await store.connect();
    opened.push(store);
    await store.putEntry(entry('good'));
    if (kind === 'redis') {
      redisNamespaces.push(namespace);
      await inspector.hset(`celeriac.beat.${namespace}.entries`, 'broken', '{"name": "broken", ');
    } else {
      const { default: Sqlite } = await import('better-sqlite3');
      const db = new Sqlite(url.slice('sqlite://'.length));
      db.prepare('INSERT INTO celeriac_beat_entries (ns, name, definition) VALUES (?, ?, ?)').run(namespace, 'broken', 'not json');
      db.close();
    }
    const snapshot = await store.snapshot();
    expect(snapshot.entries.map((e) => e.name)).toEqual(['good']);
    expect(snapshot.unreadable).toEqual(['broken']);
  });
});

function entry(name: string): StoredEntry {
  return { name, task: 'jobs.tick', args: [1], kwargs: {}, options: {}, schedule: { every: 30 }, missed: 'run-once', since: 1000 };
}
