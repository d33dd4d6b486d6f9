/** SQLite writes of one event-loop turn share one transaction; a failing write fails only itself. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
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
    const results = await Promise.all([10, 20, 30].map((v) => batcher.enqueue(() => (seen.push(db.inTransaction), Number(insert.run(v).lastInsertRowid) * 100 + v))));
    expect(results).toEqual([110, 220, 330]);
    expect(seen).toEqual([true, true, true]);
    expect(commits()).toBe(1);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
  });

  it('keeps committing: a write queued once a batch is done gets a batch of its own', async () => {
    const { batcher, commits } = await setup();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const later = await batcher.enqueue(() => insert.run(1)).then(() => batcher.enqueue(() => insert.run(2).changes));
    expect(later).toBe(1);
    expect(commits()).toBe(2);
    expect(db.prepare('SELECT v FROM t ORDER BY v').all()).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it('holds the write lock from the start: a write that reads first is not refused for another connection committing after its read', async () => {
    const { batcher } = await setup();
    const other = new Sqlite(join(dir, 'b.db'), { timeout: 0 }); // as another process: busy at once
    try {
      const othersCommits: string[] = [];
      const written = batcher.enqueue(() => {
        const before = (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
        try {
          other.prepare('INSERT INTO t (v) VALUES (?)').run(1000);
          othersCommits.push('committed');
        } catch (error) {
          othersCommits.push((error as { code?: string }).code ?? String(error));
        }
        db.prepare('INSERT INTO t (v) VALUES (?)').run(before + 1);
        return before;
      });
      // A deferred transaction lets the other connection commit between the read and the write,
      // and then fails the write (SQLITE_BUSY_SNAPSHOT): the batch is run again, on a count read anew.
      await expect(written).resolves.toBe(0);
      expect(othersCommits).toEqual(['SQLITE_BUSY']); // one run, during which the other could not write
    } finally {
      other.close();
    }
  });

  it('retries each write alone when the batch fails, so only the bad one is refused', async () => {
    const { batcher, commits } = await setup();
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const outcomes = await Promise.allSettled([1, 1, 2].map((v) => batcher.enqueue(() => insert.run(v))));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE constraint failed/);
    expect(db.prepare('SELECT v FROM t ORDER BY v').all()).toEqual([{ v: 1 }, { v: 2 }]);
    expect(commits()).toBe(1);
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
    const outcomes = await Promise.allSettled([closed.enqueue(() => 1), closed.enqueue(() => 2)]);
    expect(outcomes).toEqual([
      { status: 'rejected', reason: new Error('not connected') },
      { status: 'rejected', reason: new Error('not connected') },
    ]);
  });

  it('drained() resolves when the writes it waited for were refused for want of a database', async () => {
    dir = mkdtempSync(join(tmpdir(), 'celeriac-batcher-'));
    const closed = new WriteBatcher(() => {
      throw new Error('not connected');
    });
    const refused = closed.enqueue(() => 1).catch(() => 'refused');
    const drained = closed.drained().then(() => 'drained');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1_000));
    expect(await Promise.race([drained, timeout])).toBe('drained');
    expect(await refused).toBe('refused');
  });
});
