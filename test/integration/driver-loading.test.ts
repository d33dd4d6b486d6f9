/** Each transport's driver is loaded only when a URL of its scheme is used. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempSqlite } from '../helpers/cli.js';

function driversLoadedFor(broker: string, backend: string): string[] {
  const run = spawnSync(process.execPath, [join(ROOT, 'test', 'fixtures', 'loaded-drivers.mjs'), broker, backend], { encoding: 'utf8', timeout: 30_000 });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.split('\n').filter(Boolean);
}

describe('driver loading', () => {
  it('loads only the SQLite driver for sqlite://', () => {
    const { url, cleanup } = tempSqlite();
    try {
      expect(driversLoadedFor(url, url)).toEqual(['better-sqlite3']);
    } finally {
      cleanup();
    }
  });

  it('loads only ioredis for redis://', () => {
    expect(driversLoadedFor('redis://127.0.0.1:6379/9', 'redis://127.0.0.1:6379/9')).toEqual(['ioredis']);
  });

  it('loads only amqplib for amqp:// with rpc:// results', () => {
    expect(driversLoadedFor('amqp://guest:guest@127.0.0.1:5672//', 'rpc://')).toEqual(['amqplib']);
  });
});
