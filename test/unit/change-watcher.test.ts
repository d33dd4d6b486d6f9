/**
 * Waiting on the SQLite file must not busy-poll it: while nothing changes, the cross-process
 * watcher backs off to its slowest interval.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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
  it('backs off while the file is quiet, and hears another connection commit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-watch-'));
    dirs.push(dir);
    const path = join(dir, 'w.db');
    const watching = await openDatabase(path);
    const writer = await openDatabase(path);
    writer.exec('CREATE TABLE t (x)');
    const counter = countPragmas(watching);
    let changes = 0;
    const watcher = new ExternalChangeWatcher(watching, () => changes++, 2, 100);
    watcher.start();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // 2, 4, ... 64, then 100 ms steps: about 13 checks in a quiet second, not hundreds.
    expect(counter.count()).toBeLessThan(20);
    writer.prepare('INSERT INTO t VALUES (1)').run();
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(changes).toBe(1);
    watcher.stop();
    watching.close();
    writer.close();
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
