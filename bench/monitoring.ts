/**
 * What monitoring and time-based control cost, as users run them (the worker in its own
 * process, `celeriac worker`, on Redis):
 *
 * - task events: a drain of no-op tasks at c=50 with `-E` against one without, taking turns;
 * - a receiver: task events published at 20,000/s, counted by `app.events.receive()`;
 * - the global rate limiter: a drain of tasks under a limit that never binds against plain
 *   no-ops (the difference is the limiter's own cost per task);
 * - beat: 10,000 entries due at each minute boundary, the scheduler's CPU and how late the
 *   sends are.
 *
 * Usage: npm run bench -- monitoring
 */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Celeriac, type CeleryEvent } from '../src/index.js';
import { machine, percentile, perSecond, table, writeSection } from './lib.js';
import { killOnExit, waitForQuiet, WorkerProcess } from './processes.js';

const REDIS_URL = (db: number): string => `redis://127.0.0.1:6379/${db}`;
const DB = { worker: 11, staging: 10, beat: 9 };
const ROUNDS = 3;
const TASKS = 20_000;
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

/** A worker process draining `TASKS` of `task` sent before it starts; tasks per second. */
async function drain(task: string, extraArgs: string[]): Promise<number> {
  const url = REDIS_URL(DB.worker);
  const flush = new Redis(url);
  await flush.flushdb();
  flush.disconnect();
  const queue = `bench.monitoring.${process.pid}`;
  const app = new Celeriac({ broker: url, backend: url });
  try {
    const results = [];
    for (let i = 0; i < TASKS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, TASKS - i) }, () => app.sendTask(task, [], {}, { queue }));
      await Promise.all(batch.map((result) => result.sent));
      results.push(...batch);
    }
    await waitForQuiet();
    const started = performance.now();
    const worker = new WorkerProcess({
      label: `celeriac -c 50 ${extraArgs.join(' ')}`,
      command: process.execPath,
      args: [path('../bin/celeriac.js'), 'worker', '-A', path('./monitor-tasks.js'), '--broker', url, '-Q', queue, '-c', '50', '-l', 'warning', '--without-mingle', ...extraArgs],
      env: process.env,
    });
    try {
      await worker.guard(Promise.all(results.map((result) => result.get({ timeout: 300 }))), 'draining');
      return TASKS / ((performance.now() - started) / 1000);
    } finally {
      await worker.stop();
    }
  } finally {
    await app.close();
  }
}

/** Medians and ranges of rounds in which `a` and `b` take turns. */
async function alternate(a: () => Promise<number>, b: () => Promise<number>): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    out.a.push(await a());
    out.b.push(await b());
  }
  return out;
}

const median = (values: number[]): number => percentile(values, 0.5);
const range = (values: number[]): string => `${perSecond(Math.min(...values))}–${perSecond(Math.max(...values))}`;

/** Task events published at `target` per second for `seconds` (lists of 100), received in this process. */
async function receiverRate(target: number, seconds: number): Promise<{ sent: number; received: number; rate: number; lagMs: number }> {
  const url = REDIS_URL(DB.worker);
  const receiver = new Celeriac({ broker: url });
  const publisher = new Celeriac({ broker: url });
  const stream = await receiver.events.receive({ pattern: 'task.#' });
  const channel = (await publisher.broker()).events!;
  let received = 0;
  let lastAt = 0;
  const reading = (async () => {
    for await (const _event of stream) {
      received++;
      lastAt = performance.now();
    }
  })();
  const batch = 100;
  const total = target * seconds;
  const event = (i: number): CeleryEvent => ({ type: 'task-succeeded', uuid: `bench-${i}`, result: 'None', runtime: 0.0001, hostname: 'bench@host', timestamp: Date.now() / 1000, clock: i, pid: 1, utcoffset: 0 });
  const started = performance.now();
  for (let sent = 0; sent < total; sent += batch) {
    const due = started + (sent / target) * 1000;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    await channel.publish('task.multi', Array.from({ length: batch }, (_, k) => event(sent + k)), 'bench@host');
  }
  const publishedAt = performance.now();
  const deadline = publishedAt + 10_000;
  while (received < total && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  await stream.close();
  await reading;
  await Promise.all([receiver.close(), publisher.close()]);
  return { sent: total, received, rate: received / ((lastAt - started) / 1000), lagMs: Math.max(0, lastAt - publishedAt) };
}

/** 10,000 entries due each minute: the beat's CPU over a minute and the lateness of each send at the boundary. */
async function beatAtScale(entries: number): Promise<{ cpuPerSecondMs: number; lagP50: number; lagP99: number; sent: number }> {
  const url = REDIS_URL(DB.beat);
  const flush = new Redis(url);
  await flush.flushdb();
  flush.disconnect();
  const app = new Celeriac({ broker: url });
  for (let i = 0; i < entries; i++) app.schedule(`bench-${i}`, { task: 'bench.noop', every: '* * * * *', options: { queue: 'bench.beat' } });
  const lags: number[] = [];
  const service = await app.beat.start({ logger: { debug() {}, info() {}, warn() {}, error() {} } });
  service.on('sent', ({ scheduledAt }) => lags.push(Date.now() - scheduledAt));
  // Measure from just after one boundary to just after the next: one minute with one boundary in it.
  const now = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 60_000 - (now % 60_000) + 2_000));
  lags.length = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  await app.beat.stop();
  await app.close();
  return { cpuPerSecondMs: (cpu.user + cpu.system) / 1000 / seconds, lagP50: percentile(lags, 0.5), lagP99: percentile(lags, 0.99), sent: lags.length };
}

export async function runMonitoringBench(): Promise<void> {
  const release = killOnExit();
  try {
    const events = await alternate(
      () => drain('bench.noop', []),
      () => drain('bench.noop', ['-E']),
    );
    const receiver = await receiverRate(20_000, 5);
    const limiter = await alternate(
      () => drain('bench.noop', []),
      () => drain('bench.limited', []),
    );
    const beat = await beatAtScale(10_000);
    const offMedian = median(events.a);
    const onMedian = median(events.b);
    const cost = (1 - onMedian / offMedian) * 100;
    const plain = median(limiter.a);
    const limited = median(limiter.b);
    const date = new Date().toISOString().slice(0, 10);
    writeSection(
      'monitoring',
      `## Monitoring and time-based control (${date})

\`npm run bench -- monitoring\` — ${machine()}. A \`celeriac worker\` process on Redis draining ${TASKS.toLocaleString('en-US')} no-op tasks sent before it started, results stored, c=50; ${ROUNDS} rounds, the two settings taking turns; median (min–max).

${table(
  ['measurement', 'median', 'range'],
  [
    ['drain, task events off', perSecond(offMedian), range(events.a)],
    ['drain, task events on (-E)', perSecond(onMedian), range(events.b)],
    ['cost of task events', `${cost.toFixed(1)}% of the rate`, 'target ≤ 15%'],
    ['receiver, 20,000 events/s offered for 5 s', `${perSecond(receiver.rate)} received, ${receiver.received.toLocaleString('en-US')}/${receiver.sent.toLocaleString('en-US')}`, `last event ${receiver.lagMs.toFixed(0)} ms after the last publish`],
    ['drain, no rate limit', perSecond(plain), range(limiter.a)],
    ['drain, global rate limit that never binds', perSecond(limited), range(limiter.b)],
    ['cost of the global limiter', `${((1 / limited - 1 / plain) * 1e6).toFixed(1)} µs per task`, `${((1 - limited / plain) * 100).toFixed(1)}% of the rate`],
    ['beat, 10,000 entries due each minute: CPU', `${beat.cpuPerSecondMs.toFixed(1)} ms per second`, 'over one minute with one boundary'],
    ['beat: send lag at the boundary', `p50 ${beat.lagP50.toFixed(0)} ms, p99 ${beat.lagP99.toFixed(0)} ms`, `${beat.sent.toLocaleString('en-US')} sends`],
  ],
)}
`,
    );
    console.log(`events cost ${cost.toFixed(1)}%; receiver ${perSecond(receiver.rate)}; limiter ${((1 / limited - 1 / plain) * 1e6).toFixed(1)} µs/task; beat ${beat.cpuPerSecondMs.toFixed(1)} ms/s, p99 lag ${beat.lagP99.toFixed(0)} ms`);
  } finally {
    release();
  }
}
