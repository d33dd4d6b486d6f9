/**
 * The per-turn batcher the Redis transport sends its acks, stores, reads and subscriptions
 * through: what is added in one event-loop turn goes out in one call per key.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Batcher } from '../../src/transports/batcher.js';

const redis = new Redis('redis://127.0.0.1:6379/9', { lazyConnect: true });
afterAll(() => redis.quit());

/** The next turn of the event loop (the batcher sends on `setImmediate`). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('sends the items of one turn in one call per key, in the order added; a later turn makes a new call', async () => {
    const calls: Array<[string, string[]]> = [];
    const batcher = new Batcher<string>(async (key, items) => void calls.push([key, [...items]]));
    await Promise.all([batcher.add('a', '1'), batcher.add('b', '2'), batcher.add('a', '3'), batcher.add('a', '4')]);
    expect(calls).toEqual([
      ['a', ['1', '3', '4']],
      ['b', ['2']],
    ]);
    await batcher.add('a', '5');
    expect(calls.slice(2)).toEqual([['a', ['5']]]);
  });

  it('gathers what promise callbacks of the same turn add, not only what is added in one go', async () => {
    const calls: number[][] = [];
    const batcher = new Batcher<number>(async (_key, items) => void calls.push([...items]));
    const added: Array<Promise<void>> = [];
    // As acks come from handlers that finish in one turn: each after its own awaits.
    await Promise.all(
      [1, 2, 3].map(async (n) => {
        for (let i = 0; i < n; i++) await Promise.resolve();
        added.push(batcher.add('k', n));
      }),
    );
    await Promise.all(added);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  it('puts what is added while a call is on its way into the next call', async () => {
    const calls: string[][] = [];
    let release: () => void = () => undefined;
    const batcher = new Batcher<string>((_key, items) => {
      calls.push([...items]);
      return calls.length === 1 ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
    });
    const first = batcher.add('k', 'early');
    await nextTurn();
    expect(calls).toEqual([['early']]);
    const second = batcher.add('k', 'late');
    await nextTurn();
    expect(calls).toEqual([['early'], ['late']]);
    release();
    await Promise.all([first, second]);
  });

  it('hands each add its own item\'s result when asked to (one MGET for the turn\'s reads)', async () => {
    const keys = Array.from({ length: 5 }, (_, i) => `batcher-${randomUUID()}-${i}`);
    await redis.mset(...keys.slice(0, 4).flatMap((key, i) => [key, `value ${i}`]));
    let round = 0;
    const reads = new Batcher<string, string | null>((_key, batch) => (round++, redis.mget(...batch)), true);
    const values = await Promise.all(keys.map((key) => reads.add('', key)));
    expect(values).toEqual(['value 0', 'value 1', 'value 2', 'value 3', null]);
    expect(round).toBe(1);
    await redis.del(...keys);
  });

  it('gives every add of a batch the same promise when the call returns nothing per item', () => {
    const batcher = new Batcher<number>(async () => undefined);
    const [a, b, c] = [batcher.add('k', 1), batcher.add('k', 2), batcher.add('other', 3)];
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    return Promise.all([a, c]);
  });

  it('rejects every add of a failed call, and only those', async () => {
    const batcher = new Batcher<string, string>(async (key, items) => {
      if (key === 'bad') throw new Error(`refused ${items.join(', ')}`);
      return items.map((item) => `ok ${item}`);
    }, true);
    const outcomes = await Promise.allSettled([batcher.add('bad', 'x'), batcher.add('good', 'y'), batcher.add('bad', 'z')]);
    expect(outcomes).toEqual([
      { status: 'rejected', reason: new Error('refused x, z') },
      { status: 'fulfilled', value: 'ok y' },
      { status: 'rejected', reason: new Error('refused x, z') },
    ]);
  });
});
