/**
 * celeriac at scale, its worker in a process of its own on Redis, as users run it:
 *
 * - 1,000,000 no-op tasks through one worker (`-c 50`): the worker's RSS sampled every second
 *   while it drains them, to show whether memory stays flat after warm-up;
 * - 100,000 ETA tasks an hour out: the worker takes each one and parks it in Redis, and its RSS
 *   is compared with the same worker's after a drain of as many no-ops.
 *
 * Usage: npm run bench -- scale   (after npm run build: npx tsx bench/scale.ts). About 5 minutes.
 * Redis db 4 on 127.0.0.1:6379, flushed before each part and at the end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { Celeriac, type Task } from '../src/index.js';
import { codeState, redisVersion } from './canvas.js';
import { machine, perSecond, rssMb, table, writeSection } from './lib.js';
import { killOnExit, WorkerProcess } from './processes.js';

const DB = 4;
const REDIS_URL = `redis://127.0.0.1:6379/${DB}`;
const QUEUE = 'bench.scale';
/** Tasks are sent to this queue name, then the list is renamed to {@link QUEUE} at once: the clock starts there. */
const STAGE = 'bench.scale.stage';
const SIZES = { drain: 1_000_000, eta: 100_000, batch: 1_000, warmUp: 2_000 };
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

const redis = new Redis(REDIS_URL);

function startWorker(): WorkerProcess {
  return new WorkerProcess(
    {
      label: 'celeriac -c 50',
      command: process.execPath,
      args: [path('../bin/celeriac.js'), 'worker', '-A', path('./noop-tasks.js'), '-c', '50', '--broker', REDIS_URL, '--backend', REDIS_URL, '-Q', QUEUE, '-l', 'warning'],
      env: process.env,
    },
    10,
  );
}

/** The worker's no-op task, as the producer sees it. */
type Noop = Task<[], null>;

/** Sends `count` calls of the no-op (with `eta` when given) to the staging list, in batches, showing progress. */
async function stage(noop: Noop, count: number, eta?: Date): Promise<void> {
  for (let sent = 0; sent < count; ) {
    const batch = Math.min(SIZES.batch, count - sent);
    const results = noop.delayMany(Array.from({ length: batch }, () => [] as []), { queue: STAGE, ...(eta ? { eta } : {}) });
    await results[batch - 1]!.sent;
    sent += batch;
    if (sent % 100_000 === 0 || sent === count) process.stdout.write(`\r  staged ${sent.toLocaleString('en-US')} of ${count.toLocaleString('en-US')}`);
  }
  process.stdout.write('\n');
}

/** Moves the staged list into the worker's queue in one step. */
async function release(): Promise<number> {
  if ((await redis.renamenx(STAGE, QUEUE)) !== 1) throw new Error(`${QUEUE} already exists: the worker's queue should be empty`);
  return performance.now();
}

/** Waits until the worker's queue and unacked records are empty, calling `sample` every second. */
async function drained(worker: WorkerProcess, sample: (remaining: number) => void): Promise<void> {
  for (;;) {
    const [remaining, unacked] = await Promise.all([redis.llen(QUEUE), redis.hlen('unacked')]);
    sample(remaining);
    if (remaining === 0 && unacked === 0) return;
    await worker.guard(sleep(1_000), 'while draining');
  }
}

interface RssPoint {
  done: number;
  seconds: number;
  rss: number;
}

async function drainMillion(noop: Noop): Promise<{ points: RssPoint[]; rate: number; results: number }> {
  console.log(`1. ${SIZES.drain.toLocaleString('en-US')} no-op tasks through one worker`);
  await redis.flushdb();
  const worker = startWorker();
  try {
    await worker.guard(warmUp(noop), 'before it was ready');
    await stage(noop, SIZES.drain);
    const points: RssPoint[] = [];
    const started = await release();
    await drained(worker, (remaining) => {
      const point = { done: SIZES.drain - remaining, seconds: (performance.now() - started) / 1000, rss: rssMb(worker.pid) };
      points.push(point);
      process.stdout.write(`\r  ${point.done.toLocaleString('en-US')} done, RSS ${point.rss.toFixed(1)} MB   `);
    });
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write('\n');
    const results = (await redis.keys('celery-task-meta-*')).length;
    return { points, rate: SIZES.drain / seconds, results };
  } finally {
    await worker.stop();
  }
}

async function parkEtas(noop: Noop): Promise<{ idle: number; afterNoops: number; afterEtas: number; parked: number; inQueue: number; unacked: number }> {
  console.log(`2. ${SIZES.eta.toLocaleString('en-US')} ETA tasks an hour out`);
  await redis.flushdb();
  const worker = startWorker();
  try {
    await worker.guard(warmUp(noop), 'before it was ready');
    const idle = rssMb(worker.pid);
    await stage(noop, SIZES.eta);
    await release();
    await drained(worker, () => undefined);
    const afterNoops = rssMb(worker.pid);
    await stage(noop, SIZES.eta, new Date(Date.now() + 3_600_000));
    await release();
    const delayed = `celeriac.delayed.${QUEUE}`;
    while ((await redis.zcard(delayed)) < SIZES.eta) await worker.guard(sleep(500), 'while it parked the ETA tasks');
    await sleep(3_000); // settle: the figure is what the worker keeps, not what it passed through
    return { idle, afterNoops, afterEtas: rssMb(worker.pid), parked: await redis.zcard(delayed), inQueue: await redis.llen(QUEUE), unacked: await redis.hlen('unacked') };
  } finally {
    await worker.stop();
  }
}

/** Runs no-ops until the worker answers, then a warm-up batch (V8 compiles the hot code as it runs). */
async function warmUp(noop: Noop): Promise<void> {
  await noop.applyAsync([], { queue: QUEUE }).get({ timeout: 60 });
  const results = noop.delayMany(Array.from({ length: SIZES.warmUp }, () => [] as []), { queue: QUEUE });
  await Promise.all(results.map((result) => result.get({ timeout: 60 })));
}

function report(million: Awaited<ReturnType<typeof drainMillion>>, eta: Awaited<ReturnType<typeof parkEtas>>, code: string, redisInfo: string): string {
  const rows: string[][] = [];
  for (let step = 100_000; step <= SIZES.drain; step += 100_000) {
    const point = million.points.find((p) => p.done >= step);
    if (point) rows.push([step.toLocaleString('en-US'), `${point.seconds.toFixed(0)} s`, `${point.rss.toFixed(1)} MB`]);
  }
  const afterWarmUp = million.points.filter((p) => p.done >= 200_000).map((p) => p.rss);
  const spread = afterWarmUp.length ? `${Math.min(...afterWarmUp).toFixed(1)}–${Math.max(...afterWarmUp).toFixed(1)} MB` : 'n/a';
  return `## At scale: one Redis worker in its own process (${new Date().toISOString().slice(0, 10)})

Machine: ${machine()}. ${redisInfo}. Code: ${code}.
Reproduce: \`npm run bench -- scale\` (script: bench/scale.ts). The worker is \`celeriac worker -A bench/noop-tasks.js -c 50\`
on \`${REDIS_URL}\` (broker and results); tasks are sent beforehand to another list and renamed into the worker's queue at once.

**${SIZES.drain.toLocaleString('en-US')} no-op tasks through one worker**: ${perSecond(million.rate)} overall, ${million.results.toLocaleString('en-US')} results stored (the warm-up's included).
The worker's RSS, sampled every second, at each 100,000 tasks done:

${table(['tasks done', 'elapsed', 'worker RSS'], rows)}

From 200,000 tasks on, the RSS stayed within ${spread} (${afterWarmUp.length} samples).

**${SIZES.eta.toLocaleString('en-US')} ETA tasks an hour out**: the worker takes each one and parks it in \`celeriac.delayed.${QUEUE}\`
(${eta.parked.toLocaleString('en-US')} there at the end; ${eta.inQueue} left in the queue, ${eta.unacked} unacked). Worker RSS: ${eta.idle.toFixed(1)} MB warm and idle,
${eta.afterNoops.toFixed(1)} MB after a drain of ${SIZES.eta.toLocaleString('en-US')} no-ops, ${eta.afterEtas.toFixed(1)} MB with the ${SIZES.eta.toLocaleString('en-US')} ETA tasks parked
(${(((eta.afterEtas - eta.afterNoops) * 2 ** 20) / SIZES.eta).toFixed(0)} bytes per task against the no-op drain).
`;
}

export async function runScaleBench(): Promise<void> {
  const stop = killOnExit();
  const app = new Celeriac({ broker: REDIS_URL, backend: REDIS_URL });
  try {
    const noop: Noop = app.task('bench.noop', () => null);
    const million = await drainMillion(noop);
    const eta = await parkEtas(noop);
    const body = report(million, eta, await codeState(), `Redis ${await redisVersion()}`);
    writeSection('scale', body);
    console.log(body);
  } finally {
    await app.close();
    await redis.flushdb();
    redis.disconnect();
    stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runScaleBench();
