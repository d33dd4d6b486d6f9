/**
 * The beat service on a ManualClock, with real apps on the in-process broker and real stores
 * (memory, and a SQLite file): each run sent once, takeovers and restarts that neither repeat
 * nor skip, missed-run policies, pauses, entries added at run time, DST. No real waiting: time
 * moves in steps of a quarter second.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { Celeriac, ManualClock, createLogger } from '../../src/index.js';
import type { BeatStartOptions } from '../../src/beat/beat.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** Moves the clock forward `ms`, a step at a time, letting each tick finish. */
async function advance(clock: ManualClock, ms: number, step = 250): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await flush();
  }
}

interface Sent {
  id: string;
  task: string;
  entry: string;
  scheduledAt: string;
  args: unknown;
}

/** Takes every message waiting in `queue`. */
async function drain(app: Celeriac, queue = 'celery'): Promise<Sent[]> {
  const broker = await app.broker();
  const sent: Sent[] = [];
  const consumer = await broker.consume(
    [queue],
    (delivery) => {
      const h = delivery.message.headers;
      const [args] = JSON.parse(delivery.message.body.toString()) as [unknown];
      sent.push({ id: String(h['id']), task: String(h['task']), entry: String(h['beat_entry']), scheduledAt: String(h['beat_scheduled_at']), args });
      void delivery.ack();
    },
    { prefetch: 100_000 },
  );
  await flush();
  await consumer.cancel();
  return sent;
}

const T0 = Date.parse('2026-03-01T00:00:00Z');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An app on a shared in-process broker; its beat logs into `lines`. */
function makeApp(clock: ManualClock, brokerName: string, define?: (app: Celeriac) => void): { app: Celeriac; lines: string[]; start: (options?: BeatStartOptions) => Promise<void> } {
  const app = new Celeriac({ broker: `memory://${brokerName}`, backend: `memory://${brokerName}`, clock });
  app.task('jobs.tick', () => 'ok');
  define?.(app);
  const lines: string[] = [];
  cleanups.push(async () => {
    await app.beat.stop();
    await app.close();
  });
  return {
    app,
    lines,
    start: async (options = {}) => {
      await app.broker(); // loaded and connected now, not during a tick on the manual clock
      await app.beat.start({ logger: createLogger('debug', (line) => lines.push(line)), maxInterval: 1, ...options });
      await flush();
    },
  };
}

describe('one beat', () => {
  test('an interval entry is sent once per run, as an ordinary task message with a stable id', async () => {
    const clock = new ManualClock(T0);
    const { app, start } = makeApp(clock, randomUUID(), (a) => a.schedule('tick', { task: 'jobs.tick', args: [1, 'x'], every: 10 }));
    await start();
    await advance(clock, 100_000);
    const sent = await drain(app);
    expect(sent.map((s) => s.scheduledAt)).toEqual(Array.from({ length: 10 }, (_, i) => new Date(T0 + (i + 1) * 10_000).toISOString()));
    expect(new Set(sent.map((s) => s.id)).size).toBe(10);
    expect(sent[0]).toMatchObject({ task: 'jobs.tick', entry: 'tick', args: [1, 'x'] });
    expect(app.beat.service!.isLeader).toBe(true);
  });

  test('a crontab in New York across spring forward: 02:30 runs once on each day, at 03:30 EDT on the day of the jump', async () => {
    const clock = new ManualClock(Date.parse('2026-03-07T00:00:00Z'));
    const { app, start } = makeApp(clock, randomUUID(), (a) => a.schedule('nightly', { task: 'jobs.tick', every: '30 2 * * *', timezone: 'America/New_York' }));
    await start({ lease: 600 }); // renewed every 200 s: the clock moves a minute at a time here
    await advance(clock, 3 * 86_400_000, 60_000);
    expect((await drain(app)).map((s) => s.scheduledAt)).toEqual(['2026-03-07T07:30:00.000Z', '2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z']);
  });

  test('an entry naming a task this app does not define is still sent, with a warning at start-up', async () => {
    const clock = new ManualClock(T0);
    const { app, lines, start } = makeApp(clock, randomUUID(), (a) => a.schedule('py', { task: 'billing.tasks.total', every: 5 }));
    await start();
    expect(lines.join('\n')).toMatch(/entry py names the task billing.tasks.total, which this app does not define; it is sent anyway/);
    await advance(clock, 5_000);
    expect((await drain(app)).map((s) => s.task)).toEqual(['billing.tasks.total']);
  });

  test('a restart within the catch-up window sends every run it owes, each once; nothing twice', async () => {
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const first = makeApp(clock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 }));
    await first.start();
    await advance(clock, 10_000);
    await first.app.beat.stop();
    await advance(clock, 7_000); // no beat for 7 s
    const second = makeApp(clock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 }));
    await second.start();
    await advance(clock, 10_000);
    const times = (await drain(second.app)).map((s) => Date.parse(s.scheduledAt));
    expect(times).toEqual(Array.from({ length: 27 }, (_, i) => T0 + (i + 1) * 1000));
  });

  test.each([
    ['run-once', 1],
    ['skip', 0],
  ] as const)('runs missed while no beat ran follow the entry policy: %s', async (missed, owed) => {
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const define = (a: Celeriac): void => void a.schedule('hourly', { task: 'jobs.tick', every: 3_600, missed });
    const first = makeApp(clock, name, define);
    await first.start();
    await advance(clock, 3_605_000, 5_000);
    await first.app.beat.stop();
    expect(await drain(first.app)).toHaveLength(1);
    clock.advance(5 * 3_600_000 + 55_000); // down for five runs
    const second = makeApp(clock, name, define);
    await second.start();
    await advance(clock, 1_000);
    const sent = await drain(second.app);
    expect(sent).toHaveLength(owed);
    if (owed) expect(sent[0]!.scheduledAt).toBe(new Date(T0 + 6 * 3_600_000).toISOString()); // the latest missed run
    if (missed === 'skip') expect(second.lines.join('\n')).toMatch(/runs due .* were missed .*; skipped/);
    await advance(clock, 3_600_000, 5_000);
    expect((await drain(second.app)).map((s) => s.scheduledAt)).toEqual([new Date(T0 + 7 * 3_600_000).toISOString()]); // on schedule again
  });
});

describe('several beats', () => {
  test('three beats on one store: one leads, every run is sent once', async () => {
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const beats = [0, 1, 2].map(() => makeApp(clock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 })));
    for (const beat of beats) await beat.start();
    await advance(clock, 30_000);
    expect(beats.filter((b) => b.app.beat.service!.isLeader)).toHaveLength(1);
    const times = (await drain(beats[0]!.app)).map((s) => Date.parse(s.scheduledAt));
    expect(times).toEqual(Array.from({ length: 30 }, (_, i) => T0 + (i + 1) * 1000));
  });

  test('a leader cut off from the store is replaced within the lease; no run lost or sent twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-beat-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lock = `sqlite://${join(dir, 'beat.db')}`;
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const beats = [0, 1].map(() => makeApp(clock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 })));
    for (const beat of beats) await beat.start({ lock, lease: 10 });
    await advance(clock, 5_000);
    const leader = beats.find((b) => b.app.beat.service!.isLeader)!;
    const other = beats.find((b) => b !== leader)!;
    await leader.app.beat.service!.store.close(); // the leader can no longer reach the store
    const cut = clock.now();
    while (!other.app.beat.service!.isLeader) await advance(clock, 10, 10);
    expect(clock.now() - cut).toBeLessThanOrEqual(10_020); // the lease, and the clock's 10 ms steps here
    await advance(clock, 15_000);
    expect(leader.app.beat.service!.isLeader).toBe(false);
    const times = (await drain(other.app)).map((s) => Date.parse(s.scheduledAt));
    const due = Math.floor((clock.now() - T0) / 1000);
    expect(times).toEqual(Array.from({ length: due }, (_, i) => T0 + (i + 1) * 1000));
    expect(leader.lines.join('\n')).toMatch(/no longer the leader: the lease lapsed before it could be renewed/);
  });

  test('a leader that stalled past its lease is fenced out when it wakes: it sends nothing the new leader sent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celeriac-beat-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lock = `sqlite://${join(dir, 'beat.db')}`;
    const name = randomUUID();
    // Each process has its own clock: the stalled one's stands still while the other's runs on.
    const stalledClock = new ManualClock(T0);
    const otherClock = new ManualClock(T0);
    const stalled = makeApp(stalledClock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 }));
    await stalled.start({ lock });
    const other = makeApp(otherClock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 }));
    await other.start({ lock });
    for (let i = 0; i < 20; i++) {
      stalledClock.advance(250);
      otherClock.advance(250);
      await flush();
    }
    expect(stalled.app.beat.service!.isLeader).toBe(true);
    await advance(otherClock, 15_000); // the leader is stalled (a long pause) for 15 s
    expect(other.app.beat.service!.isLeader).toBe(true);
    await advance(stalledClock, 3_000); // it wakes, still sure of its lease by its own clock
    const times = (await drain(other.app)).map((s) => Date.parse(s.scheduledAt));
    expect(times).toEqual(Array.from({ length: 20 }, (_, i) => T0 + (i + 1) * 1000)); // none twice, none lost
    expect(stalled.app.beat.service!.isLeader).toBe(false);
    expect(stalled.lines.join('\n')).toMatch(/no longer the leader: another beat holds the lease/);
  });

  test('a beat that stops gives the lease up: another leads within a tick', async () => {
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const beats = [0, 1].map(() => makeApp(clock, name, (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 })));
    for (const beat of beats) await beat.start();
    await advance(clock, 3_000);
    const leader = beats.find((b) => b.app.beat.service!.isLeader)!;
    const other = beats.find((b) => b !== leader)!;
    await leader.app.beat.stop();
    await advance(clock, 1_000);
    expect(other.app.beat.service!.isLeader).toBe(true);
    await advance(clock, 3_000);
    expect((await drain(other.app)).map((s) => Date.parse(s.scheduledAt))).toEqual(Array.from({ length: 7 }, (_, i) => T0 + (i + 1) * 1000));
  });
});

describe('entries changed at run time', () => {
  test('added, changed, paused, resumed and removed entries are seen by every beat within one tick', async () => {
    const clock = new ManualClock(T0);
    const name = randomUUID();
    const beats = [0, 1, 2].map(() => makeApp(clock, name));
    for (const beat of beats) await beat.start();
    const admin = makeApp(clock, name).app;

    expect(await admin.beat.add('poll', { task: 'jobs.tick', args: ['feed'], every: 2 })).toBe('added');
    await advance(clock, 1_000);
    for (const beat of beats) expect(beat.lines.join('\n')).toMatch(/entries changed \(store version 1\): added poll/);
    await advance(clock, 9_000);
    expect((await drain(admin)).map((s) => s.scheduledAt)).toEqual([2, 4, 6, 8, 10].map((s) => new Date(T0 + s * 1000).toISOString()));

    expect(await admin.beat.add('poll', { task: 'jobs.tick', args: ['feed'], every: 5 })).toBe('changed');
    await advance(clock, 1_000);
    for (const beat of beats) expect(beat.lines.join('\n')).toMatch(/changed poll/);
    await advance(clock, 9_000);
    expect((await drain(admin)).map((s) => s.scheduledAt)).toEqual([15, 20].map((s) => new Date(T0 + s * 1000).toISOString()));

    expect(await admin.beat.pause('poll')).toBe(true);
    await advance(clock, 1_000);
    for (const beat of beats) expect(beat.lines.join('\n')).toMatch(/paused poll/);
    await advance(clock, 20_000);
    expect(await drain(admin)).toEqual([]);
    const listed = await admin.beat.list();
    expect(listed).toMatchObject([{ name: 'poll', source: 'store', paused: true, task: 'jobs.tick', description: 'every 5s', runs: 7 }]);

    expect(await admin.beat.resume('poll')).toBe(true);
    await advance(clock, 1_000);
    for (const beat of beats) expect(beat.lines.join('\n')).toMatch(/resumed poll/);
    await advance(clock, 5_000);
    // Runs due while paused were dropped, not sent on resuming.
    expect((await drain(admin)).map((s) => s.scheduledAt)).toEqual([new Date(T0 + 45_000).toISOString()]);

    expect(await admin.beat.remove('poll')).toBe(true);
    await advance(clock, 1_000);
    for (const beat of beats) expect(beat.lines.join('\n')).toMatch(/removed poll/);
    await advance(clock, 20_000);
    expect(await drain(admin)).toEqual([]);
    expect(await admin.beat.list()).toEqual([]);
  });

  test('entries in code can be paused but not removed or replaced from the API', async () => {
    const clock = new ManualClock(T0);
    const { app, start } = makeApp(clock, randomUUID(), (a) => a.schedule('tick', { task: 'jobs.tick', every: 1 }));
    await start();
    await expect(app.beat.remove('tick')).rejects.toThrow(/defined in code; remove it there, or pause it/);
    await expect(app.beat.add('tick', { task: 'x', every: 1 })).rejects.toThrow(/defined in code/);
    await expect(app.beat.pause('nope')).rejects.toThrow(/no schedule entry named "nope"/);
    await expect(app.beat.add('bad', { task: 'x', every: '* * *' })).rejects.toThrow(/schedule "bad": every: crontab "\* \* \*": expected 5 fields/);
    expect(await app.beat.pause('tick')).toBe(true);
    await advance(clock, 5_000);
    expect(await drain(app)).toEqual([]);
  });
});
