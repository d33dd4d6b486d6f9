/**
 * Waiting on the SQLite file must not busy-poll it: while nothing changes, the cross-process
 * watcher backs off to its slowest interval.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ExternalChangeWatcher, openDatabase, type Database } from '../../src/transports/sqlite/connection.js';
import { Celeriac } from '../../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function countPragmas(db: Database): { count: () => number } {
  let calls = 0;
  const original = db.pragma.bind(db);
  db.pragma = ((...args: Parameters<Database['pragma']>) => {
    calls++;
    return original(...args);
  }) as Database['pragma'];
  return { count: () => calls };
}

describe('ExternalChangeWatcher', () => {
  // Its polls are plain timers: fake time (vitest's timers) moves them, so no real second passes.
  it('backs off while the file is quiet, and hears another connection commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-watch-'));
    dirs.push(dir);
    const path = join(dir, 'w.db');
    const watching = await openDatabase(path);
    const writer = await openDatabase(path);
    writer.exec('CREATE TABLE t (x)');
    const counter = countPragmas(watching);
    let changes = 0;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const watcher = new ExternalChangeWatcher(watching, () => changes++, 2, 100);
      watcher.start();
      vi.advanceTimersByTime(1000);
      // One read to start, then checks at 2, 6, 14, 30, 62 and 126 ms (the wait doubling from
      // 2 ms), then every 100 ms: 15 reads in a quiet second, not hundreds.
      expect(counter.count()).toBe(15);
      expect(changes).toBe(0);
      writer.prepare('INSERT INTO t VALUES (1)').run();
      // The next check, at 1026 ms, hears the commit.
      vi.advanceTimersByTime(25);
      expect(changes).toBe(0);
      vi.advanceTimersByTime(1);
      expect(changes).toBe(1);
      // Having heard a change it polls fast again: the next check comes 2 ms later.
      expect(counter.count()).toBe(16);
      vi.advanceTimersByTime(2);
      expect(counter.count()).toBe(17);
      watcher.stop();
    } finally {
      vi.useRealTimers();
      watching.close();
      writer.close();
    }
  });
});

describe('defaults', () => {
  it('uses the embedded SQLite file for broker and results when nothing is configured', () => {
    const saved = { broker: process.env['CELERIAC_BROKER_URL'], backend: process.env['CELERIAC_RESULT_BACKEND'] };
    delete process.env['CELERIAC_BROKER_URL'];
    delete process.env['CELERIAC_RESULT_BACKEND'];
    try {
      const app = new Celeriac();
      expect(app.brokerUrl).toBe('sqlite://.celeriac/celeriac.db');
      expect(app.backendUrl).toBe('sqlite://.celeriac/celeriac.db');
    } finally {
      if (saved.broker !== undefined) process.env['CELERIAC_BROKER_URL'] = saved.broker;
      if (saved.backend !== undefined) process.env['CELERIAC_RESULT_BACKEND'] = saved.backend;
    }
  });
});
