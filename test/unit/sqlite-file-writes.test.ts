/**
 * The kernel's reports of writes to a SQLite file's log (file-writes.ts): the writes of one turn
 * make one call, writes to other files of the directory none, and an unsubscribed listener is not
 * called again.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onLogWrite } from '../../src/transports/sqlite/file-writes.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Long enough for the kernel's report of a write to arrive, had there been one. */
const SETTLE_MS = 200;
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

describe('onLogWrite', () => {
  it('calls each listener once for the writes of one turn, only for its own file, until unsubscribed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-log-writes-'));
    dirs.push(dir);
    const path = join(dir, 'a.db');
    const calls = { a: 0, b: 0 };
    const stopA = onLogWrite(path, () => calls.a++);
    const stopB = onLogWrite(join(dir, 'b.db'), () => calls.b++); // the same directory watch serves both
    try {
      // The log does not exist yet: its creation and writes are reported all the same.
      for (let i = 0; i < 5; i++) appendFileSync(`${path}-wal`, 'frame');
      await vi.waitFor(() => expect(calls.a).toBe(1), { timeout: 2000, interval: 5 });
      writeFileSync(join(dir, 'other.txt'), 'not a log');
      await settle();
      expect(calls).toEqual({ a: 1, b: 0 });

      appendFileSync(`${join(dir, 'b.db')}-wal`, 'frame');
      await vi.waitFor(() => expect(calls.b).toBe(1), { timeout: 2000, interval: 5 });

      stopA();
      appendFileSync(`${path}-wal`, 'frame');
      await settle();
      expect(calls.a).toBe(1);
    } finally {
      stopA();
      stopB();
    }
  });
});
