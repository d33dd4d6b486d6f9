/** SQLite writes of one event-loop turn share one transaction; a failing write fails only itself. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/transports/sqlite/connection.js';
import { WriteBatcher } from '../../src/transports/sqlite/write-batcher.js';

let dir: string;
let db: Database;
afterEach(() => {
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function setup(): Promise<{ batcher: WriteBatcher; commits: () => number }> {
  dir = mkdtempSync(join(tmpdir(), 'celeriac-batcher-'));
  db = await openDatabase(join(dir, 'b.db'), 'normal');
  db.exec('CREATE TABLE t (v INTEGER NOT NULL UNIQUE)');
  let commits = 0;
  const batcher = new WriteBatcher(() => db, () => commits++);
  return { batcher, commits: () => commits };
}

describe('WriteBatcher', () => {
  it('commits the writes of one turn together and resolves each with its own value', async () => {
    const { batcher, commits } = await setup();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const seen: boolean[] = [];
    const results = await Promise.all([1, 2, 3].map((v) => batcher.enqueue(() => (seen.push(db.inTransaction), insert.run(v).changes))));
    expect(results).toEqual([1, 1, 1]);
    expect(seen).toEqual([true, true, true]);
    expect(commits()).toBe(1);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
  });

  it('retries each write alone when the batch fails, so only the bad one is refused', async () => {
    const { batcher } = await setup();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const outcomes = await Promise.allSettled([1, 1, 2].map((v) => batcher.enqueue(() => insert.run(v))));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE constraint failed/);
    expect(db.prepare('SELECT v FROM t ORDER BY v').all()).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it('drained() resolves once everything queued is committed', async () => {
    const { batcher } = await setup();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    void batcher.enqueue(() => insert.run(7));
    await batcher.drained();
    expect(db.prepare('SELECT v FROM t').all()).toEqual([{ v: 7 }]);
  });

  it('rejects every queued write when there is no database to write to', async () => {
    await setup();
    const closed = new WriteBatcher(() => {
      throw new Error('not connected');
    });
    await expect(Promise.all([closed.enqueue(() => 1), closed.enqueue(() => 2)])).rejects.toThrow('not connected');
  });
});
