/**
 * Separate processes (issue 14): every system's worker in a process of its own, started the way
 * its users start it (`node bin/celeriac.js worker -A ...`, the peers' scripts in bench/peers/),
 * and this script the producer in another. 20,000 no-op tasks, results stored, all on 127.0.0.1.
 *
 * - Redis (db 1): celeriac beside BullMQ, Bee-Queue and celery-node. Drains at c=50 and c=1 of a
 *   queue that appears at once to a warmed-up worker (staged under other key names and renamed into
 *   place; BullMQ: pause, add, resume), bulk enqueue, enqueue→start latency at c=1, and the
 *   worker's idle and peak RSS.
 * - RabbitMQ (results in Redis db 1): celeriac beside celery-node, drain at c=50 from the first
 *   stored result (the queue is filled before the worker starts) and enqueue→start latency.
 * - SQLite across processes: celeriac's worker and this script on one file; drain, latency, and
 *   the CPU an idle worker and an idle producer waiting on a result take.
 * - The idle RSS of a celeriac worker given a TypeScript task module, on SQLite and on Redis.
 *
 * CELERIAC_BENCH_PROFILE=1 (or --profile when run directly) starts celeriac's workers under
 * `node --cpu-prof`, writing bench/profiles/*.cpuprofile; bench/profile-top.ts prints one's top
 * self-time functions.
 *
 * Run: npx tsc -p tsconfig.build.json && npx tsx bench/run.ts separate   (10-14 minutes, longer on a busy machine)
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import amqp from 'amqplib';
import BeeQueue from 'bee-queue';
import Database from 'better-sqlite3';
import { Queue, QueueEvents } from 'bullmq';
import celery from 'celery-node';
import { Redis } from 'ioredis';
import { Celeriac } from '../src/index.js';
import { codeState, redisVersion } from './canvas.js';
import { machine, percentile, perSecond, rate, table, writeSection } from './lib.js';
import { CpuMeter, killOnExit, processCpuSeconds, treeMemory, waitForQuiet, WorkerProcess, type WorkerSpec } from './processes.js';
import { celeryNodeVersion, delayInBatches, met, ratio, uniqueQueue, until } from './redis.js';

const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));
const REDIS = { host: '127.0.0.1', port: 6379 };
/**
 * The one Redis db of this suite, flushed before every worker starts: every other db is some test's
 * or suite's (the tests use 0 and 4–8, the suites 2, 3 and 9–15). Tasks are staged in it under
 * other key names and renamed into place.
 */
const DB = 1;
const redisUrl = (db: number): string => `redis://${REDIS.host}:${REDIS.port}/${db}`;
const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672//';
const SQLITE_FILE = `/tmp/celeriac-bench-separate-${process.pid}.db`;
const SQLITE_URL = `sqlite://${SQLITE_FILE}`;
const SIZES = { tasks: 20_000, warmUp: 1_000, probes: 300, batch: 1_000 };
const ROUNDS = 3;
/** Seconds: boot and warm-up, a drain, how long a worker idles before its RSS is read, CPU sampling. */
const TIMEOUT = { ready: 60, drain: 300 };
const IDLE = { rss: 2, tsModule: 12, cpu: 5 };
/** Seconds a latency probe may take, send to result. */
const PROBE_TIMEOUT = 30;
/** Before each clocked drain and latency run: the machine under 0.25 cores for 1 s, waiting at most 2 s. */
const QUIET = { threshold: 0.25, windowMs: 500, windows: 2, maxSeconds: 2 };
const PROFILE = process.env['CELERIAC_BENCH_PROFILE'] === '1' || process.argv.includes('--profile');
const PROFILE_DIR = path('./profiles');
const TASKS_MODULE = path('./peers/celeriac-tasks.js');

// ---------------------------------------------------------------------------------------------
// Shared steps.

/** Tasks made ready for a running worker at one instant. */
interface Staged {
  /** Makes them visible to the worker; resolves to the instant they became visible (performance.now()). */
  release(): Promise<number>;
  /** How many of them have their result stored (exact when it reaches n). */
  stored(): Promise<number>;
  close(): Promise<void>;
}

/** One system's worker and client, as every step of this suite drives it. */
interface System {
  name: string;
  /** Empties its queues and results; the worker is not running. */
  reset(): Promise<void>;
  worker(concurrency: number): WorkerSpec;
  /** n no-ops prepared so that {@link Staged.release} shows them to the worker at once. */
  stage(n: number): Promise<Staged>;
  /** Tasks/s sending n no-ops the system's fastest way, no worker running. */
  bulk?(n: number): Promise<number>;
  /** Enqueue→start latencies (ms) of n probes, one at a time, each awaited to its result. */
  latency(n: number): Promise<number[]>;
}

/** Polls `stored` every 5 ms until it reaches n; the instant it did. */
async function whenStored(n: number, stored: () => Promise<number>, seconds: number): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  for (;;) {
    const count = await stored();
    const at = performance.now();
    if (count >= n) return at;
    if (at > deadline) throw new Error(`${count} of ${n} results stored after ${seconds} s`);
    await sleep(5);
  }
}

interface Drained {
  rate: number;
  /** Cores the rest of the machine (not the worker, Redis or this script) used meanwhile. */
  others: number;
}

/** Stages n no-ops, releases them to the running worker, and times until every result is stored. */
async function drain(system: System, worker: WorkerProcess, n: number, meter: CpuMeter | null, seconds = TIMEOUT.drain): Promise<Drained> {
  const staged = await system.stage(n);
  try {
    if (meter) await waitForQuiet(QUIET);
    const cpu = meter?.snapshot();
    const started = await staged.release();
    const finished = await worker.guard(whenStored(n, () => staged.stored(), seconds), `draining ${n} tasks`);
    return { rate: n / ((finished - started) / 1000), others: cpu ? meter!.since(cpu).others : NaN };
  } finally {
    await staged.close();
  }
}

/** Starts the worker, warms it up with WARM_UP no-ops (its boot inside the ready timeout), runs `fn`, stops it. */
async function withWorker<T>(system: System, concurrency: number, fn: (worker: WorkerProcess) => Promise<T>): Promise<T> {
  await system.reset();
  const worker = new WorkerProcess(system.worker(concurrency));
  try {
    await drain(system, worker, SIZES.warmUp, null, TIMEOUT.ready);
    return await worker.guard(fn(worker), 'during the measurement');
  } finally {
    await worker.stop();
  }
}

/** n probes one at a time, 2 ms apart; each returns the worker-side latency it measured. */
async function probeLoop(n: number, probe: () => Promise<number>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const latency = await within(PROBE_TIMEOUT, probe(), `probe ${i + 1} of ${n}`);
    if (typeof latency !== 'number' || !Number.isFinite(latency)) throw new Error(`a probe returned ${JSON.stringify(latency)}`);
    samples.push(latency);
    await sleep(2);
  }
  return samples;
}

/** Rejects if `work` has not settled within `seconds`. */
async function within<T>(seconds: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${seconds} s`)), seconds * 1000)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The send time a probe carries, in ms on CLOCK_MONOTONIC (process.hrtime), which every process on
 * the machine shares. Not performance.timeOrigin + performance.now(): timeOrigin is the wall clock
 * read once at each process's start, and on this machine (its wall clock slewed) two processes
 * started a minute apart disagreed by several ms, giving negative latencies.
 */
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Resets a process's VmHWM to its current RSS (Linux ≥ 4.0, `clear_refs` 5), so the next reading is the peak since. */
function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** VmHWM, the peak resident set of a process since it started or since {@link resetPeakRss}, in MB. */
function peakRssMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

async function withRedis<T>(db: number, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ ...REDIS, db });
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

const flush = (...dbs: number[]): Promise<void> => dbs.reduce((done, db) => done.then(() => withRedis(db, async (r) => void (await r.flushdb()))), Promise.resolve());

const version = (pkg: string): string => JSON.parse(readFileSync(path(`../node_modules/${pkg}/package.json`), 'utf8')).version;

/** `celeriac worker` as users start it (the built CLI), under `node --cpu-prof` with CELERIAC_BENCH_PROFILE=1. */
function celeriacSpec(label: string, broker: string, backend: string, queue: string, concurrency: number, module = TASKS_MODULE): WorkerSpec {
  const name = `celeriac-${label}-c${concurrency}-${Date.now()}`.replace(/[^\w.-]+/g, '-');
  const profile = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  return {
    label: `celeriac ${label} -c ${concurrency}`,
    command: process.execPath,
    args: [...profile, path('../bin/celeriac.js'), 'worker', '-A', module, '--broker', broker, '--backend', backend, '-Q', queue, '-c', String(concurrency), '-l', 'warning'],
    env: process.env,
  };
}

const nodeSpec = (label: string, script: string, args: string[]): WorkerSpec => ({ label, command: process.execPath, args: [path(script), ...args], env: process.env });

// ---------------------------------------------------------------------------------------------
// Celery's format (celeriac and celery-node): messages in a list named after the queue, results
// at celery-task-meta-<id>, published on the channel of the same name as they are stored.

/** Results stored among `ids` in `redis`: DBSIZE over its count before, then one EXISTS over every id near the end. */
function celeryResultCount(redis: Redis, ids: string[], base: number): () => Promise<number> {
  const keys = ids.map((id) => `celery-task-meta-${id}`);
  return async () => {
    const grown = (await redis.dbsize()) - base;
    return grown < ids.length - 50 ? grown : redis.exists(...keys); // other keys may come and go: exact at the end
  };
}

/** Sends n no-ops with celeriac's delayMany to `queue` on `broker`; their ids. */
async function celeriacSend(broker: string, queue: string, n: number): Promise<string[]> {
  const app = new Celeriac({ broker, backend: broker.startsWith('amqp') ? redisUrl(DB) : broker, defaultQueue: queue });
  try {
    return (await delayInBatches(app.task('bench.noop', () => null), n)).map((result) => result.id);
  } finally {
    await app.close();
  }
}

/** Sent to the list `<queue>.staged`, renamed to the queue's list with one RENAMENX (which wakes a worker blocked on it). */
async function stageCeleryFormat(queue: string, n: number): Promise<Staged> {
  const staged = `${queue}.staged`;
  const redis = new Redis({ ...REDIS, db: DB });
  await redis.del(staged);
  const ids = await celeriacSend(redisUrl(DB), staged, n);
  if ((await redis.llen(staged)) !== n) throw new Error(`${staged} does not hold the ${n} messages sent`);
  return {
    async release() {
      const at = performance.now();
      if ((await redis.renamenx(staged, queue)) !== 1) throw new Error(`could not rename ${staged} to ${queue}`);
      return at;
    },
    stored: celeryResultCount(redis, ids, await redis.dbsize()),
    close: async () => redis.disconnect(),
  };
}

/** Latency probes whose results are heard on their celery-task-meta-<id> channel, subscribed before each send. */
async function probeByChannel(n: number, send: (id: string, sentAt: number) => void): Promise<number[]> {
  const subscriber = new Redis({ ...REDIS, db: DB });
  let waiting: ((payload: string) => void) | undefined;
  subscriber.on('message', (_channel: string, payload: string) => waiting?.(payload));
  try {
    return await probeLoop(n, async () => {
      const id = randomUUID();
      const channel = `celery-task-meta-${id}`;
      await subscriber.subscribe(channel);
      const heard = new Promise<string>((resolve) => (waiting = resolve));
      send(id, now());
      const meta = JSON.parse(await heard) as { status: string; result: number };
      await subscriber.unsubscribe(channel);
      if (meta.status !== 'SUCCESS') throw new Error(`probe ${id} ended ${meta.status}`);
      return meta.result;
    });
  } finally {
    subscriber.disconnect();
  }
}

function celeriacRedis(): System {
  const queue = uniqueQueue('celeriac');
  const url = redisUrl(DB);
  return {
    name: 'celeriac',
    reset: () => flush(DB),
    worker: (c) => celeriacSpec('redis', url, url, queue, c),
    stage: (n) => stageCeleryFormat(queue, n),
    bulk: (n) => celeriacBulk(url, queue, n),
    latency: (n) => celeriacLatency(url, queue, n),
  };
}

async function celeriacBulk(broker: string, queue: string, n: number): Promise<number> {
  const app = new Celeriac({ broker, backend: broker, defaultQueue: queue });
  try {
    await app.broker(); // connected before the clock starts, as the peers' clients are
    const noop = app.task('bench.noop', () => null);
    return await rate(n, async () => void (await delayInBatches(noop, n)));
  } finally {
    await app.close();
  }
}

/** Probes through celeriac's own client: sendTask, then the result's get(). */
async function celeriacLatency(broker: string, queue: string, n: number, backend = broker): Promise<number[]> {
  const app = new Celeriac({ broker, backend, defaultQueue: queue });
  try {
    await app.broker();
    return await probeLoop(n, () => app.sendTask<number>('bench.probe', [now()]).get({ timeout: PROBE_TIMEOUT }));
  } finally {
    await app.close();
  }
}

function celeryNodeRedis(): System {
  const queue = uniqueQueue('celery-node');
  const url = redisUrl(DB);
  return {
    name: `celery-node ${celeryNodeVersion()}`,
    reset: () => flush(DB),
    worker: () => nodeSpec('celery-node', './peers/celery-node-worker.mjs', [url, url, queue]),
    stage: (n) => stageCeleryFormat(queue, n),
    // No bulk send: applyAsync in a loop (sends are not awaitable), timed until the list holds all n.
    bulk: (n) =>
      withCeleryNodeClient(url, url, queue, (client) =>
        withRedis(DB, async (redis) => {
          const noop = client.createTask('bench.noop');
          return rate(n, async () => {
            for (let i = 0; i < n; i++) noop.applyAsync([]);
            await until(n, () => redis.llen(queue));
          });
        }),
      ),
    latency: (n) => withCeleryNodeClient(url, url, queue, (client) => probeByChannel(n, (id, sentAt) => void client.sendTask('bench.probe', [sentAt], {}, id))),
  };
}

type CeleryNodeClient = ReturnType<typeof celery.createClient>;

async function withCeleryNodeClient<T>(broker: string, backend: string, queue: string, fn: (client: CeleryNodeClient) => Promise<T>): Promise<T> {
  const client = celery.createClient(broker, backend, queue);
  if (broker.startsWith('amqp')) client.conf.CELERY_BROKER_OPTIONS = { noDelay: true }; // as its worker (bench/peers/celery-node-worker.mjs)
  try {
    await client.isReady();
    return await fn(client);
  } finally {
    await client.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ: return values kept (removeOnComplete off, its default). A paused queue takes jobs
// without handing them out; resume shows them all at once.

function bullmq(): System {
  const name = uniqueQueue('bullmq').replaceAll('.', '-');
  const connection = { ...REDIS, db: DB };
  const addBulk = async (queue: Queue, n: number): Promise<void> => {
    for (let i = 0; i < n; i += SIZES.batch) await queue.addBulk(Array.from({ length: Math.min(SIZES.batch, n - i) }, () => ({ name: 'bench.noop', data: {} })));
  };
  return {
    name: `BullMQ ${version('bullmq')}`,
    reset: () => flush(DB),
    worker: (c) => nodeSpec(`BullMQ -c ${c}`, './peers/bullmq-worker.mjs', [name, String(DB), String(c)]),
    async stage(n) {
      const queue = new Queue(name, { connection });
      await queue.pause();
      await addBulk(queue, n);
      const base = await queue.getCompletedCount();
      return {
        async release() {
          const at = performance.now();
          await queue.resume();
          return at;
        },
        stored: async () => (await queue.getCompletedCount()) - base,
        close: () => queue.close(),
      };
    },
    async bulk(n) {
      const queue = new Queue(name, { connection });
      try {
        await queue.waitUntilReady();
        return await rate(n, () => addBulk(queue, n));
      } finally {
        await queue.close();
      }
    },
    async latency(n) {
      const queue = new Queue(name, { connection });
      const events = new QueueEvents(name, { connection });
      try {
        await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
        return await probeLoop(n, async () => (await queue.add('bench.probe', { sentAt: now() })).waitUntilFinished(events, PROBE_TIMEOUT * 1000));
      } finally {
        await events.close();
        await queue.close();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bee-Queue: jobs in the bq:<name>:jobs hash, ids in the waiting list, succeeded ids in a set
// (its results are not stored: they go out in the succeeded event). Staged like Celery's lists:
// saved under another key prefix, the hash and the id counter then the waiting list renamed into place.

const STAGED = 'bqstaged';

function beeQueue(): System {
  const name = uniqueQueue('bee-queue');
  const key = (suffix: string, prefix = 'bq'): string => `${prefix}:${name}:${suffix}`;
  const client = (prefix = 'bq', getEvents = false): BeeQueue => new BeeQueue(name, { redis: { ...REDIS, db: DB }, prefix, isWorker: false, getEvents });
  const saveAll = async (queue: BeeQueue, n: number): Promise<void> => {
    for (let i = 0; i < n; i += SIZES.batch) {
      const errors = await queue.saveAll(Array.from({ length: Math.min(SIZES.batch, n - i) }, () => queue.createJob({})));
      if (errors.size) throw new Error(`Bee-Queue saveAll: ${[...errors.values()][0]!.message}`);
    }
  };
  const withClient = async <T>(queue: BeeQueue, fn: (queue: BeeQueue) => Promise<T>): Promise<T> => {
    try {
      await queue.ready();
      return await fn(queue);
    } finally {
      await queue.close();
    }
  };
  return {
    name: `Bee-Queue ${version('bee-queue')}`,
    reset: () => flush(DB),
    worker: (c) => nodeSpec(`Bee-Queue -c ${c}`, './peers/bee-queue-worker.mjs', [name, String(DB), String(c)]),
    async stage(n) {
      const redis = new Redis({ ...REDIS, db: DB });
      const renamed = async (suffix: string): Promise<void> => {
        if ((await redis.renamenx(key(suffix, STAGED), key(suffix))) !== 1) throw new Error(`could not rename ${key(suffix, STAGED)} to ${key(suffix)}`);
      };
      await redis.del(...['jobs', 'id', 'waiting'].map((suffix) => key(suffix, STAGED)));
      await withClient(client(STAGED), (queue) => saveAll(queue, n));
      await redis.del(key('jobs'), key('succeeded'), key('id')); // the warm-up's, the worker idle
      await renamed('jobs');
      await renamed('id'); // the counter too: jobs saved later must not reuse these ids
      return {
        async release() {
          const at = performance.now();
          await renamed('waiting');
          return at;
        },
        stored: () => redis.scard(key('succeeded')),
        close: async () => redis.disconnect(),
      };
    },
    bulk: (n) => withClient(client(), (queue) => rate(n, () => saveAll(queue, n))),
    latency: (n) =>
      withClient(client('bq', true), async (queue) => {
        const results = new Arrivals<number>();
        queue.on('job succeeded', (id: string, result: number) => results.put(id, result));
        return probeLoop(n, async () => {
          const job = await queue.createJob({ sentAt: now() }).save();
          if (!job.id) throw new Error('Bee-Queue did not save a probe (an id taken already)');
          return results.take(job.id);
        });
      }),
  };
}

/** Values keyed by id that may arrive before anyone waits for them (an event heard before its send returned). */
class Arrivals<T> {
  readonly #values = new Map<string, T>();
  readonly #waiters = new Map<string, (value: T) => void>();

  put(id: string, value: T): void {
    const waiter = this.#waiters.get(id);
    this.#waiters.delete(id);
    if (waiter) waiter(value);
    else this.#values.set(id, value);
  }

  take(id: string): Promise<T> {
    if (this.#values.has(id)) {
      const value = this.#values.get(id)!;
      this.#values.delete(id);
      return Promise.resolve(value);
    }
    return new Promise((resolve) => this.#waiters.set(id, resolve));
  }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ (results in Redis): no way to show a filled queue to a running worker at once, so
// the queue is filled first, the worker started, and the clock runs from its first stored result.

function celeriacAmqp(channel: amqp.Channel): System {
  const queue = uniqueQueue('celeriac-amqp');
  const backend = redisUrl(DB);
  return {
    name: 'celeriac',
    reset: () => resetAmqp(channel, queue),
    worker: (c) => celeriacSpec('amqp', AMQP_URL, backend, queue, c),
    stage: (n) => fillAmqp(queue, n),
    latency: (n) => celeriacLatency(AMQP_URL, queue, n, backend),
  };
}

function celeryNodeAmqp(channel: amqp.Channel): System {
  const queue = uniqueQueue('celery-node-amqp');
  const backend = redisUrl(DB);
  return {
    name: `celery-node ${celeryNodeVersion()}`,
    reset: () => resetAmqp(channel, queue),
    worker: () => nodeSpec('celery-node (amqp)', './peers/celery-node-worker.mjs', [AMQP_URL, backend, queue]),
    stage: (n) => fillAmqp(queue, n), // celeriac sends Celery protocol 2, which celery-node reads; its own sends declare the queue each time
    latency: (n) => withCeleryNodeClient(AMQP_URL, backend, queue, (client) => probeByChannel(n, (id, sentAt) => void client.sendTask('bench.probe', [sentAt], {}, id))),
  };
}

/** Deletes the queue and the dead-letter queue celeriac declares beside it. */
async function resetAmqp(channel: amqp.Channel, queue: string): Promise<void> {
  await channel.deleteQueue(queue);
  await channel.deleteQueue(`${queue}.celeriac.dead`);
  await flush(DB);
}

/** n no-ops sent to the queue now (a worker consumes them as they come); "release" does nothing. */
async function fillAmqp(queue: string, n: number): Promise<Staged> {
  const results = new Redis({ ...REDIS, db: DB });
  const base = await results.dbsize();
  const ids = await celeriacSend(AMQP_URL, queue, n);
  return { release: async () => performance.now(), stored: celeryResultCount(results, ids, base), close: async () => results.disconnect() };
}

/** Fills the queue, starts the worker, and times from its first stored result to the last (its boot left out). */
async function drainFromFirstResult(system: System, concurrency: number): Promise<Drained> {
  await system.reset();
  const staged = await system.stage(SIZES.tasks);
  await waitForQuiet(QUIET);
  const worker = new WorkerProcess(system.worker(concurrency));
  try {
    const first = await worker.guard(firstStored(staged), 'before its first result');
    const meter = new CpuMeter(worker.pid, redisPid);
    const cpu = meter.snapshot();
    const finished = await worker.guard(whenStored(SIZES.tasks, () => staged.stored(), TIMEOUT.drain), 'draining');
    return { rate: (SIZES.tasks - first.count) / ((finished - first.at) / 1000), others: meter.since(cpu).others };
  } finally {
    await worker.stop();
    await staged.close();
  }
}

async function firstStored(staged: Staged): Promise<{ at: number; count: number }> {
  const deadline = performance.now() + TIMEOUT.ready * 1000;
  for (;;) {
    const count = await staged.stored();
    if (count > 0) return { at: performance.now(), count };
    if (performance.now() > deadline) throw new Error(`no result within ${TIMEOUT.ready} s`);
    await sleep(5);
  }
}

// ---------------------------------------------------------------------------------------------
// SQLite across processes: staged under another queue name in the same file, renamed in one
// UPDATE (the worker's change watcher wakes on the commit); results counted in celeriac_results.

function celeriacSqlite(): System {
  const queue = uniqueQueue('celeriac-sqlite');
  return {
    name: 'celeriac',
    // The file, its -wal and -shm, and whatever else celeriac keeps beside it (a .consumers directory).
    reset: async () => readdirSync(dirname(SQLITE_FILE)).filter((name) => name.startsWith(basename(SQLITE_FILE))).forEach((name) => rmSync(join(dirname(SQLITE_FILE), name), { recursive: true, force: true })),
    worker: (c) => celeriacSpec('sqlite', SQLITE_URL, SQLITE_URL, queue, c),
    async stage(n) {
      const staged = `${queue}.staged`;
      await celeriacSend(SQLITE_URL, staged, n);
      const db = new Database(SQLITE_FILE);
      db.pragma('busy_timeout = 5000');
      const stored = (): number => {
        try {
          return (db.prepare('SELECT COUNT(*) AS n FROM celeriac_results').get() as { n: number }).n;
        } catch (error) {
          if (/no such table/.test(String(error))) return 0; // the worker creates it with its first result
          throw error;
        }
      };
      const base = stored();
      return {
        async release() {
          const moved = db.prepare('UPDATE celeriac_messages SET queue = ? WHERE queue = ?').run(queue, staged).changes;
          const at = performance.now(); // the commit: before it the worker could not see them
          if (moved !== n) throw new Error(`${moved} of ${n} staged messages renamed`);
          return at;
        },
        stored: async () => stored() - base,
        close: async () => void db.close(),
      };
    },
    latency: (n) => celeriacLatency(SQLITE_URL, queue, n),
  };
}

/** CPU (% of one core) of the idle worker and of a producer process waiting on a result, over IDLE.cpu seconds. */
async function idleCpu(worker: WorkerProcess): Promise<{ worker: number; producer: number }> {
  const waiter = new WorkerProcess(nodeSpec('celeriac producer waiting on a result', './peers/celeriac-waiter.mjs', [SQLITE_URL, uniqueQueue('nobody')]));
  try {
    await waiter.guard(sleep(2000), 'starting');
    const before = [processCpuSeconds(worker.pid), processCpuSeconds(waiter.pid)] as const;
    const started = performance.now();
    await waiter.guard(sleep(IDLE.cpu * 1000), 'waiting on its result');
    const seconds = (performance.now() - started) / 1000;
    return { worker: ((processCpuSeconds(worker.pid) - before[0]) / seconds) * 100, producer: ((processCpuSeconds(waiter.pid) - before[1]) / seconds) * 100 };
  } finally {
    await waiter.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring: rounds, the systems taking turns.

type Samples = Record<string, number[]>;
const samples = new Map<string, Samples>();

function record(section: string, system: string, values: Record<string, number>): void {
  const key = `${section}/${system}`;
  const entry = samples.get(key) ?? {};
  for (const [metric, value] of Object.entries(values)) (entry[metric] ??= []).push(value);
  samples.set(key, entry);
  console.log(`${new Date().toISOString().slice(11, 19)} ${section}: ${system}`, Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Math.round(v * 100) / 100])));
}

let redisPid: number | null = null;

async function measureRedis(system: System, concurrencies: number[]): Promise<void> {
  for (const c of concurrencies) {
    const values = await withWorker(system, c, async (worker) => {
      await sleep(IDLE.rss * 1000);
      const idle = treeMemory(worker.pid);
      resetPeakRss(worker.pid); // the peak of the drain, not of the boot
      const drained = await drain(system, worker, SIZES.tasks, new CpuMeter(worker.pid, redisPid));
      return c === 50 ? { drain50: drained.rate, others50: drained.others, idleRss: idle.rss, peakRss: peakRssMb(worker.pid), processes: idle.processes } : { [`drain${c}`]: drained.rate, [`others${c}`]: drained.others };
    });
    record('redis', system.name, values);
  }
  record('redis', system.name, await latencyRun(system));
  await system.reset();
  record('redis', system.name, { bulk: await system.bulk!(SIZES.tasks) });
}

async function latencyRun(system: System): Promise<{ p50: number; p99: number }> {
  return withWorker(system, 1, async () => {
    await waitForQuiet(QUIET);
    const latencies = await system.latency(SIZES.probes);
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
  });
}

/**
 * The machine's floor for an enqueue→start figure: round trips over TCP on 127.0.0.1 between this
 * script and an echo server in a Node process of its own, one at a time, 2 ms apart, as the probes
 * are sent. A probe's path has the same shape (this process writes; Redis or RabbitMQ reads and
 * writes; the worker reads), so no system's p50 or p99 can be expected below these.
 */
async function measureFloor(): Promise<void> {
  const server = new WorkerProcess(nodeSpec('echo', './peers/echo-server.mjs', []));
  let socket: Socket | undefined;
  try {
    const port = await server.guard(within(TIMEOUT.ready, listeningPort(server), 'the echo server'), 'starting');
    socket = connect(port, '127.0.0.1').setNoDelay(true);
    await server.guard(once(socket, 'connect'), 'connecting');
    const echo = socket;
    const roundTrip = async (): Promise<number> => {
      const sentAt = now();
      const echoed = once(echo, 'data');
      echo.write('x');
      await echoed;
      return now() - sentAt;
    };
    for (let i = 0; i < 50; i++) await roundTrip(); // warm-up, as the probes have
    await waitForQuiet(QUIET);
    const latencies = await probeLoop(SIZES.probes, roundTrip);
    record('floor', 'tcp', { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) });
  } finally {
    socket?.destroy();
    await server.stop();
  }
}

/** The port a server peer printed on its first line of output. */
async function listeningPort(server: WorkerProcess): Promise<number> {
  for (;;) {
    const port = Number.parseInt(server.output, 10);
    if (port > 0) return port;
    await sleep(10);
  }
}

async function measureSqlite(system: System): Promise<void> {
  record('sqlite', system.name, { drain50: (await withWorker(system, 50, (worker) => drain(system, worker, SIZES.tasks, new CpuMeter(worker.pid, null)))).rate });
  const values = await withWorker(system, 1, async (worker) => {
    await waitForQuiet(QUIET);
    const latencies = await system.latency(SIZES.probes);
    const cpu = await idleCpu(worker);
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), workerCpu: cpu.worker, producerCpu: cpu.producer };
  });
  record('sqlite', system.name, values);
}

/** Idle RSS of `celeriac worker -A bench/noop-tasks.ts` on SQLite and on Redis, both at once, after one task and IDLE.tsModule s. */
async function measureTsModule(): Promise<void> {
  const queue = uniqueQueue('celeriac-ts');
  await celeriacSqlite().reset();
  await flush(DB);
  const targets = { sqlite: SQLITE_URL, redis: redisUrl(DB) };
  const rss = await Promise.all(
    Object.entries(targets).map(async ([label, url]) => {
      const worker = new WorkerProcess(celeriacSpec(`${label}-ts`, url, url, queue, 10, path('./noop-tasks.ts')));
      try {
        const app = new Celeriac({ broker: url, backend: url, defaultQueue: queue });
        await worker.guard(app.sendTask('bench.noop').get({ timeout: TIMEOUT.ready }), 'running its first task');
        await app.close();
        await worker.guard(sleep(IDLE.tsModule * 1000), 'idle');
        return [label, treeMemory(worker.pid).rss] as const;
      } finally {
        await worker.stop();
      }
    }),
  );
  record('ts', 'celeriac', Object.fromEntries(rss));
}

// ---------------------------------------------------------------------------------------------
// The report.

const median = (values: number[]): number => percentile(values, 0.5);
const get = (section: string, system: string, metric: string): number[] => samples.get(`${section}/${system}`)?.[metric] ?? [];
const mid = (section: string, system: string, metric: string): number => median(get(section, system, metric));
const fmtRate = (v: number): string => perSecond(v);
const fmtMs = (v: number): string => `${v.toFixed(2)} ms`;
const fmtMb = (v: number): string => `${v.toFixed(1)} MB`;
const fmtPct = (v: number): string => `${v.toFixed(2)}%`;

/** "median (min–max)" of a metric's rounds, or — when the system has no such figure. */
function cell(section: string, system: string, metric: string, format: (v: number) => string): string {
  const values = get(section, system, metric);
  return values.length ? `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})` : '—';
}

interface Target {
  text: string;
  ok: boolean;
  detail: string;
}

const target = (text: string, ours: number, bound: number, atLeast: boolean, detail: string): Target => ({ text, ok: atLeast ? ours >= bound : ours <= bound, detail });

function redisTables(names: string[]): string {
  const ours = names[0]!;
  const metrics: [string, string, (v: number) => string][] = [
    ['drain50', 'drain c=50', fmtRate],
    ['drain1', 'drain c=1', fmtRate],
    ['bulk', 'bulk enqueue', fmtRate],
    ['p50', 'enqueue→start p50', fmtMs],
    ['p99', 'p99', fmtMs],
    ['peakRss', 'worker peak RSS (draining)', fmtMb],
    ['idleRss', 'idle worker RSS', fmtMb],
  ];
  const rows = names.map((name) => [name, ...metrics.map(([metric, , format]) => cell('redis', name, metric, format))]);
  const ratioRow = (peer: string): string[] => [`celeriac / ${peer}`, ...metrics.map(([metric]) => ratio(mid('redis', ours, metric), mid('redis', peer, metric)))];
  const others = names.map((name) => [name, ...['others50', 'others1'].map((m) => get('redis', name, m).map((v) => v.toFixed(2)).join(', ') || '—')]);
  return `${table(['system', ...metrics.map(([, label]) => label)], [...rows, ...names.slice(1).map(ratioRow)])}

Cores other processes on the machine used during each drain (rounds in order; high means a disturbed round):

${table(['system', 'drain c=50', 'drain c=1'], others)}`;
}

function targets(names: string[], amqpNames: string[]): Target[] {
  const [ours, bull, bee] = names as [string, string, string];
  const [amqpOurs, amqpNode] = amqpNames as [string, string];
  const r = (metric: string, system: string): number => mid('redis', system, metric);
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  const tsRss = Math.max(mid('ts', 'celeriac', 'sqlite'), mid('ts', 'celeriac', 'redis'));
  return [
    target('Redis drain c=50 ≥ 2.5× BullMQ', r('drain50', ours), 2.5 * r('drain50', bull), true, x(r('drain50', ours), r('drain50', bull))),
    target('Redis drain c=50 ≥ 1.5× Bee-Queue', r('drain50', ours), 1.5 * r('drain50', bee), true, x(r('drain50', ours), r('drain50', bee))),
    target('Redis drain c=1 ≥ 2× BullMQ', r('drain1', ours), 2 * r('drain1', bull), true, x(r('drain1', ours), r('drain1', bull))),
    target("Redis bulk enqueue ≥ Bee-Queue's saveAll", r('bulk', ours), r('bulk', bee), true, x(r('bulk', ours), r('bulk', bee))),
    target("Redis enqueue→start p50 ≤ Bee-Queue's", r('p50', ours), r('p50', bee), false, `${fmtMs(r('p50', ours))} vs ${fmtMs(r('p50', bee))}`),
    target("Redis enqueue→start p99 ≤ 1.2× Bee-Queue's", r('p99', ours), 1.2 * r('p99', bee), false, `${fmtMs(r('p99', ours))} vs ${fmtMs(r('p99', bee))}`),
    target('RabbitMQ drain c=50 ≥ 1.5× celery-node', mid('amqp', amqpOurs, 'drain50'), 1.5 * mid('amqp', amqpNode, 'drain50'), true, x(mid('amqp', amqpOurs, 'drain50'), mid('amqp', amqpNode, 'drain50'))),
    target("RabbitMQ enqueue→start p99 ≤ celery-node's", mid('amqp', amqpOurs, 'p99'), mid('amqp', amqpNode, 'p99'), false, `${fmtMs(mid('amqp', amqpOurs, 'p99'))} vs ${fmtMs(mid('amqp', amqpNode, 'p99'))}`),
    target("worker peak RSS while draining ≤ Bee-Queue's", r('peakRss', ours), r('peakRss', bee), false, `${fmtMb(r('peakRss', ours))} vs ${fmtMb(r('peakRss', bee))}`),
    target('idle RSS with a TypeScript task module ≤ 60 MB', tsRss, 60, false, `SQLite ${fmtMb(mid('ts', 'celeriac', 'sqlite'))}, Redis ${fmtMb(mid('ts', 'celeriac', 'redis'))}`),
    target('SQLite cross-process drain ≥ 25,000/s', mid('sqlite', 'celeriac', 'drain50'), 25_000, true, fmtRate(mid('sqlite', 'celeriac', 'drain50'))),
    target('SQLite enqueue→start p50 ≤ 1 ms', mid('sqlite', 'celeriac', 'p50'), 1, false, fmtMs(mid('sqlite', 'celeriac', 'p50'))),
    target('SQLite enqueue→start p99 ≤ 5 ms', mid('sqlite', 'celeriac', 'p99'), 5, false, fmtMs(mid('sqlite', 'celeriac', 'p99'))),
    target('SQLite idle CPU near 0% (worker and waiting producer each < 1% of a core)', Math.max(mid('sqlite', 'celeriac', 'workerCpu'), mid('sqlite', 'celeriac', 'producerCpu')), 1, false, `worker ${fmtPct(mid('sqlite', 'celeriac', 'workerCpu'))}, producer ${fmtPct(mid('sqlite', 'celeriac', 'producerCpu'))}`),
  ];
}

interface Context {
  names: string[];
  amqpNames: string[];
  redis: string;
  code: string;
  load: { before: number[]; after: number[] };
  minutes: number;
}

function report({ names, amqpNames, redis, code, load, minutes }: Context): string {
  const n = (value: number): string => value.toLocaleString('en-US');
  const loads = (values: number[]): string => values.map((v) => v.toFixed(2)).join(', ');
  const amqpRows = amqpNames.map((name) => [name, cell('amqp', name, 'drain50', fmtRate), cell('amqp', name, 'p50', fmtMs), cell('amqp', name, 'p99', fmtMs), get('amqp', name, 'others50').map((v) => v.toFixed(2)).join(', ')]);
  const [amqpOurs, amqpNode] = amqpNames as [string, string];
  const amqpRatio = ['celeriac / celery-node', ...['drain50', 'p50', 'p99'].map((m) => ratio(mid('amqp', amqpOurs, m), mid('amqp', amqpNode, m))), ''];
  const sqliteRow = ['celeriac', cell('sqlite', 'celeriac', 'drain50', fmtRate), cell('sqlite', 'celeriac', 'p50', fmtMs), cell('sqlite', 'celeriac', 'p99', fmtMs), cell('sqlite', 'celeriac', 'workerCpu', fmtPct), cell('sqlite', 'celeriac', 'producerCpu', fmtPct)];
  const tsRow = ['celeriac -A bench/noop-tasks.ts -c 10', cell('ts', 'celeriac', 'sqlite', fmtMb), cell('ts', 'celeriac', 'redis', fmtMb)];
  const list = targets(names, amqpNames);
  return `## Separate processes: every worker as its users start it, the producer in another process

Machine: ${machine()}. Redis ${redis}. Date: ${new Date().toISOString().slice(0, 10)}. Code: ${code}. The run took ${minutes.toFixed(1)} minutes.
Load average (1, 5, 15 min) when the run started: ${loads(load.before)}; when it ended: ${loads(load.after)}.
Reproduce: \`npx tsc -p tsconfig.build.json && npx tsx bench/run.ts separate\` (script: bench/separate.ts; workers: bench/peers/).

Every figure is the median of ${ROUNDS} rounds with the (min–max) across them, the systems taking turns; ratios are celeriac's
median over the peer's, from this run. ${n(SIZES.tasks)} no-op tasks, results stored, everything on 127.0.0.1. The producer is
this script; each worker is a process of its own, fresh for every measurement, started as its users start it:
celeriac \`node bin/celeriac.js worker -A bench/peers/celeriac-tasks.js --broker <url> --backend <url> -Q <queue> -c N -l warning\`
(the built CLI, default prefetch 4 × c, acks late), BullMQ and Bee-Queue \`node bench/peers/bullmq-worker.mjs\` /
\`bee-queue-worker.mjs <queue> <db> <c>\`, celery-node \`node bench/peers/celery-node-worker.mjs <broker> <backend> <queue>\`
(it has no concurrency setting: it takes the next message without awaiting the handler, so its one drain is under c=50).

**Drains.** Each worker is warmed up first: ${n(SIZES.warmUp)} no-ops through the same path, its boot included there and not
in any clock. Then ${n(SIZES.tasks)} no-ops are prepared where the worker cannot see them and shown to it at once, and the clock
runs from that instant until every result is stored, polled every 5 ms:
- celeriac and celery-node (Celery's format): sent by this script with celeriac's \`delayMany\` to the list \`<queue>.staged\`,
  then renamed to the queue's list with one \`RENAMENX\`, which wakes a worker blocked on it; stored =
  \`celery-task-meta-<id>\` keys (\`DBSIZE\` growth, then one \`EXISTS\` over all ${n(SIZES.tasks)} ids near the end, so it is exact);
- BullMQ: \`queue.pause()\`, \`addBulk\`, clock, \`queue.resume()\`; stored = the completed set with return values (\`ZCARD\`);
- Bee-Queue: \`saveAll\` under the key prefix \`bqstaged\`, its job hash and id counter renamed to \`bq:\`'s, clock, the waiting list
  renamed; stored = the
  \`succeeded\` set (\`SCARD\`, written in the same MULTI as the job; Bee-Queue sends results in its succeeded event, it does not
  keep them);
- RabbitMQ: there is no way to show a filled queue to a running worker at once, so the queue is filled (celeriac's
  \`delayMany\`, Celery protocol 2, which celery-node reads), the worker started, and the clock runs from its first stored
  result (in Redis db ${DB}) to the last: tasks after the first over that time. The worker's boot is left out, its warm-up too;
- SQLite: one file (\`${SQLITE_URL.replace(String(process.pid), '<pid>')}\`), the worker and this script two processes on it. Sent under another
  queue name, renamed in one \`UPDATE\` (the clock starts at its commit; the worker's change watcher wakes on it); stored =
  rows of \`celeriac_results\`.

Before each clocked drain and latency run the script waits until the machine has used under ${QUIET.threshold} cores for 1 s (at most
${QUIET.maxSeconds} s); the cores the rest of the machine used during each drain are listed, so a disturbed round shows.

**Latency**: a fresh worker at c=1 (celery-node: its only setting), warmed up, idle; ${SIZES.probes} probes one at a time, 2 ms apart,
each through the system's own client, carrying its send time (\`process.hrtime\`, CLOCK_MONOTONIC, which all processes share, taken just
before the send call; not \`performance.timeOrigin + performance.now()\`, whose origin is the wall clock read at each process's
start and drifted between processes here); the task reads the same clock at its start and returns the difference; p50 and p99 per round.
Results come back by the system's own means (celeriac: \`get()\`; BullMQ: \`waitUntilFinished\`; Bee-Queue: its succeeded
event; celery-node: the result's \`celery-task-meta-<id>\` channel, subscribed before the send, since its \`get()\` polls
every 500 ms).

**Bulk enqueue**: ${n(SIZES.tasks)} no-ops into an empty queue, no worker running, in batches of ${n(SIZES.batch)}, each awaited: celeriac \`delayMany\`,
BullMQ \`addBulk\`, Bee-Queue \`saveAll\`; celery-node has none: \`applyAsync\` in a loop (it returns no promise), timed until
the list holds all of them.

**Memory**: idle RSS is the c=50 worker's \`VmRSS\` (process tree; every worker here is one process) ${IDLE.rss} s after its warm-up,
before the drain; peak is its \`VmHWM\` after the c=50 drain, reset to the current RSS just before it (\`echo 5 >
/proc/<pid>/clear_refs\`): the most it held while draining, its boot and warm-up left out.

**The machine's floor** for the enqueue→start figures, in the same run: round trips over TCP on 127.0.0.1 between this script
and an echo server in a Node process of its own (\`bench/peers/echo-server.mjs\`), ${n(SIZES.probes)} one at a time, 2 ms apart. A probe's path
has the same shape (this process writes, the broker reads and writes, the worker reads): p50 ${cell('floor', 'tcp', 'p50', fmtMs)},
p99 ${cell('floor', 'tcp', 'p99', fmtMs)}.

### Redis (db ${DB}: every worker and its staged tasks, flushed before each worker starts)

${redisTables(names)}

### RabbitMQ (\`${AMQP_URL}\`, results in Redis db ${DB})

celeriac's worker acks late (after the task, its default); celery-node acks on receipt, takes messages with no prefetch limit, and
its worker and client run with amqplib's \`noDelay\` (TCP_NODELAY). Latency at c=1 for celeriac, celery-node unbounded.

${table(['system', 'drain c=50', 'enqueue→start p50', 'p99', 'cores used by other processes, per round'], [...amqpRows, amqpRatio])}

### SQLite across processes (celeriac)

Idle CPU: over ${IDLE.cpu} s, in % of one core (\`/proc/<pid>/stat\` utime + stime): the c=1 worker after its latency run, and a
separate producer process (\`bench/peers/celeriac-waiter.mjs\`) awaiting the result of a task no worker consumes.

${table(['system', 'drain c=50', 'enqueue→start p50', 'p99', 'idle worker CPU', 'idle producer waiting on a result, CPU'], [sqliteRow])}

### Idle RSS with a TypeScript task module

\`node bin/celeriac.js worker -A bench/noop-tasks.ts\` (celeriac compiles the module itself), default concurrency, after one task
and ${IDLE.tsModule} s idle: \`VmRSS\` of the process tree. Both workers run at once.

${table(['worker', 'SQLite', `Redis (db ${DB})`], [tsRow])}

### Targets (issue 14)

${list.map((t) => `- ${t.text} — ${met(t.ok)} (${t.detail})`).join('\n')}`;
}

// ---------------------------------------------------------------------------------------------

async function findRedisPid(): Promise<number | null> {
  const pid = await withRedis(0, async (r) => Number(/process_id:(\d+)/.exec(await r.info('server'))?.[1]));
  return Number.isInteger(pid) && existsSync(`/proc/${pid}/comm`) && readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('redis') ? pid : null;
}

export async function runSeparateBench(): Promise<void> {
  if (!existsSync(path('../dist/index.js'))) throw new Error('the celeriac worker runs the build: run `npx tsc -p tsconfig.build.json` first');
  if (PROFILE) mkdirSync(PROFILE_DIR, { recursive: true });
  const started = performance.now();
  const before = loadavg();
  const code = await codeState(); // now: the build the workers run was made from this tree
  redisPid = await findRedisPid();
  const stopKilling = killOnExit();
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  const redisSystems: [System, number[]][] = [
    [celeriacRedis(), [50, 1]],
    [bullmq(), [50, 1]],
    [beeQueue(), [50, 1]],
    [celeryNodeRedis(), [50]],
  ];
  const amqpSystems = [celeriacAmqp(channel), celeryNodeAmqp(channel)];
  const sqlite = celeriacSqlite();
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`== round ${round} of ${ROUNDS}`);
      await measureFloor();
      for (const [system, concurrencies] of redisSystems) await measureRedis(system, concurrencies);
      for (const system of amqpSystems) {
        record('amqp', system.name, await drainFromFirstResult(system, 50).then((d) => ({ drain50: d.rate, others50: d.others })));
        record('amqp', system.name, await latencyRun(system));
      }
      await measureSqlite(sqlite);
      await measureTsModule();
    }
    const body = report({
      names: redisSystems.map(([s]) => s.name),
      amqpNames: amqpSystems.map((s) => s.name),
      redis: await redisVersion(),
      code,
      load: { before, after: loadavg() },
      minutes: (performance.now() - started) / 60_000,
    });
    writeSection('separate', body);
    console.log(body);
  } finally {
    stopKilling();
    // A failed cleanup must not hide the error that ended the run.
    for (const system of amqpSystems) await system.reset().catch((error: unknown) => console.error('could not delete a queue:', error));
    await channel.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await flush(DB).catch((error: unknown) => console.error('could not flush the dbs:', error));
    await sqlite.reset();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runSeparateBench();
