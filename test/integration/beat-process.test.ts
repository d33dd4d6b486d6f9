/**
 * Beat in real processes (`celeriac beat`, `celeriac worker -B`), on a SQLite file and on real
 * Redis: three beats, the leader SIGKILLed twice during sixty one-second runs, and every run
 * found in the queue exactly once; a change made with `celeriac beat add|pause|resume|remove`
 * seen by every beat within one tick; the CLI's listings and refusals.
 *
 * Needs a build (`npx tsc -p tsconfig.build.json`): bin/celeriac.js runs dist.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { drainQueue, runCliAsync, startCli, type CliProcess } from '../helpers/beat.js';
import { ROOT, tempSqlite } from '../helpers/cli.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'beat-tasks.ts');
const REDIS = 'redis://127.0.0.1:6379/5';
const inspector = new Redis(REDIS, { lazyConnect: true });
const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await inspector.quit();
});

/** A fresh store: a SQLite file, or a namespace on the shared Redis. */
function freshStore(kind: 'sqlite' | 'redis'): { url: string; args: string[] } {
  if (kind === 'sqlite') {
    const sqlite = tempSqlite();
    cleanups.push(sqlite.cleanup);
    return { url: sqlite.url, args: [] };
  }
  const namespace = randomUUID();
  cleanups.push(async () => {
    const keys = await inspector.keys(`celeriac.beat.${namespace}.*`);
    if (keys.length > 0) await inspector.del(...keys);
  });
  return { url: REDIS, args: ['--namespace', namespace] };
}

function startBeats(count: number, url: string, extraArgs: string[], env: NodeJS.ProcessEnv): CliProcess[] {
  const beats = Array.from({ length: count }, () => startCli(['beat', '-A', FIXTURE, '--broker', url, ...extraArgs], env));
  cleanups.push(() => Promise.all(beats.map((beat) => beat.kill())).then(() => undefined));
  return beats;
}

/** The beat among `beats` that logs taking the lease at or after `since`, and when. */
function nextLeader(beats: CliProcess[], since: number, timeoutMs: number): Promise<{ beat: CliProcess; at: number }> {
  return Promise.any(beats.map((beat) => beat.waitFor('beat: leader now', { since, timeoutMs }).then((at) => ({ beat, at }))));
}

describe.concurrent('three beat processes, the leader SIGKILLed twice during 60 one-second runs', () => {
  test.each(['sqlite', 'redis'] as const)('%s: every run is sent exactly once, and each takeover comes within the lease (10 s)', async (kind) => {
    const { url, args } = freshStore(kind);
    const queue = `beat-${randomUUID()}`;
    let alive = startBeats(3, url, args, { BEAT_QUEUE: queue, BEAT_EVERY: '1' });
    let { beat: leader } = await nextLeader(alive, 0, 40_000);
    const firstRun = await leader.waitFor(/beat: sent tick/, { timeoutMs: 10_000 });

    const takeovers: number[] = [];
    for (const runFor of [12_000, 14_000]) {
      await sleep(runFor + Math.random() * 1_000); // at no particular moment within a run
      const killedAt = Date.now();
      await leader.kill();
      alive = alive.filter((beat) => beat !== leader);
      const next = await nextLeader(alive, killedAt, 15_000);
      takeovers.push(next.at - killedAt);
      leader = next.beat;
    }
    // Until 60 runs are due, and the leader has sent the last of them.
    await sleep(Math.max(0, firstRun + 60_000 - Date.now()));
    await leader.waitFor(/beat: sent tick/, { since: Date.now(), timeoutMs: 5_000 });
    await Promise.all(alive.map((beat) => beat.stop()));

    const sent = await drainQueue(url, queue);
    const times = sent.map((message) => message.scheduledAt).sort((a, b) => a - b);
    expect(sent.length).toBeGreaterThanOrEqual(60);
    expect(new Set(times).size).toBe(sent.length); // none twice
    expect(new Set(sent.map((message) => message.id)).size).toBe(sent.length);
    const gaps = times.slice(1).map((time, i) => time - times[i]!).filter((step) => step !== 1_000);
    expect(gaps).toEqual([]); // none lost
    expect(sent.every((message) => message.task === 'beatfx.tick' && message.entry === 'tick')).toBe(true);
    for (const takeover of takeovers) expect(takeover).toBeLessThanOrEqual(10_500);
  }, 150_000);
});

describe.each(['sqlite', 'redis'] as const)('%s: entries changed from the CLI', (kind) => {
  test('every beat sees an add, pause, resume and remove within one tick, and the leader sends the entry', async () => {
    const { url, args } = freshStore(kind);
    const queue = `beat-${randomUUID()}`;
    const beats = startBeats(3, url, args, { BEAT_QUEUE: queue, BEAT_EVERY: '3600' });
    await nextLeader(beats, 0, 40_000);
    await Promise.all(beats.map((beat) => beat.waitFor(/beat: 1 entr/)));

    const admin = (...command: string[]) => runCliAsync(['beat', ...command, '--broker', url, ...args]);
    const seenBy = async (change: RegExp, endedAt: number): Promise<void> => {
      const seen = await Promise.all(beats.map((beat) => beat.waitFor(change, { since: endedAt - 5_000, timeoutMs: 5_000 })));
      // One tick is a second at most (the change was in the store before the command ended),
      // plus the time to print and read a log line on a busy machine.
      for (const at of seen) expect(at - endedAt).toBeLessThanOrEqual(1_500);
    };

    const added = await admin('add', 'poll', 'beatfx.tick', '["x"]', '--every', '1', '--queue', queue);
    expect(added).toMatchObject({ status: 0, stdout: 'added poll\n' });
    await seenBy(/entries changed .*: added poll/, added.endedAt);
    await sleep(3_500);

    const paused = await admin('pause', 'poll');
    expect(paused).toMatchObject({ status: 0, stdout: 'paused poll\n' });
    await seenBy(/entries changed .*: paused poll/, paused.endedAt);
    await sleep(500); // a tick in progress when the pause landed may still send
    const beforePause = (await drainQueue(url, queue)).filter((message) => message.entry === 'poll');
    expect(beforePause.length).toBeGreaterThanOrEqual(3);
    await sleep(2_500);
    expect(await drainQueue(url, queue)).toEqual([]); // nothing while paused

    const resumed = await admin('resume', 'poll');
    expect(resumed).toMatchObject({ status: 0, stdout: 'resumed poll\n' });
    await seenBy(/entries changed .*: resumed poll/, resumed.endedAt);
    await sleep(2_500);
    const removed = await admin('remove', 'poll');
    expect(removed).toMatchObject({ status: 0, stdout: 'removed poll\n' });
    await seenBy(/entries changed .*: removed poll/, removed.endedAt);
    const afterResume = (await drainQueue(url, queue)).filter((message) => message.entry === 'poll');
    expect(afterResume.length).toBeGreaterThanOrEqual(1);
    const all = [...beforePause, ...afterResume].map((message) => message.scheduledAt);
    expect(new Set(all).size).toBe(all.length);
    await Promise.all(beats.map((beat) => beat.stop()));
  }, 90_000);
});

describe('the beat CLI', () => {
  test('list, add, change, pause, resume and remove; refusals that say what was wrong', async () => {
    const { url } = freshStore('sqlite');
    const beat = (...command: string[]) => runCliAsync(['beat', ...command, '--broker', url]);

    expect((await beat('list')).stdout).toMatch(/no entries/);
    expect(await beat('add', 'poll', 'feeds.poll', '["a", 1]', '--every', '5', '--queue', 'feeds', '--priority', '3')).toMatchObject({ status: 0, stdout: 'added poll\n' });
    expect(await beat('add', 'nightly', 'reports.build', '--cron', '30 2 * * mon-fri', '--timezone', 'Europe/Paris', '--missed', 'skip')).toMatchObject({ status: 0 });
    expect(await beat('add', 'poll', 'feeds.poll', '--every', '10')).toMatchObject({ status: 0, stdout: 'changed poll\n' });
    expect(await beat('pause', 'nightly')).toMatchObject({ status: 0, stdout: 'paused nightly\n' });
    expect(await beat('pause', 'nightly')).toMatchObject({ status: 0, stdout: 'nightly was already paused\n' });

    const table = (await beat('list')).stdout;
    expect(table).toMatch(/leader: none/);
    expect(table).toMatch(/nightly\s+store\s+reports\.build\s+cron 30 2 \* \* mon-fri \(Europe\/Paris\)\s+paused/);
    expect(table).toMatch(/poll\s+store\s+feeds\.poll\s+every 10s\s+active/);
    const listed = JSON.parse((await beat('list', '--json')).stdout) as { entries: Array<Record<string, unknown>> };
    expect(listed.entries.map((entry) => [entry['name'], entry['schedule'], entry['paused'], entry['missed']])).toEqual([
      ['nightly', { cron: '30 2 * * mon-fri', timezone: 'Europe/Paris' }, true, 'skip'],
      ['poll', { every: 10 }, false, 'run-once'],
    ]);

    const withCode = JSON.parse((await beat('list', '--json', '-A', FIXTURE)).stdout) as { entries: Array<Record<string, unknown>> };
    expect(withCode.entries.find((entry) => entry['name'] === 'tick')).toMatchObject({ source: 'code', task: 'beatfx.tick', schedule: { every: 1 } });
    expect(await beat('pause', 'tick', '-A', FIXTURE)).toMatchObject({ status: 0, stdout: 'paused tick\n' });
    expect(await beat('resume', 'nightly')).toMatchObject({ status: 0, stdout: 'resumed nightly\n' });
    expect(await beat('remove', 'poll')).toMatchObject({ status: 0, stdout: 'removed poll\n' });
    expect(await beat('remove', 'poll')).toMatchObject({ status: 1, stdout: 'no stored entry named poll\n' });

    const refusals: Array<[string[], RegExp]> = [
      [['add', 'bad', 'x', '--cron', '30 25 * * *'], /schedule "bad": every: crontab "30 25 \* \* \*": hour field "25": 25 is out of range 0-23/],
      [['add', 'bad', 'x', '--cron', '0 3 * *'], /expected 5 fields/],
      [['add', 'bad', 'x', '--cron', '0 3 * * *', '--timezone', 'Europe/Nowhere'], /timezone: "Europe\/Nowhere" is not a time zone/],
      [['add', 'bad', 'x', '--at', 'someday'], /a one-off run needs a date/],
      [['add', 'bad', 'x', '--every', '5', '--cron', '* * * * *'], /give one of --every, --cron, not both/],
      [['add', 'bad', 'x'], /say when it runs: --every SECONDS, --cron EXPRESSION or --at DATE/],
      [['add', 'bad', 'x', '--every', '-1'], /expected a positive number of seconds/],
      [['remove', 'tick', '-A', FIXTURE], /defined in code; remove it there, or pause it/],
      [['pause', 'nope'], /no schedule entry named "nope"/],
      [['-A', FIXTURE, '--lock', 'amqp://guest:guest@127.0.0.1//'], /cannot hold a lock; use sqlite:\/\/PATH or redis:\/\//],
    ];
    for (const [command, message] of refusals) {
      const result = await beat(...command);
      expect(result.status, command.join(' ')).not.toBe(0);
      expect(result.stderr, command.join(' ')).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    const rabbit = await runCliAsync(['beat', '-A', FIXTURE, '--broker', 'amqp://guest:guest@127.0.0.1:5672//']);
    expect(rabbit.stderr).toMatch(/neither the broker \(amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672\/\/\) nor the result backend .* is one; name one with --lock/);
  }, 60_000);

  test('celeriac worker -B runs the schedule inside the worker: each run once, executed', async () => {
    const { url, dir } = { ...tempSqliteKept() };
    const runs = join(dir, 'runs.txt');
    const worker = startCli(['worker', '-A', FIXTURE, '--broker', url, '-B'], { BEAT_RUNS: runs, BEAT_EVERY: '1' });
    cleanups.push(() => worker.kill());
    await worker.waitFor('beat: leader now', { timeoutMs: 30_000 });
    const deadline = Date.now() + 15_000;
    while ((existsSync(runs) ? readFileSync(runs, 'utf8').trim().split('\n').length : 0) < 4 && Date.now() < deadline) await sleep(200);
    expect(await worker.stop()).toBe(0);
    expect(worker.log()).toMatch(/beat: gave up the lease/);
    const times = readFileSync(runs, 'utf8').trim().split('\n').map((line) => Date.parse(line));
    expect(times.length).toBeGreaterThanOrEqual(4);
    expect(times.slice(1).map((time, i) => time - times[i]!)).toEqual(times.slice(1).map(() => 1_000));
  }, 60_000);
});

function tempSqliteKept(): { url: string; dir: string } {
  const sqlite = tempSqlite();
  cleanups.push(sqlite.cleanup);
  return { url: sqlite.url, dir: sqlite.dir };
}
