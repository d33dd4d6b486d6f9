/**
 * SQLite consumers' lock files: another process finds a held lock busy (the consumer lives),
 * the lock of a SIGKILLed holder free (it died), a missing file unknown; the holder's own
 * process finds its lock held without dropping it; release and the sweep's leftover removal
 * take the files away.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsumerLocks } from '../../src/transports/sqlite/consumer-locks.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function brokerPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-locks-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'broker.db');
}

/** A process that holds `id`'s lock (through better-sqlite3, as the broker does) until killed. */
async function holder(path: string, id: string): Promise<{ kill: () => Promise<void> }> {
  const script = `
    const Sqlite = require('better-sqlite3');
    const { mkdirSync } = require('node:fs');
    mkdirSync(${JSON.stringify(`${path}.consumers`)}, { recursive: true });
    const db = new Sqlite(${JSON.stringify(join(`${path}.consumers`, id))}, { timeout: 5000 });
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    process.stdout.write('held\\n');
    setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  cleanups.push(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('held') && resolve());
    child.on('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
  });
  return {
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('ConsumerLocks', () => {
  it('tells a live holder in another process from one SIGKILLed, and a consumer with no lock file', async () => {
    const path = brokerPath();
    const locks = new ConsumerLocks(Sqlite, path);
    const other = await holder(path, 'c1');
    expect(locks.probe('c1')).toBe('alive');
    expect(locks.probe('c1')).toBe('alive'); // a probe does not take the lock away
    expect(locks.probe('nobody')).toBe('unknown');
    await other.kill();
    expect(locks.probe('c1')).toBe('dead');
    locks.remove('c1');
    expect(readdirSync(locks.dir)).toEqual([]);
  });

  it('holds its own lock against other processes and probes of its own, and removes the file on release', async () => {
    const path = brokerPath();
    const locks = new ConsumerLocks(Sqlite, path);
    locks.hold('mine');
    const probeFromHere = new ConsumerLocks(Sqlite, path); // another broker of this process
    expect(probeFromHere.probe('mine')).toBe('alive');
    expect(locks.probe('mine')).toBe('alive');
    // Another process sees it held, even after the probes above opened and closed the file here.
    const script = `
      const Sqlite = require('better-sqlite3');
      const db = new Sqlite(${JSON.stringify(join(locks.dir, 'mine'))}, { fileMustExist: true, timeout: 0 });
      try { db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get(); process.stdout.write('free'); }
      catch (error) { process.stdout.write(error.code); }`;
    const seen = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('exit', () => resolve(out));
    });
    expect(seen).toMatch(/^SQLITE_BUSY/);
    expect(readdirSync(locks.dir)).toEqual(['mine']); // no journal file beside it
    locks.release('mine');
    expect(existsSync(join(locks.dir, 'mine'))).toBe(false);
    expect(probeFromHere.probe('mine')).toBe('unknown');
  });

  it('removes leftover files whose lock is free once past their grace, and never a held one', async () => {
    const path = brokerPath();
    const locks = new ConsumerLocks(Sqlite, path);
    const live = await holder(path, 'live');
    const dead = await holder(path, 'dead');
    await dead.kill();
    locks.hold('own');
    locks.removeLeftovers(new Set());
    expect(readdirSync(locks.dir).sort()).toEqual(['dead', 'live', 'own']); // too young to judge
    const old = new Date(Date.now() - 60_000);
    for (const name of ['dead', 'live', 'own']) utimesSync(join(locks.dir, name), old, old);
    locks.removeLeftovers(new Set());
    expect(readdirSync(locks.dir).sort()).toEqual(['live', 'own']);
    await live.kill();
    locks.removeLeftovers(new Set(['live'])); // a consumer row names it: the sweep decides, not this
    expect(readdirSync(locks.dir).sort()).toEqual(['live', 'own']);
    locks.releaseAll();
    expect(readdirSync(locks.dir)).toEqual(['live']);
  });
});
