/** The worker's revoked ids: bounded in count (oldest dropped) and in age, as Celery's are. */
import { describe, expect, it } from 'vitest';
import { RevokedSet } from '../../src/worker/revoked-set.js';

describe('RevokedSet', () => {
  it('forgets ids once they are older than the TTL', () => {
    const set = new RevokedSet(10, 60);
    set.add('a', 1_000);
    expect(set.has('a', 60_999)).toBe(true);
    expect(set.has('a', 61_000)).toBe(false);
    expect(set.ids(61_000)).toEqual([]);
  });

  it('lists only the ids still revoked, in the order they were revoked', () => {
    const set = new RevokedSet(10, 60);
    set.add('old', 1_000);
    set.add('newer', 30_000);
    set.add('newest', 40_000);
    expect(set.ids(60_999)).toEqual(['old', 'newer', 'newest']);
    expect(set.ids(61_000)).toEqual(['newer', 'newest']);
    expect(set.ids(100_000)).toEqual([]);
  });

  it('keeps at most maxSize ids, dropping the oldest, and a re-added id counts as new', () => {
    const set = new RevokedSet(3, 60);
    for (const [i, id] of ['a', 'b', 'c'].entries()) set.add(id, i);
    set.add('a', 10); // refreshed: now the newest
    set.add('d', 11);
    expect(set.ids(12)).toEqual(['c', 'a', 'd']);
    expect(set.has('b', 12)).toBe(false);
  });
});
