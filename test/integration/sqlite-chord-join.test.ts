/**
 * The SQLite chord join across processes: several processes record the parts of one chord in
 * the same file at once, and exactly one of them is handed the completed join.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backends/index.js';
import { ROOT, tempSqlite } from '../helpers/cli.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'chord-parts.ts');
const PROCESSES = 4;
const SIZE = 2000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts a fixture process; `ready` resolves once it has opened the file, `output` with its last line. */
function recorder(url: string, groupId: string, offset: number): { go: () => void; ready: Promise<void>; output: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, groupId, String(offset), String(PROCESSES), String(SIZE)], { cwd: ROOT });
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.startsWith('ready\n')) resolve();
    });
  });
  const output = new Promise<string>((resolve, reject) =>
    child.once('exit', (status) => (status === 0 ? resolve(stdout.trim().split('\n').pop()!) : reject(new Error(`recorder ${offset} exited ${status}:\n${stderr}`)))),
  );
  return { go: () => child.stdin.write('go\n'), ready, output };
}

describe('the SQLite chord join across processes', () => {
  it('hands the completed join to exactly one of several processes recording its parts at once', async () => {
    const sqlite = tempSqlite();
    cleanups.push(sqlite.cleanup);
    const backend = await createBackend(sqlite.url);
    await backend.connect();
    cleanups.push(() => backend.close());
    const groupId = randomUUID();
    await backend.chords!.setSize(groupId, SIZE);

    const recorders = Array.from({ length: PROCESSES }, (_, offset) => recorder(sqlite.url, groupId, offset));
    await Promise.all(recorders.map((r) => r.ready));
    for (const r of recorders) r.go();
    const outputs = (await Promise.all(recorders.map((r) => r.output))).map((line) => JSON.parse(line) as string[] | null);

    const completions = outputs.filter((output) => output !== null);
    expect(completions).toEqual([Array.from({ length: SIZE }, (_, i) => `t${i}`)]);
    const db = new Sqlite(join(sqlite.dir, 'broker.db'), { readonly: true });
    try {
      const rows = db.prepare(`SELECT (SELECT count(*) FROM celeriac_chords) + (SELECT count(*) FROM celeriac_chord_parts) AS n`).get() as { n: number };
      expect(rows.n).toBe(0);
    } finally {
      db.close();
    }
  });
});
