import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Broker, CeleryEvent } from '../../src/brokers/broker.js';
import { ROOT } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { describeMonitorConformance } from './monitor-suite.js';
import { openBroker } from './open.js';

const file = join(mkdtempSync(join(tmpdir(), 'celeriac-monitor-')), 'm.db');
/** A connection of its own, as another process would have. */
let other: Sqlite.Database | undefined;
const connection = (): Sqlite.Database => (other ??= new Sqlite(file));
afterAll(() => other?.close());

describeMonitorConformance('sqlite://', () => openBroker(`sqlite://${file}`), {
  // Written by another process: the subscriber finds it by its poll, not by this process's announcement.
  sendMalformedEvent: async (routingKey) => {
    connection().prepare('INSERT INTO celeriac_events (routing_key, body, at) VALUES (?, ?, ?)').run(routingKey, Buffer.from('{"type": not json'), Date.now());
  },
  inboxLeftovers: async ({ routingKey }) => {
    const count = (table: string): number => (connection().prepare(`SELECT count(*) AS n FROM ${table} WHERE routing_key = ?`).get(routingKey) as { n: number }).n;
    return count('celeriac_inboxes') + count('celeriac_replies') > 0;
  },
  replaysCommands: true,
});

describe('sqlite:// event table', () => {
  const brokers: Broker[] = [];
  afterAll(async () => {
    for (const broker of brokers) await broker.close();
  });
  const opened = async (url: string): Promise<Broker> => {
    const broker = await openBroker(url);
    brokers.push(broker);
    return broker;
  };

  it('delivers an event another process wrote (found by the poll, with no announcement here)', async () => {
    const broker = await opened(`sqlite://${file}`);
    const got: CeleryEvent[] = [];
    const marker = randomUUID();
    const subscription = await broker.events!.subscribe((e) => e['marker'] === marker && got.push(e), 'worker.#');
    const sent = { type: 'worker-heartbeat', hostname: 'elsewhere@host', marker };
    connection().prepare('INSERT INTO celeriac_events (routing_key, body, at) VALUES (?, ?, ?)').run('worker.heartbeat', Buffer.from(JSON.stringify(sent)), Date.now());
    await until(() => got.length === 1, 5_000, 'the event');
    expect(got).toEqual([sent]);
    await subscription.cancel();
  });

  it('prunes rows older than event_retention and all but the newest event_max_rows when it writes', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'celeriac-monitor-')), 'retention.db');
    const url = `sqlite://${path}?event_retention=60&event_max_rows=5`;
    const first = await opened(url);
    await Promise.all(Array.from({ length: 20 }, (_, n) => first.events!.publish('worker.heartbeat', { type: 'worker-heartbeat', n }, 'h')));
    const db = new Sqlite(path);
    try {
      const rows = () => db.prepare('SELECT id, at, body FROM celeriac_events ORDER BY id').all() as Array<{ id: number; at: number; body: Buffer }>;
      expect(rows()).toHaveLength(20); // pruned at most once a second: not within the batch
      db.prepare('UPDATE celeriac_events SET at = ? WHERE id = (SELECT MAX(id) FROM celeriac_events)').run(Date.now() - 61_000);
      // Another process (a writer of its own, which has not pruned yet) writes one more.
      const second = await opened(url);
      await second.events!.publish('worker.heartbeat', { type: 'worker-heartbeat', n: 20 }, 'h');
      const left = rows().map((row) => (JSON.parse(row.body.toString()) as { n: number }).n);
      // The newest five by id are 16..20; 19 went for its age.
      expect(left).toEqual([16, 17, 18, 20]);
    } finally {
      db.close();
    }
  });
});

describe('sqlite:// monitoring across processes', () => {
  /** The fixture client in a process of its own; resolves with its first line once it prints it. */
  async function client(url: string, mode: 'events' | 'inbox') {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'sqlite-monitor-client.ts'), url, mode], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await until(() => stdout.includes('\n') || child.exitCode !== null, 20_000, `the ${mode} client to start`);
    return {
      first: stdout.split('\n')[0]!,
      /** Its exit status and second line. */
      finished: async () => ({ status: await exited, stderr, line: stdout.split('\n')[1] ?? '' }),
      running: () => child.exitCode === null,
      kill: () => child.exitCode === null && child.kill('SIGKILL'),
    };
  }

  it('reaches a subscription and an inbox in other processes, which each keep their process alive until closed', async () => {
    const url = `sqlite://${join(mkdtempSync(join(tmpdir(), 'celeriac-monitor-')), 'processes.db')}`;
    const broker = await openBroker(url);
    const [subscriber, asker] = await Promise.all([client(url, 'events'), client(url, 'inbox')]);
    try {
      // A client whose poll timer did not hold its process would have exited by now, unheard.
      await new Promise((resolve) => setTimeout(resolve, 300)); // a window in which both must stay
      expect([subscriber.running(), asker.running()]).toEqual([true, true]);
      await broker.events!.publish('worker.online', { type: 'worker-online', hostname: 'w@h' }, 'w@h');
      await broker.control!.reply!({ exchange: 'reply.celery.pidbox', routingKey: asker.first }, 't-1', { 'w@h': { ok: 'pong' } });
      const [heard, answered] = await Promise.all([subscriber.finished(), asker.finished()]);
      expect(heard.status, heard.stderr).toBe(0);
      expect(JSON.parse(heard.line)).toEqual({ type: 'worker-online', hostname: 'w@h' });
      expect(answered.status, answered.stderr).toBe(0);
      expect(JSON.parse(answered.line)).toEqual({ ticket: 't-1', body: { 'w@h': { ok: 'pong' } } });
    } finally {
      subscriber.kill();
      asker.kill();
      await broker.close();
    }
  });
});
