/** The result backend port's conformance suite, run by every backend through a one-line file. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForReady, type ChordJoin, type ChordPart, type GroupTuple, type ResultBackend, type ResultMeta } from '../../src/backends/backend.js';
import { until } from '../helpers/wait.js';

function meta(taskId: string, status: string, result: unknown = null): ResultMeta {
  return {
    task_id: taskId,
    status,
    result,
    traceback: null,
    children: [],
    date_done: status === 'SUCCESS' || status === 'FAILURE' ? '2026-01-02T03:04:05.000000+00:00' : null,
    name: 'conformance.task',
  };
}

/** A chord member's end, for the join cases. */
function part(groupId: string, taskId: string, groupIndex: number | null, result: unknown = `r-${taskId}`, state = 'SUCCESS'): ChordPart {
  return { groupId, taskId, groupIndex, state, result };
}

/** What a backend's join does beyond the port's promises, and how to look into its store. */
export interface BackendConformanceOptions {
  /**
   * Set when a part repeated with another result counts as a second part (a join that tells
   * repeats apart only when they are identical, as Celery's Redis ZSET does): the reason.
   */
  repeatsWithOtherResultCountTwice?: string;
  /** How many keys or rows of a group's chord join the store still holds. */
  joinLeftovers?: (groupId: string) => Promise<number>;
  /** Set when the store expires entries itself (Redis), so `cleanup()` has nothing to delete. */
  expiresOnItsOwn?: boolean;
}

/**
 * Runs the suite against the backend `open` returns (connected); each call opens another
 * instance on the same store. `openExpiring` opens one whose results expire after one second.
 */
export function describeBackendConformance(
  name: string,
  open: () => Promise<ResultBackend>,
  openExpiring: () => Promise<ResultBackend>,
  options: BackendConformanceOptions = {},
): void {
  describe(`backend conformance: ${name}`, () => {
    let backend: ResultBackend;
    beforeAll(async () => {
      backend = await open();
    });
    afterAll(async () => {
      await backend.close();
    });

    // Dates come back as Date from in-process backends and as ISO strings from serializing ones
    // (kombu JSON writes dates as strings every Celery version reads); both name the same time.
    it('round-trips Celery result meta, including dates and bytes', async () => {
      const id = randomUUID();
      const stored = { ...meta(id, 'SUCCESS', { when: new Date('2026-01-02T03:04:05.000Z'), raw: Buffer.from([0, 255]), n: 1.5 }), group_id: 'g', parent_id: 'p' };
      await backend.store(stored);
      const read = await backend.get(id);
      expect(read?.status).toBe('SUCCESS');
      expect(read?.group_id).toBe('g');
      const result = read?.result as { when: Date | string; raw: Buffer; n: number };
      expect(new Date(result.when).toISOString()).toBe('2026-01-02T03:04:05.000Z');
      expect(Buffer.compare(result.raw, Buffer.from([0, 255]))).toBe(0);
      expect(result.n).toBe(1.5);
    });

    it('returns null for unknown ids, and after forget', async () => {
      expect(await backend.get(randomUUID())).toBeNull();
      const id = randomUUID();
      await backend.store(meta(id, 'SUCCESS', 1));
      await backend.forget(id);
      expect(await backend.get(id)).toBeNull();
    });

    it('never overwrites SUCCESS, but lets other states move on', async () => {
      const id = randomUUID();
      await backend.store(meta(id, 'STARTED'));
      await backend.store(meta(id, 'RETRY', { exc_type: 'X', exc_message: [], exc_module: 'm' }));
      expect((await backend.get(id))?.status).toBe('RETRY');
      await backend.store(meta(id, 'SUCCESS', 'first'));
      await backend.store(meta(id, 'FAILURE', { exc_type: 'Late', exc_message: [], exc_module: 'm' }));
      await backend.store(meta(id, 'SUCCESS', 'second'));
      const read = await backend.get(id);
      expect(read?.status).toBe('SUCCESS');
      expect(read?.result).toBe('first');
    });

    it('tells watchers of each change until they unwatch', async () => {
      const id = randomUUID();
      const seen: string[] = [];
      const unwatch = backend.watch(id, (m) => seen.push(m.status));
      await backend.store(meta(id, 'STARTED'));
      await until(() => seen.includes('STARTED'), 3000);
      await backend.store(meta(id, 'SUCCESS', 1));
      await until(() => seen.includes('SUCCESS'), 3000);
      unwatch();
      const other = randomUUID();
      await backend.store(meta(other, 'SUCCESS'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(seen).toEqual(['STARTED', 'SUCCESS']);
    });

    it('resolves waitForReady on a ready state and rejects it on abort', async () => {
      const id = randomUUID();
      const ready = waitForReady(backend, id);
      await backend.store(meta(id, 'STARTED'));
      await backend.store(meta(id, 'FAILURE', { exc_type: 'ValueError', exc_message: ['bad'], exc_module: 'builtins' }));
      expect((await ready).status).toBe('FAILURE');
      const controller = new AbortController();
      const abandoned = waitForReady(backend, randomUUID(), controller.signal);
      controller.abort(new Error('stop waiting'));
      await expect(abandoned).rejects.toThrow('stop waiting');
      const already = randomUUID();
      await backend.store(meta(already, 'SUCCESS', 7));
      expect((await waitForReady(backend, already)).result).toBe(7);
    });

    it('expires results and saved groups', async () => {
      const expiring = await openExpiring();
      try {
        const id = randomUUID();
        const groupId = randomUUID();
        const unread = randomUUID();
        await expiring.store(meta(id, 'SUCCESS', 1));
        await expiring.store(meta(unread, 'SUCCESS', 2));
        await expiring.saveGroup(groupId, [[groupId, null], [[[id, null], null]]]);
        expect(await expiring.get(id)).not.toBeNull();
        expect(await expiring.restoreGroup(groupId)).not.toBeNull();
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect(await expiring.get(id)).toBeNull();
        expect(await expiring.restoreGroup(groupId)).toBeNull();
        // An expired result nobody read is still there to delete, unless the store expires
        // entries itself.
        const removed = await expiring.cleanup();
        if (options.expiresOnItsOwn) expect(removed).toBe(0);
        else expect(removed).toBeGreaterThanOrEqual(1);
        expect(await expiring.get(unread)).toBeNull();
      } finally {
        await expiring.close();
      }
    });

    it('saves, restores and forgets a group tuple', async () => {
      const groupId = randomUUID();
      const parent: GroupTuple[0] = [randomUUID(), null];
      const tuple: GroupTuple = [[groupId, [parent, null]], [[[randomUUID(), null], null], [[randomUUID(), [parent, null]], null]]];
      expect(await backend.restoreGroup(groupId)).toBeNull();
      await backend.saveGroup(groupId, tuple);
      expect(await backend.restoreGroup(groupId)).toEqual(tuple);
      await backend.forgetGroup(groupId);
      expect(await backend.restoreGroup(groupId)).toBeNull();
    });

    describe('chord join', () => {
      /** The backend's join; the case is skipped, saying so, where it has none. */
      function joinOf(skip: (condition: boolean, note: string) => void): ChordJoin {
        skip(!backend.chords, `${name} has no chord join`);
        return backend.chords!;
      }

      it('completes on exactly the last part, with the parts in header order whatever their arrival', async ({ skip }) => {
        const join = joinOf(skip);
        const groupId = randomUUID();
        await join.setSize(groupId, 5);
        const arrivals = [part(groupId, 't2', 2), part(groupId, 'tnull', null), part(groupId, 't0', 0, { n: [1, 2] }), part(groupId, 't3', 3), part(groupId, 't1', 1, null)];
        const replies: Array<ChordPart[] | null> = [];
        for (const arrival of arrivals) replies.push(await join.addPart(arrival));
        expect(replies.slice(0, 4)).toEqual([null, null, null, null]);
        expect(replies[4]).toEqual([
          part(groupId, 't0', 0, { n: [1, 2] }),
          part(groupId, 't1', 1, null),
          part(groupId, 't2', 2),
          part(groupId, 't3', 3),
          part(groupId, 'tnull', null),
        ]);
      });

      it('hands back FAILURE and REVOKED parts with their exception dicts as stored', async ({ skip }) => {
        const join = joinOf(skip);
        const groupId = randomUUID();
        const failure = { exc_type: 'ValueError', exc_message: ['bad value 7'], exc_module: 'builtins' };
        const revoked = { exc_type: 'TaskRevokedError', exc_message: ['revoked'], exc_module: 'celery.exceptions' };
        await join.setSize(groupId, 3);
        expect(await join.addPart(part(groupId, 'b', 1, failure, 'FAILURE'))).toBeNull();
        expect(await join.addPart(part(groupId, 'c', 2, revoked, 'REVOKED'))).toBeNull();
        expect(await join.addPart(part(groupId, 'a', 0, 4))).toEqual([part(groupId, 'a', 0, 4), part(groupId, 'b', 1, failure, 'FAILURE'), part(groupId, 'c', 2, revoked, 'REVOKED')]);
      });

      it('completes exactly once when parts end concurrently on two instances', async ({ skip }) => {
        const join = joinOf(skip);
        const other = await open();
        try {
          const groupId = randomUUID();
          await join.setSize(groupId, 50);
          const ids = Array.from({ length: 50 }, (_, i) => `t${i}`);
          const replies = await Promise.all(ids.map((id, i) => (i % 2 === 0 ? join : other.chords!).addPart(part(groupId, id, i))));
          const completions = replies.filter((reply) => reply !== null);
          expect(completions).toHaveLength(1);
          expect(completions[0]!.map((p) => p.taskId)).toEqual(ids);
        } finally {
          await other.close();
        }
      });

      it('counts a part recorded twice alike once', async ({ skip }) => {
        const join = joinOf(skip);
        const groupId = randomUUID();
        await join.setSize(groupId, 3);
        expect(await join.addPart(part(groupId, 'a', 0))).toBeNull();
        expect(await join.addPart(part(groupId, 'a', 0))).toBeNull();
        expect(await join.addPart(part(groupId, 'b', 1))).toBeNull();
        expect((await join.addPart(part(groupId, 'c', 2)))?.map((p) => p.taskId)).toEqual(['a', 'b', 'c']);
      });

      it('counts a part repeated with another result once, keeping the later one', async ({ skip }) => {
        const join = joinOf(skip);
        skip(options.repeatsWithOtherResultCountTwice !== undefined, options.repeatsWithOtherResultCountTwice ?? '');
        const groupId = randomUUID();
        const lost = { exc_type: 'WorkerLostError', exc_message: ['lost'], exc_module: 'billiard.exceptions' };
        await join.setSize(groupId, 3);
        expect(await join.addPart(part(groupId, 'a', 0, lost, 'FAILURE'))).toBeNull();
        expect(await join.addPart(part(groupId, 'a', 0, 'again'))).toBeNull();
        expect(await join.addPart(part(groupId, 'b', 1))).toBeNull();
        expect(await join.addPart(part(groupId, 'c', 2))).toEqual([part(groupId, 'a', 0, 'again'), part(groupId, 'b', 1), part(groupId, 'c', 2)]);
      });

      it('deletes the join once complete: the group can join afresh, and a late repeat completes nothing', async ({ skip }) => {
        const join = joinOf(skip);
        const groupId = randomUUID();
        await join.setSize(groupId, 2);
        await join.addPart(part(groupId, 'a', 0));
        expect(await join.addPart(part(groupId, 'b', 1))).toHaveLength(2);
        if (options.joinLeftovers) expect(await options.joinLeftovers(groupId)).toBe(0);
        // Were the first parts still there, the next part alone would complete the join again.
        await join.setSize(groupId, 2);
        expect(await join.addPart(part(groupId, 'c', 0))).toBeNull();
        expect((await join.addPart(part(groupId, 'd', 1)))?.map((p) => p.taskId)).toEqual(['c', 'd']);
        // A redelivered last member, once its join is complete: no size is left to complete it.
        expect(await join.addPart(part(groupId, 'd', 1))).toBeNull();
      });

      it('completes nothing while no size is set', async ({ skip }) => {
        const join = joinOf(skip);
        const groupId = randomUUID();
        expect(await join.addPart(part(groupId, 'a', 0))).toBeNull();
        expect(await join.addPart(part(groupId, 'b', 1))).toBeNull();
      });
    });
  });
}
