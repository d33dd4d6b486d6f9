/** The result backend port's conformance suite, run by every backend through a one-line file. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForReady, type ChordJoin, type ChordPart, type GroupTuple, type ResultBackend, type ResultMeta, type StoreContext } from '../../src/backends/backend.js';
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

/**
 * What a backend does beyond the port's promises, and how to look into its store. A backend that
 * lacks a capability a case needs declares it here, with the reason, and that case is skipped
 * saying so; a backend that works differently (rpc://) declares how, and the cases adapt.
 */
export interface BackendConformanceOptions {
  /**
   * For backends that send each state to the reader's reply queue instead of storing it
   * (rpc://, where `context.replyTo` names the client that sent the task): a reader's reply
   * address, which every store of the suite then names. Unset: stores name no reader, and every
   * instance on the store reads them.
   */
  replyTo?: (reader: ResultBackend) => string;
  /**
   * Set when `get` answers only with the states the backend has heard so far (rpc://): before
   * each read the suite stores a marker through the same writer and waits until it is heard.
   * Such a backend must hear what one writer stores in the order stored.
   */
  eventuallyReadable?: boolean;
  /** Set, with the reason, where the backend saves no groups (saveGroup and restoreGroup refuse). */
  savesNoGroups?: string;
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
 * instance on the same store. `expiring` opens one whose results expire after one second, or is
 * the reason the backend keeps nothing that could expire.
 */
export function describeBackendConformance(
  name: string,
  open: () => Promise<ResultBackend>,
  expiring: (() => Promise<ResultBackend>) | string,
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

    /** What a store names so that `reader` hears it. */
    const to = (reader: ResultBackend): StoreContext | undefined => (options.replyTo ? { replyTo: options.replyTo(reader) } : undefined);
    /** Stores `stored` through `writer` for `reader` (the instance under test unless said). */
    const store = (stored: ResultMeta, writer: ResultBackend = backend, reader: ResultBackend = backend): Promise<void> => writer.store(stored, to(reader));
    /**
     * Resolves once `reader` has heard everything `writer` stored for it so far: at once where
     * stores are readable when they resolve; otherwise once a marker stored after them is heard.
     */
    async function heard(writer: ResultBackend = backend, reader: ResultBackend = backend): Promise<void> {
      if (!options.eventuallyReadable) return;
      const marker = randomUUID();
      await store(meta(marker, 'SUCCESS', 'marker'), writer, reader);
      await until(async () => (await reader.get(marker)) !== null, 5_000, `${name} to hear what was stored`);
      await reader.forget(marker);
    }

    it('says whether it sends states to the reader that asked (repliesToSender) exactly when stores must name that reader', () => {
      expect(backend.repliesToSender === true).toBe(options.replyTo !== undefined);
    });

    // Dates come back as Date from in-process backends and as ISO strings from serializing ones
    // (kombu JSON writes dates as strings every Celery version reads); both name the same time.
    it('round-trips Celery result meta, including dates and bytes', async () => {
      const id = randomUUID();
      const stored = { ...meta(id, 'SUCCESS', { when: new Date('2026-01-02T03:04:05.000Z'), raw: Buffer.from([0, 255]), n: 1.5 }), group_id: 'g', parent_id: 'p' };
      await store(stored);
      await heard();
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
      await store(meta(id, 'SUCCESS', 1));
      await heard();
      expect((await backend.get(id))?.result).toBe(1);
      await backend.forget(id);
      expect(await backend.get(id)).toBeNull();
    });

    it('reads what another instance stored for it (a worker storing what its caller reads)', async () => {
      const worker = await open();
      try {
        const id = randomUUID();
        await store(meta(id, 'STARTED'), worker);
        await store(meta(id, 'SUCCESS', 'from the worker'), worker);
        await heard(worker);
        const read = await backend.get(id);
        expect(read?.status).toBe('SUCCESS');
        expect(read?.result).toBe('from the worker');
      } finally {
        await worker.close();
      }
    });

    it('stores a state that names no reader for every reader, unless it sends states to the reader that asked', async () => {
      const id = randomUUID();
      await backend.store(meta(id, 'SUCCESS', 'nobody asked'));
      await heard();
      if (options.replyTo) expect(await backend.get(id)).toBeNull();
      else expect((await backend.get(id))?.result).toBe('nobody asked');
    });

    it('never overwrites SUCCESS, but lets other states move on', async () => {
      const id = randomUUID();
      await store(meta(id, 'STARTED'));
      await store(meta(id, 'RETRY', { exc_type: 'X', exc_message: [], exc_module: 'm' }));
      await heard();
      expect((await backend.get(id))?.status).toBe('RETRY');
      await store(meta(id, 'SUCCESS', 'first'));
      await store(meta(id, 'FAILURE', { exc_type: 'Late', exc_message: [], exc_module: 'm' }));
      await store(meta(id, 'SUCCESS', 'second'));
      await heard();
      const read = await backend.get(id);
      expect(read?.status).toBe('SUCCESS');
      expect(read?.result).toBe('first');
    });

    it('tells watchers of each change until they unwatch', async () => {
      const id = randomUUID();
      const seen: string[] = [];
      const unwatch = backend.watch(id, (m) => seen.push(m.status));
      // A second watcher stays: once it hears the store made after the unwatch, the first
      // would have heard it too.
      const witnessed: string[] = [];
      const unwatchWitness = backend.watch(id, (m) => witnessed.push(m.status));
      try {
        await store(meta(id, 'STARTED'));
        await until(() => seen.includes('STARTED'), 3000);
        await store(meta(id, 'RETRY', { exc_type: 'X', exc_message: [], exc_module: 'm' }));
        await until(() => seen.includes('RETRY'), 3000);
        unwatch();
        await store(meta(id, 'SUCCESS', 1));
        await until(() => witnessed.includes('SUCCESS'), 3000, `${name} to tell the remaining watcher`);
        expect(seen).toEqual(['STARTED', 'RETRY']);
        expect(witnessed).toEqual(['STARTED', 'RETRY', 'SUCCESS']);
      } finally {
        unwatchWitness();
      }
    });

    it('resolves waitForReady on a ready state and rejects it on abort', async () => {
      const id = randomUUID();
      const ready = waitForReady(backend, id);
      await store(meta(id, 'STARTED'));
      await store(meta(id, 'FAILURE', { exc_type: 'ValueError', exc_message: ['bad'], exc_module: 'builtins' }));
      expect((await ready).status).toBe('FAILURE');
      const controller = new AbortController();
      const abandoned = waitForReady(backend, randomUUID(), controller.signal);
      controller.abort(new Error('stop waiting'));
      await expect(abandoned).rejects.toThrow('stop waiting');
      const already = randomUUID();
      await store(meta(already, 'SUCCESS', 7));
      expect((await waitForReady(backend, already)).result).toBe(7);
    });

    it('expires results and saved groups', async ({ skip }) => {
      const openExpiring = typeof expiring === 'string' ? skip(expiring) : expiring;
      skip(options.savesNoGroups !== undefined, options.savesNoGroups ?? '');
      const instance = await openExpiring();
      try {
        const id = randomUUID();
        const groupId = randomUUID();
        const unread = randomUUID();
        await store(meta(id, 'SUCCESS', 1), instance, instance);
        await store(meta(unread, 'SUCCESS', 2), instance, instance);
        await instance.saveGroup(groupId, [[groupId, null], [[[id, null], null]]]);
        expect(await instance.get(id)).not.toBeNull();
        expect(await instance.restoreGroup(groupId)).not.toBeNull();
        // The group was saved last, so it expires last.
        await until(async () => (await instance.get(id)) === null && (await instance.restoreGroup(groupId)) === null, 5_000, `${name} to expire a result and a group after 1 s`);
        // An expired result nobody read is still there to delete, unless the store expires
        // entries itself.
        const removed = await instance.cleanup();
        if (options.expiresOnItsOwn) expect(removed).toBe(0);
        else expect(removed).toBeGreaterThanOrEqual(1);
        expect(await instance.get(unread)).toBeNull();
      } finally {
        await instance.close();
      }
    });

    it('saves, restores and forgets a group tuple', async ({ skip }) => {
      skip(options.savesNoGroups !== undefined, options.savesNoGroups ?? '');
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
