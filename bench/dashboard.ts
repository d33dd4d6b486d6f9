/**
 * The dashboard under load, as users run it: `celeriac dashboard` in a process of its own on
 * Redis, fed task events (received, started, succeeded per task; 100 per `task.multi` message,
 * as workers batch them) from this process.
 *
 * - keeping up: 5,000, 10,000, 20,000 and 40,000 events/s offered for 10 s each; every second the
 *   backlog (events published and not yet counted by the dashboard, read from its /metrics),
 *   then how long it takes to catch up, events dropped and its RSS;
 * - memory: its RSS before any event and once it holds 100,000 tasks (its default cap);
 * - queries: the task list's filters over those 100,000 tasks through HTTP (`/api/tasks` and the
 *   `/tasks` page), p50 and p95 of 30 requests each.
 *
 * Usage: npm run bench -- dashboard
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Celeriac, type CeleryEvent } from '../src/index.js';
import { machine, percentile, perSecond, rssMb, table, writeSection } from './lib.js';
import { killOnExit, track } from './processes.js';

const URL_ = 'redis://127.0.0.1:6379/12';
const NAMES = Array.from({ length: 10 }, (_, i) => `bench.dash.task${i}`);
const WORKERS = Array.from({ length: 5 }, (_, i) => `w${i}@bench`);
const RATES = [5_000, 10_000, 20_000, 40_000];
const SECONDS = 10;
const BATCH = 99; // events per task.multi message: 33 tasks
const CLI = fileURLToPath(new URL('../bin/celeriac.js', import.meta.url));

interface Served {
  child: ChildProcess;
  url: string;
}

async function startDashboard(): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'dashboard', '--broker', URL_, '--port', '0', '--no-enable-events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child, () => child.kill('SIGKILL'));
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the dashboard did not start; log:\n${output}`)), 30_000);
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /celeriac dashboard: (http:\/\/\S+) /.exec(output);
      if (!match) return;
      clearTimeout(timer);
      resolve({ child, url: match[1]! });
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', (code) => reject(new Error(`the dashboard exited with ${code}; log:\n${output}`)));
  });
}

/** From the dashboard's /metrics: bench tasks counted as succeeded, and events dropped. */
async function progress(url: string): Promise<{ succeeded: number; dropped: number; stored: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let succeeded = 0;
  let dropped = 0;
  let stored = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('celeriac_tasks_total{') && line.includes('name="bench.dash.') && line.includes('state="SUCCESS"')) succeeded += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('celeriac_events_dropped_total')) dropped = Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith('celeriac_dashboard_tasks_stored')) stored = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { succeeded, dropped, stored };
}

const uuidOf = (i: number): string => `bench-${i.toString(16).padStart(8, '0')}-${process.pid}`;

/** The three events of task `i`, as a worker sends them. */
function taskEvents(i: number, now: number): CeleryEvent[] {
  const uuid = uuidOf(i);
  const hostname = WORKERS[i % WORKERS.length]!;
  const base = { uuid, hostname, pid: 1, utcoffset: 0 };
  return [
    { ...base, type: 'task-received', name: NAMES[i % NAMES.length]!, args: `[${i}, 'order-${i % 997}']`, kwargs: `{'customer': 'c${i % 5003}'}`, root_id: uuid, parent_id: null, retries: 0, eta: null, expires: null, timestamp: now, clock: 3 * i },
    { ...base, type: 'task-started', timestamp: now + 0.0001, clock: 3 * i + 1 },
    { ...base, type: 'task-succeeded', result: `'done ${i}'`, runtime: 0.001 + (i % 50) / 1000, timestamp: now + 0.002, clock: 3 * i + 2 },
  ];
}

interface Phase {
  offered: number;
  /** Events the dashboard counted per second, from the first publish until it caught up. */
  processed: number;
  backlogs: number[];
  catchUpMs: number;
  dropped: number;
  rss: number;
}

/** Offers `rate` events/s for `seconds`, sampling the backlog every second. */
async function offer(served: Served, publish: (events: CeleryEvent[]) => Promise<void>, firstTask: number, rate: number, seconds: number): Promise<{ phase: Phase; nextTask: number }> {
  const before = await progress(served.url);
  const tasks = Math.floor((rate * seconds) / 3);
  const tasksPerBatch = BATCH / 3;
  const started = performance.now();
  const backlogs: number[] = [];
  let sentTasks = 0;
  let nextSample = started + 1000;
  const sampling: Array<Promise<void>> = [];
  while (sentTasks < tasks) {
    const due = started + ((sentTasks * 3) / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const count = Math.min(tasksPerBatch, tasks - sentTasks);
    const now = Date.now() / 1000;
    const events: CeleryEvent[] = [];
    for (let k = 0; k < count; k++) events.push(...taskEvents(firstTask + sentTasks + k, now));
    await publish(events);
    sentTasks += count;
    if (performance.now() >= nextSample) {
      nextSample += 1000;
      // Against what was sent by the time it answered: it answers between batches of events.
      sampling.push(progress(served.url).then((p) => void backlogs.push(Math.max(0, (sentTasks - (p.succeeded - before.succeeded)) * 3))));
    }
  }
  const publishedAt = performance.now();
  await Promise.all(sampling);
  let after = await progress(served.url);
  while (after.succeeded - before.succeeded < tasks && performance.now() - publishedAt < 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    after = await progress(served.url);
  }
  const caughtUp = performance.now();
  return {
    phase: {
      offered: rate,
      processed: ((after.succeeded - before.succeeded) * 3) / ((caughtUp - started) / 1000),
      backlogs,
      catchUpMs: caughtUp - publishedAt,
      dropped: after.dropped - before.dropped,
      rss: rssMb(served.child.pid!),
    },
    nextTask: firstTask + tasks,
  };
}

/** p50 and p95 (ms) of `runs` GETs of `path`. */
async function timeQuery(url: string, path: string, runs = 30): Promise<{ p50: number; p95: number; matches: string }> {
  const times: number[] = [];
  let matches = '';
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const response = await fetch(`${url}${path}`, { headers: path.startsWith('/api') ? {} : { accept: 'text/html' } });
    const body = await response.text();
    times.push(performance.now() - started);
    if (i === 0) matches = path.startsWith('/api') ? String((JSON.parse(body) as { total: number }).total) : (/id="match-count">([\d,]+)</.exec(body)?.[1] ?? '?');
  }
  return { p50: percentile(times, 0.5), p95: percentile(times, 0.95), matches };
}

export async function runDashboardBench(): Promise<void> {
  const release = killOnExit();
  const flush = new Redis(URL_);
  await flush.flushdb();
  flush.disconnect();
  const served = await startDashboard();
  const publisher = new Celeriac({ broker: URL_ });
  try {
    const channel = (await publisher.broker()).events!;
    const publish = (events: CeleryEvent[]): Promise<void> => channel.publish('task.multi', events, 'bench@host');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleRss = rssMb(served.child.pid!);
    const phases: Phase[] = [];
    let nextTask = 0;
    for (const rate of RATES) {
      const result = await offer(served, publish, nextTask, rate, SECONDS);
      phases.push(result.phase);
      nextTask = result.nextTask;
      console.log(`offered ${rate}/s: processed ${perSecond(result.phase.processed)}, backlog ${result.phase.backlogs.join(' ')}, caught up ${result.phase.catchUpMs.toFixed(0)} ms after, dropped ${result.phase.dropped}, RSS ${result.phase.rss.toFixed(0)} MB`);
    }
    // Top the store up to its cap: 100,000 tasks held.
    let held = (await progress(served.url)).stored;
    while (held < 100_000) {
      const result = await offer(served, publish, nextTask, 20_000, 5);
      nextTask = result.nextTask;
      held = (await progress(served.url)).stored;
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const fullRss = rssMb(served.child.pid!);
    const queries: Array<[string, string]> = [
      ['state + task name', `/api/tasks?state=SUCCESS&name=${NAMES[3]}`],
      ['worker, page 100 (offset 5,000)', `/api/tasks?worker=${encodeURIComponent(WORKERS[2]!)}&offset=5000`],
      ['argument text', `/api/tasks?q=order-42'`],
      ['task id', `/api/tasks?q=${uuidOf(nextTask - 1000)}`],
      ['the /tasks page, state + text (HTML)', `/tasks?state=SUCCESS&q=${encodeURIComponent("customer': 'c77'")}`],
    ];
    const timed: Array<[string, Awaited<ReturnType<typeof timeQuery>>]> = [];
    for (const [label, path] of queries) timed.push([label, await timeQuery(served.url, path)]);
    for (const [label, result] of timed) console.log(`${label}: p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, ${result.matches} matches`);

    const growth = (backlogs: number[]): string => {
      if (backlogs.length < 2) return '-';
      const half = Math.floor(backlogs.length / 2);
      const first = Math.max(...backlogs.slice(0, half));
      const second = Math.max(...backlogs.slice(half));
      return second > first * 1.5 + 1000 ? `grows (${first.toLocaleString('en-US')} → ${second.toLocaleString('en-US')})` : 'flat';
    };
    const body = [
      `## Dashboard (${new Date().toISOString().slice(0, 10)})`,
      '',
      `\`npm run bench -- dashboard\` — ${machine()}. \`celeriac dashboard\` in its own process on Redis, fed task events from this process (received, started and succeeded per task, ${BATCH} per \`task.multi\` message, as workers batch them; 10 task names, 5 workers); its progress, drops and tasks held read from its \`/metrics\` every second, its RSS from /proc.`,
      '',
      table(
        ['offered for 10 s', 'processed', 'backlog each second (events)', 'backlog', 'caught up after the last publish', 'dropped', 'RSS after'],
        phases.map((phase) => [
          perSecond(phase.offered),
          perSecond(phase.processed),
          phase.backlogs.map((value) => value.toLocaleString('en-US')).join(' '),
          growth(phase.backlogs),
          `${phase.catchUpMs.toFixed(0)} ms`,
          String(phase.dropped),
          `${phase.rss.toFixed(0)} MB`,
        ]),
      ),
      '',
      'A backlog that grows from the first half of a phase to the second means the dashboard is not keeping up at that rate; RSS is its resident size after each phase (V8 keeps its heap at its high-water mark), so the 100,000-task figure includes what the fastest phase left.',
      '',
      table(
        ['memory', 'RSS'],
        [
          ['started, no task held', `${idleRss.toFixed(0)} MB`],
          [`holding 100,000 tasks (its cap; ${nextTask.toLocaleString('en-US')} seen)`, `${fullRss.toFixed(0)} MB`],
        ],
      ),
      '',
      'Queries over the 100,000 tasks held, through HTTP from this process (30 each; the JSON API, and the rendered page):',
      '',
      table(
        ['query', 'p50', 'p95', 'matches'],
        timed.map(([label, result]) => [label, `${result.p50.toFixed(1)} ms`, `${result.p95.toFixed(1)} ms`, result.matches]),
      ),
    ].join('\n');
    writeSection('dashboard', body);
  } finally {
    await publisher.close();
    served.child.kill('SIGTERM');
    release();
  }
}
