/** The result backend port's conformance suite, run by every backend through a one-line file. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForReady, type ResultBackend, type ResultMeta } from '../../src/backends/backend.js';
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

/**
 * Runs the suite against the backend `open` returns (connected). `openExpiring` opens one whose
 * results expire after one second.
 */
export function describeBackendConformance(name: string, open: () => Promise<ResultBackend>, openExpiring: () => Promise<ResultBackend>): void {
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

    it('expires results', async () => {
      const expiring = await openExpiring();
      try {
        const id = randomUUID();
        await expiring.store(meta(id, 'SUCCESS', 1));
        expect(await expiring.get(id)).not.toBeNull();
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect(await expiring.get(id)).toBeNull();
        expect(await expiring.cleanup()).toBeGreaterThanOrEqual(0);
      } finally {
        await expiring.close();
      }
    });
  });
}
