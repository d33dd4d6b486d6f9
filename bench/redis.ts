/**
 * Redis benchmark: celeriac beside BullMQ and celery-node on the same Redis (db 12, flushed
 * before each measurement). Enqueue rate (single awaited, bulk), drain of no-op tasks with
 * results stored at concurrency 1 and 50, enqueue→start latency on an idle worker, and the RSS
 * of an idle worker process. The helpers every system shares (`measure`, `Probes`, `childRss`...)
 * are exported for bench/amqp.ts.
 *
 * Run: npx tsx -e "import('./bench/redis.ts').then((m) => m.runRedisBench())"   (after npm run build)
 */
import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue, Worker as BullWorker } from 'bullmq';
import celery from 'celery-node';
import { Redis } from 'ioredis';
import { Celeriac, createLogger, type AsyncResult, type Task } from '../src/index.js';
import { machine, percentile, perSecond, rate, rssMb, table, writeSection } from './lib.js';

const REDIS = { host: '127.0.0.1', port: 6379, db: 12 };
export const REDIS_URL = `redis://${REDIS.host}:${REDIS.port}/${REDIS.db}`;
const quiet = createLogger('critical');
const BATCH = 1000;
/** Rounds of the rate steps; the tables show the median. */
export const ROUNDS = 3;
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

// ---------------------------------------------------------------------------------------------
// Shared by every system (and by bench/amqp.ts).

/** What a system under test does; {@link measure} runs every system through the same steps. */
export interface System {
  label: string;
  /** The queue (BullMQ: queue name) it sends to. */
  queue: string;
  /** Tasks/s enqueueing `n` no-op tasks, awaiting each send. */
  enqueue(n: number): Promise<number>;
  /** Tasks/s enqueueing `n` no-op tasks the system's fastest way; undefined when it has none. */
  enqueueBulk?(n: number): Promise<number>;
  /** Pre-fills `n` no-op tasks, starts a worker at `concurrency`; tasks/s until all n results are stored. */
  drain(n: number, concurrency: number): Promise<number>;
  /** Enqueue→start latencies (ms) of `n` probes sent one at a time to an idle worker. */
  latency(n: number): Promise<number[]>;
  /** RSS (MB) of an idle worker process, after it ran some tasks. */
  rss(): Promise<number>;
}

export interface Sizes {
  single: number;
  bulk: number;
  drain: number;
  probes: number;
  concurrencies: number[];
}

export interface Row {
  label: string;
  single: number;
  bulk: number;
  drains: number[];
  p50: number;
  p99: number;
  rss: number;
  /** Each round's drain rates, per concurrency. */
  drainRounds: number[][];
}

/** "min–max" of a drain's rounds, to judge a ratio by. */
export const spread = (rounds: number[] | undefined): string =>
  rounds?.length ? `${perSecond(Math.min(...rounds))}–${perSecond(Math.max(...rounds))}` : '—';

/**
 * Runs each system (with its sizes) through every step, calling `reset` (empty its queue and the
 * results) before each. The rate steps run `rounds` times with the systems taking turns, so a noisy
 * moment on the machine hits all of them, and each rate is the median round's; latency and RSS run once.
 */
export async function measure(entries: [System, Sizes][], rounds: number, reset: (system: System) => Promise<void>): Promise<Row[]> {
  const rates = entries.map(() => ({ single: [] as number[], bulk: [] as number[], drains: [] as number[][] }));
  for (let round = 0; round < rounds; round++) {
    for (const [i, [system, sizes]] of entries.entries()) {
      const r = rates[i]!;
      await reset(system);
      r.single.push(await system.enqueue(sizes.single));
      await reset(system);
      r.bulk.push((await system.enqueueBulk?.(sizes.bulk)) ?? NaN);
      for (const [k, concurrency] of sizes.concurrencies.entries()) {
        await reset(system);
        (r.drains[k] ??= []).push(await system.drain(sizes.drain, concurrency));
      }
      console.log(system.label, `round ${round + 1}`, { single: r.single.at(-1), bulk: r.bulk.at(-1), drains: r.drains.map((d) => d.at(-1)) });
    }
  }
  const rows: Row[] = [];
  for (const [i, [system, sizes]] of entries.entries()) {
    await reset(system);
    const latencies = await system.latency(sizes.probes);
    await reset(system);
    const rss = await system.rss();
    await reset(system);
    const { single, bulk, drains } = rates[i]!;
    const median = (samples: number[]): number => percentile(samples, 0.5);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    rows.push({ label: system.label, single: median(single), bulk: median(bulk), drains: drains.map(median), p50, p99, rss, drainRounds: drains });
    console.log(rows.at(-1));
  }
  return rows;
}

/** Counts finished tasks; `done` resolves at `n`. */
export function counter(n: number): { tick: () => void; done: Promise<void> } {
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { tick: () => void (++count === n && finish()), done };
}

/** Resolves once `count()` reaches `n`, polling every 5 ms. */
export async function until(n: number, count: () => Promise<number>): Promise<void> {
  while ((await count()) < n) await sleep(5);
}

/** Probe starts: the task handler calls `mark(i)`; `run` sends probes one at a time and times them. */
export class Probes {
  readonly #waiting = new Map<number, (at: number) => void>();

  mark(i: number): void {
    this.#waiting.get(i)?.(performance.now());
  }

  async run(n: number, send: (i: number) => Promise<unknown>): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = new Promise<number>((resolve) => this.#waiting.set(i, resolve));
      const sentAt = performance.now();
      await send(i);
      samples.push((await started) - sentAt);
      this.#waiting.delete(i);
      await sleep(2);
    }
    return samples;
  }
}

/** Spawns a worker process, runs `fn` with its pid, then stops it (SIGTERM; SIGKILL after 10 s). */
export async function withChild<T>(command: string, args: string[], options: SpawnOptions, fn: (pid: number) => Promise<T>): Promise<T> {
  const child = spawn(command, args, { stdio: 'ignore', ...options });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    return await fn(child.pid!);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
  }
}

/** RSS (MB, the process and its children) of a worker process, idle 3 s after `feed` ran tasks through it. */
export function childRss(command: string, args: string[], feed: () => Promise<void>, options: SpawnOptions = {}): Promise<number> {
  return withChild(command, args, options, async (pid) => {
    await feed();
    await sleep(3000);
    return treeRss(pid);
  });
}

function treeRss(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  return rssMb(pid) + children.reduce((sum, child) => sum + treeRss(child), 0);
}

/** A queue name no earlier run used. */
export const uniqueQueue = (system: string): string => `bench.${system}.${process.pid}.${Date.now().toString(36)}`;

/** Runs `fn` with console.info and console.log silenced (celery-node logs every task). */
export async function muted<T>(fn: () => Promise<T>): Promise<T> {
  const { info, log } = console;
  console.info = console.log = () => undefined;
  try {
    return await fn();
  } finally {
    Object.assign(console, { info, log });
  }
}

export const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '—');
export const ms = (value: number): string => `${value.toFixed(2)} ms`;
export const maybe = (value: number, format: (v: number) => string): string => (Number.isFinite(value) ? format(value) : '—');
export const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');

/** A system's row of the results table: rates, latency and RSS. */
export function resultCells(row: Row): string[] {
  return [row.label, perSecond(row.single), maybe(row.bulk, perSecond), ...row.drains.map((d) => maybe(d, perSecond)), ms(row.p50), ms(row.p99), `${row.rss.toFixed(1)} MB`];
}

/** The row of celeriac's figures over a peer's, in the columns of {@link resultCells}. */
export function ratioCells(celeriac: Row, peer: Row): string[] {
  return [
    `celeriac / ${peer.label}`,
    ratio(celeriac.single, peer.single),
    ratio(celeriac.bulk, peer.bulk),
    ...celeriac.drains.map((d, i) => ratio(d, peer.drains[i]!)),
    ratio(celeriac.p50, peer.p50),
    ratio(celeriac.p99, peer.p99),
    ratio(celeriac.rss, peer.rss),
  ];
}

// ---------------------------------------------------------------------------------------------
// celeriac (also used by bench/amqp.ts with an amqp:// broker).

/** Sends `n` calls of a no-argument task with `delayMany`, in batches of 1,000, each awaited. */
export async function delayInBatches<R>(task: Task<[], R>, n: number): Promise<AsyncResult<R>[]> {
  const results = [];
  for (let i = 0; i < n; i += BATCH) {
    const batch = task.delayMany(Array.from({ length: Math.min(BATCH, n - i) }, () => []));
    await batch[0]!.sent;
    results.push(...batch);
  }
  return results;
}

export function celeriacSystem(label: string, broker: string, backend: string): System {
  const queue = uniqueQueue('celeriac');
  const open = () => {
    const app = new Celeriac({ broker, backend, defaultQueue: queue });
    return { app, noop: app.task('bench.noop', () => null) };
  };
  return {
    label,
    queue,
    async enqueue(n) {
      const { app, noop } = open();
      await app.broker(); // connected before the clock starts, as the peers' clients are
      const perSecond = await rate(n, async () => {
        for (let i = 0; i < n; i++) await noop.delay().sent;
      });
      await app.close();
      return perSecond;
    },
    async enqueueBulk(n) {
      const { app, noop } = open();
      await app.broker();
      const perSecond = await rate(n, async () => void (await delayInBatches(noop, n)));
      await app.close();
      return perSecond;
    },
    async drain(n, concurrency) {
      const { app, noop } = open();
      await delayInBatches(noop, n);
      const worker = app.worker({ concurrency, prefetch: Math.max(concurrency * 4, 100), logger: quiet });
      const finished = counter(n);
      worker.on('task-succeeded', finished.tick);
      const perSecond = await rate(n, async () => {
        await worker.start();
        await finished.done;
      });
      await worker.stop();
      await app.close();
      return perSecond;
    },
    async latency(n) {
      const { app } = open();
      const probes = new Probes();
      const probe = app.task('bench.probe', (_ctx, i: number) => probes.mark(i));
      const worker = app.worker({ concurrency: 10, logger: quiet });
      await worker.start();
      const samples = await probes.run(n, (i) => probe.delay(i).sent);
      await worker.stop();
      await app.close();
      return samples;
    },
    async rss() {
      const cli = [path('../bin/celeriac.js'), 'worker', '-A', path('./noop-tasks.js'), '--broker', broker, '--backend', backend, '-Q', queue, '-l', 'warning'];
      const { app, noop } = open();
      const size = await childRss(process.execPath, cli, async () => {
        await Promise.all(await delayInBatches(noop, 1000));
      });
      await app.close();
      return size;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// celery-node (also used by bench/amqp.ts). It has no bulk send and no concurrency setting: its
// worker takes one message at a time and does not await the handler before taking the next.

export interface CeleryNodeSetup {
  label: string;
  broker: string;
  backend: string;
  /** A client on the result db (db 12): it holds result keys and, on Redis, the queue's list. */
  results: Redis;
  /** Messages waiting in `queue` on the broker. */
  queued: (queue: string) => Promise<number>;
  /** Pre-fills the drain and RSS runs another way, when celery-node's own sends are too slow to wait for. */
  prefill?: (queue: string, n: number) => Promise<void>;
}

export function celeryNodeSystem({ label, broker, backend, results, queued, prefill }: CeleryNodeSetup): System {
  const queue = uniqueQueue('celery-node');
  type Client = ReturnType<typeof celery.createClient>;
  type Worker = ReturnType<typeof celery.createWorker>;
  const stored = async (): Promise<number> => (await results.dbsize()) - (await results.exists(queue));
  const withClient = async <T>(fn: (client: Client) => Promise<T>): Promise<T> => {
    const client = celery.createClient(broker, backend, queue);
    try {
      return await fn(client);
    } finally {
      await client.disconnect();
    }
  };
  const withWorker = <T>(register: (worker: Worker) => void, fn: () => Promise<T>): Promise<T> =>
    muted(async () => {
      const worker = celery.createWorker(broker, backend, queue);
      register(worker);
      void worker.start();
      try {
        await worker.isReady();
        return await fn();
      } finally {
        await stopCeleryNode(worker);
      }
    });
  /** The broker publish sendTask runs and drops (sendTask returns no promise). */
  const send = async (client: Client, name: string, args: unknown[] = []): Promise<void> => {
    const { body, headers, properties } = client.createTaskMessage(randomUUID(), name, args, {});
    await client.isReady();
    await client.broker.publish(body, '', queue, headers, properties);
  };
  /** No bulk send: applyAsync in a loop without awaiting (the sends finish in the background). */
  const sendLoop = (client: Client, n: number): void => {
    const noop = client.createTask('bench.noop');
    for (let i = 0; i < n; i++) noop.applyAsync([]);
  };
  /** The loop, timed until the broker holds all n. */
  const fill = (n: number): Promise<number> =>
    withClient(async (client) => {
      await client.isReady();
      const before = await queued(queue);
      return rate(n, async () => {
        sendLoop(client, n);
        await until(before + n, () => queued(queue));
      });
    });
  return {
    label,
    queue,
    enqueue: (n) =>
      withClient(async (client) => {
        await client.isReady();
        return rate(n, async () => {
          for (let i = 0; i < n; i++) await send(client, 'bench.noop');
        });
      }),
    enqueueBulk: fill,
    async drain(n) {
      await (prefill?.(queue, n) ?? fill(n));
      const started = performance.now();
      await withWorker(
        (worker) => worker.register('bench.noop', () => null),
        () => until(n, stored),
      );
      return n / ((performance.now() - started) / 1000);
    },
    latency: (n) =>
      withClient((client) => {
        const probes = new Probes();
        return withWorker(
          (worker) => worker.register('bench.probe', (i: number) => probes.mark(i)),
          () => probes.run(n, (i) => send(client, 'bench.probe', [i])),
        );
      }),
    async rss() {
      const before = await stored();
      return withClient(async (client) => {
        await client.isReady();
        return childRss(process.execPath, [path('./peers/celery-node-worker.mjs'), broker, backend, queue], async () => {
          await (prefill?.(queue, 1000) ?? sendLoop(client, 1000));
          await until(before + 1000, stored);
        });
      });
    },
  };
}

async function stopCeleryNode(worker: ReturnType<typeof celery.createWorker>): Promise<void> {
  const broker = worker.broker as unknown as { closing?: boolean; redis?: { disconnect(): void } };
  if (broker.redis) {
    broker.closing = true; // its BRPOP loop would otherwise wait out its 5 s timeout
    broker.redis.disconnect();
    await worker.backend.disconnect();
  } else {
    await worker.disconnect();
  }
  await sleep(50);
}

// ---------------------------------------------------------------------------------------------
// BullMQ: return values are kept (removeOnComplete is off by default).

function bullmqSystem(): System {
  const name = uniqueQueue('bullmq').replaceAll('.', '-');
  const connection = REDIS;
  const withQueue = async <T>(fn: (queue: Queue) => Promise<T>): Promise<T> => {
    const queue = new Queue(name, { connection });
    try {
      return await fn(queue);
    } finally {
      await queue.close();
    }
  };
  const addBulk = async (queue: Queue, n: number): Promise<void> => {
    for (let i = 0; i < n; i += BATCH) await queue.addBulk(Array.from({ length: Math.min(BATCH, n - i) }, () => ({ name: 'bench.noop', data: {} })));
  };
  return {
    label: `BullMQ ${bullmqVersion()}`,
    queue: name,
    enqueue: (n) =>
      withQueue(async (queue) => {
        await queue.waitUntilReady();
        return rate(n, async () => {
          for (let i = 0; i < n; i++) await queue.add('bench.noop', {});
        });
      }),
    enqueueBulk: (n) =>
      withQueue(async (queue) => {
        await queue.waitUntilReady();
        return rate(n, () => addBulk(queue, n));
      }),
    drain: (n, concurrency) =>
      withQueue(async (queue) => {
        await addBulk(queue, n);
        const worker = new BullWorker(name, async () => null, { connection, concurrency, autorun: false });
        const finished = counter(n);
        worker.on('completed', finished.tick);
        const perSecond = await rate(n, async () => {
          void worker.run();
          await finished.done;
        });
        await worker.close();
        return perSecond;
      }),
    latency: (n) =>
      withQueue(async (queue) => {
        const probes = new Probes();
        const worker = new BullWorker(name, async (job) => probes.mark(job.data.i as number), { connection, concurrency: 10 });
        await worker.waitUntilReady();
        await sleep(200); // its fetch loop is blocking on the queue
        const samples = await probes.run(n, (i) => queue.add('bench.probe', { i }));
        await worker.close();
        return samples;
      }),
    rss: () =>
      withQueue((queue) =>
        childRss(process.execPath, [path('./peers/bullmq-worker.mjs'), name, String(REDIS.db)], async () => {
          await addBulk(queue, 1000);
          await until(1000, async () => (await queue.getJobCounts('completed')).completed ?? 0);
        }),
      ),
  };
}

const bullmqVersion = (): string => JSON.parse(readFileSync(path('../node_modules/bullmq/package.json'), 'utf8')).version;
export const celeryNodeVersion = (): string => JSON.parse(readFileSync(path('../node_modules/celery-node/package.json'), 'utf8')).version;

/** Pipelined redis-benchmark ops/s for SET, LPUSH and RPOP: what this Redis does flat out. */
function redisBenchmark(): Record<string, number> {
  const out = execFileSync('redis-benchmark', ['-p', String(REDIS.port), '-P', '16', '-q', '-n', '200000', '-t', 'set,lpush,rpop'], { encoding: 'utf8' });
  return Object.fromEntries([...out.matchAll(/(\w+): ([\d.]+) requests per second/g)].map((m) => [m[1]!, Number(m[2])]));
}

export async function runRedisBench(): Promise<void> {
  const redis = new Redis(REDIS);
  const reset = async (): Promise<void> => void (await redis.flushdb());
  const sizes: Sizes = { single: 2000, bulk: 20_000, drain: 10_000, probes: 300, concurrencies: [1, 50] };
  try {
    const baseline = redisBenchmark();
    console.log(baseline);
    const celeryNodeSetup = { label: `celery-node ${celeryNodeVersion()}`, broker: REDIS_URL, backend: REDIS_URL, results: redis, queued: (queue: string) => redis.llen(queue) };
    const [celeriac, bullmq, celeryNode] = await measure(
      [
        [celeriacSystem('celeriac', REDIS_URL, REDIS_URL), sizes],
        [bullmqSystem(), sizes],
        [celeryNodeSystem(celeryNodeSetup), { ...sizes, concurrencies: [50] }], // no concurrency setting: one drain, shown under c=50
      ],
      ROUNDS,
      reset,
    ) as [Row, Row, Row];
    celeryNode.drains = [NaN, celeryNode.drains[0]!];
    const lpush = baseline['LPUSH']!;
    const rows = [celeriac, bullmq, celeryNode].map((r) => [
      ...resultCells(r),
      `${((r.drains[1]! / lpush) * 100).toFixed(2)}% (≈ ${Math.round(lpush / r.drains[1]!)} LPUSH)`,
    ]);
    const ratios = (peer: Row): string[] => [...ratioCells(celeriac, peer), ''];
    writeSection(
      'redis',
      `## Redis: celeriac, BullMQ and celery-node on one Redis

Machine: ${machine()}. Redis ${redisVersion()}. Date: ${new Date().toISOString().slice(0, 10)}.
Reproduce: \`npm run bench -- redis\` (script: bench/redis.ts).
Every system uses \`${REDIS_URL}\` (flushed before each measurement) as broker and result store; producer
and worker share one process, except for RSS. Enqueue: ${sizes.single.toLocaleString('en-US')} awaited sends; bulk: ${sizes.bulk.toLocaleString('en-US')} in batches of ${BATCH}
(celeriac \`delayMany\`, BullMQ \`addBulk\`; celery-node has no bulk send: \`applyAsync\` in a loop without awaiting,
timed until the list holds all of them). Drain: ${sizes.drain.toLocaleString('en-US')} no-op tasks pre-filled, timed from starting the worker until every
result is stored (celeriac: \`celery-task-meta-*\` keys; BullMQ: return values, kept by default; celery-node: its result keys).
Latency: ${sizes.probes} probes one at a time to an idle worker (concurrency 10), send → handler start. RSS: a worker process
(celeriac: \`celeriac worker -A bench/noop-tasks.js\`; peers: bench/peers/*.mjs) idle 3 s after running 1,000 tasks.
Rates are the median of ${ROUNDS} rounds, the systems taking turns; latency and RSS come from one run each.

${table(['system', 'enqueue (single, awaited)', 'enqueue (bulk)', 'drain c=1', 'drain c=50', 'enqueue→start p50', 'p99', 'idle worker RSS', 'drain c=50 / redis-benchmark LPUSH'], [...rows, ratios(bullmq), ratios(celeryNode)])}

Ratios are celeriac's figure over the peer's: above 1 is better for rates, below 1 is better for latency and RSS.
celery-node has no concurrency setting: its worker pops one message at a time and does not await the handler
before the next, so concurrency is unbounded; its one drain figure is shown under c=50. Its awaited enqueue awaits
the Redis \`LPUSH\` that \`sendTask\` fires and drops (\`sendTask\` returns no promise). Clients are connected
before any clock starts.

redis-benchmark \`-P 16 -q -n 200000 -t set,lpush,rpop\`: SET ${perSecond(baseline['SET']!)}, LPUSH ${perSecond(lpush)}, RPOP ${perSecond(baseline['RPOP']!)}.
The last column divides each c=50 drain rate by the pipelined LPUSH rate: ≈ N LPUSH means one task, end to end
(take, run, store the result, ack, and the round trips between), takes as long as N pipelined LPUSHes on this Redis.

Drain at c=50 across the rounds (min–max): celeriac ${spread(celeriac.drainRounds[1])}, BullMQ ${spread(bullmq.drainRounds[1])}, celery-node ${spread(celeryNode.drainRounds[0])}.

Targets (issue): drain at c=50 ≥ 2× BullMQ — ${met(celeriac.drains[1]! >= 2 * bullmq.drains[1]!)} (${ratio(celeriac.drains[1]!, bullmq.drains[1]!)}); bulk enqueue ≥ 1.5× BullMQ \`addBulk\` — ${met(celeriac.bulk >= 1.5 * bullmq.bulk)} (${ratio(celeriac.bulk, bullmq.bulk)}); p99 latency ≤ BullMQ's — ${met(celeriac.p99 <= bullmq.p99)} (${ms(celeriac.p99)} vs ${ms(bullmq.p99)}).`,
    );
  } finally {
    await reset();
    redis.disconnect();
  }
}

function redisVersion(): string {
  return /redis_version:(\S+)/.exec(execFileSync('redis-cli', ['-p', String(REDIS.port), 'info', 'server'], { encoding: 'utf8' }))?.[1] ?? '?';
}
