/**
 * Waiting on the SQLite file must not busy-poll it: while nothing changes, the cross-process
 * watcher reads the file only every `poll_interval`, and a commit of another connection reaches it
 * through the kernel's report of the write, long before the next poll.
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

async function twoConnections(): Promise<{ path: string; watching: Database; writer: Database }> {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-watch-'));
  dirs.push(dir);
  const path = join(dir, 'w.db');
  const watching = await openDatabase(path);
  const writer = await openDatabase(path);
  writer.exec('CREATE TABLE t (x)');
  return { path, watching, writer };
}

describe('ExternalChangeWatcher', () => {
  // Its poll is a plain timer: fake time (vitest's timers) moves it, so no real second passes.
  it('reads the quiet file once per poll interval, and the poll hears another connection commit', async () => {
    const { path, watching, writer } = await twoConnections();
    const counter = countPragmas(watching);
    let changes = 0;
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      const watcher = new ExternalChangeWatcher(watching, path, () => changes++, 100);
      watcher.start();
      vi.advanceTimersByTime(1000);
      // One read to start, then one every 100 ms: 11 reads in a quiet second, not hundreds.
      expect(counter.count()).toBe(11);
      expect(changes).toBe(0);
      watcher.stop(); // the kernel's report of the write below must not count here
      watcher.start();
      writer.prepare('INSERT INTO t VALUES (1)').run();
      vi.advanceTimersByTime(100);
      expect(changes).toBe(1);
      watcher.stop();
    } finally {
      vi.useRealTimers();
      watching.close();
      writer.close();
    }
  });

  it('hears another connection commit within milliseconds, with the poll an hour away', async () => {
    const { path, watching, writer } = await twoConnections();
    const heard: number[] = [];
    const watcher = new ExternalChangeWatcher(watching, path, () => heard.push(performance.now()), 3_600_000);
    watcher.start();
    try {
      for (let i = 0; i < 5; i++) {
        const committed = performance.now();
        writer.prepare('INSERT INTO t VALUES (?)').run(i);
        await vi.waitFor(() => expect(heard).toHaveLength(i + 1), { timeout: 1000, interval: 1 });
        expect(heard[i]! - committed).toBeLessThan(100);
      }
      // A checkpoint that truncates the log does not lose the watch.
      writer.pragma('wal_checkpoint(TRUNCATE)');
      writer.prepare('INSERT INTO t VALUES (?)').run(99);
      await vi.waitFor(() => expect(heard.length).toBeGreaterThanOrEqual(6), { timeout: 1000, interval: 1 });
    } finally {
      watcher.stop();
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
