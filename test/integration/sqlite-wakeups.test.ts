/**
 * Waking across processes on one SQLite file without polling it: a consumer in another process
 * takes a message, and a result waiter hears a result stored by another process, within
 * milliseconds, with `poll_interval` an hour long, so the wake-up can only come from the kernel's
 * report of the write; and while nothing is written, neither checks the file at all. The watch
 * survives a checkpoint that truncates the log, and closing leaves nothing that keeps the process
 * alive. An idle consumer takes what another connection committed in the very turn its watcher
 * notices the commit.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backends/index.js';
import { createBroker } from '../../src/brokers/index.js';
import { onLogWrite } from '../../src/transports/sqlite/file-writes.js';
import { prepareBrokerStatements } from '../../src/transports/sqlite/schema.js';
import type { TransportMessage } from '../../src/protocol/message.js';
import { ROOT, tempSqlite } from '../helpers/cli.js';
import { dataVersionReads } from '../helpers/sqlite-reads.js';
import { until } from '../helpers/wait.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'sqlite-peer.ts');
/** No poll within the test: a wake-up comes from the notification or not at all. */
const NO_POLL = 'poll_interval=3600';
const ROUNDS = 10;
const QUIET_MS = 100;
/** How long a wake-up may take on a loaded machine: far below the poll, and the quiet time of a round. */
const WAKE_MS = 100;
/** A quiet stretch in which a watcher that does not poll reads nothing (or next to nothing). */
const IDLE_MS = 1000;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Peer {
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the next line starting with `prefix`. */
  next(prefix: string): Promise<string>;
  exited: Promise<number | null>;
}

/** Starts the fixture process in `mode`; resolves once it is connected. */
async function peer(...args: string[]): Promise<Peer> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { cwd: ROOT });
  cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const waiting: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  const seen: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const i = waiting.findIndex((w) => line.startsWith(w.prefix));
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(line);
    else seen.push(line);
  });
  const next = (prefix: string): Promise<string> => {
    const i = seen.findIndex((line) => line.startsWith(prefix));
    if (i >= 0) return Promise.resolve(seen.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      waiting.push({ prefix, resolve });
      void exited.then((code) => reject(new Error(`peer exited (${code}) before printing ${prefix}:\n${stderr}`)));
    });
  };
  await next('ready');
  return { child, next, exited };
}

function message(label: string): TransportMessage {
  return { headers: { id: label }, properties: {}, contentType: 'application/json', contentEncoding: 'utf-8', body: Buffer.from('[[], {}, null]') };
}

const median = (samples: number[]): number => [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('waking across processes on one SQLite file', () => {
  it('wakes a consumer in another process on a publish, also after a checkpoint truncates the log, and its close leaves no handle', async () => {
    const sqlite = tempSqlite();
    cleanups.push(sqlite.cleanup);
    const url = `${sqlite.url}?${NO_POLL}`;
    const queue = `q-${randomUUID()}`;
    const broker = await createBroker(url);
    await broker.connect();
    cleanups.push(() => broker.close());
    const consumer = await peer('consume', url, queue);
    const checkpointer = new Sqlite(join(sqlite.dir, 'broker.db'));
    cleanups.push(() => checkpointer.close());

    const latencies: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (round === Math.floor(ROUNDS / 2)) checkpointer.pragma('wal_checkpoint(TRUNCATE)');
      await pause(QUIET_MS);
      const sentAt = performance.now();
      await broker.publish(queue, message(`m${round}`));
      expect(await consumer.next('taken')).toBe(`taken m${round}`);
      latencies.push(performance.now() - sentAt);
    }
    expect(median(latencies), `wake-ups took ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`).toBeLessThan(WAKE_MS);

    await pause(QUIET_MS); // past the checks that follow a write
    consumer.child.stdin.write('reads\n');
    const before = Number((await consumer.next('reads')).split(' ')[1]);
    await pause(IDLE_MS);
    consumer.child.stdin.write('reads\n');
    // Its own heartbeat, committed every 2 s, is a write, and a few checks follow it; a poll
    // backing off to 50 ms, as before, made dozens.
    expect(Number((await consumer.next('reads')).split(' ')[1]) - before).toBeLessThan(10);

    consumer.child.stdin.end();
    await consumer.next('closed');
    const exit = await Promise.race([consumer.exited, pause(5000).then(() => 'still running')]);
    expect(exit).toBe(0);
  });

  it('wakes a result waiter on a result another process stores, and its close leaves no handle', async () => {
    const sqlite = tempSqlite();
    cleanups.push(sqlite.cleanup);
    const url = `${sqlite.url}?${NO_POLL}`;
    const backend = await createBackend(url);
    await backend.connect();
    cleanups.push(() => backend.close());
    const storer = await peer('store', url);

    const latencies: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const taskId = randomUUID();
      const heard = new Promise<void>((resolve) => {
        const unwatch = backend.watch(taskId, () => {
          unwatch();
          resolve();
        });
      });
      await pause(QUIET_MS);
      const sentAt = performance.now();
      storer.child.stdin.write(`${taskId}\n`);
      await heard;
      latencies.push(performance.now() - sentAt);
    }
    expect(median(latencies), `wake-ups took ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`).toBeLessThan(WAKE_MS);

    const unwatch = backend.watch(randomUUID(), () => undefined);
    const reads = dataVersionReads();
    await pause(QUIET_MS);
    const before = reads();
    await pause(IDLE_MS);
    expect(reads() - before).toBe(0);
    unwatch();

    storer.child.stdin.end();
    await storer.next('closed');
    const exit = await Promise.race([storer.exited, pause(5000).then(() => 'still running')]);
    expect(exit).toBe(0);
  });
});

describe('waking on a commit of another connection', () => {
  it('hands the message out in the turn the watcher notices the commit, not a turn later', async () => {
    const sqlite = tempSqlite();
    cleanups.push(sqlite.cleanup);
    const queue = `q-${randomUUID()}`;
    const broker = await createBroker(`${sqlite.url}?${NO_POLL}`);
    await broker.connect();
    cleanups.push(() => broker.close());
    const taken: string[] = [];
    const consumer = await broker.consume([queue], (delivery) => {
      taken.push(String(delivery.message.headers.id));
      void delivery.ack();
    }, { prefetch: 1 });
    cleanups.push(() => consumer.cancel());
    await pause(QUIET_MS); // idle: the consumer's first look found nothing

    // A listener to the log's writes added after the broker's: it runs in the same turn, right
    // after the broker's watcher has read the change.
    const file = join(sqlite.dir, 'broker.db');
    const seenByThen: number[] = [];
    const unlisten = onLogWrite(file, () => seenByThen.push(taken.length));
    cleanups.push(unlisten);
    // Another connection's commit, as another process's would be: nothing in this process
    // announces it, so only the watcher can wake the consumer.
    const other = new Sqlite(file);
    cleanups.push(() => other.close());
    prepareBrokerStatements(other).insert.run(queue, 0, Date.now(), JSON.stringify({ id: 'm1' }), '{}', 'application/json', 'utf-8', Buffer.from('[[], {}, null]'));

    await until(() => taken.length === 1, 5_000, 'the message taken');
    expect(taken).toEqual(['m1']);
    expect(seenByThen[0], `deliveries seen by the listener in each turn: ${seenByThen.join(', ')}`).toBe(1);
  });
});
