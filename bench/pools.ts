/**
 * Pool benchmark: celeriac's worker pools (`-P event|threads|processes`) beside Python Celery's
 * prefork pool, on one Redis, every worker a process of its own started as users start it
 * (`node bin/celeriac.js worker -A bench/pool-tasks.js -P ...`,
 * `/usr/bin/python3 -m celery -A pool_tasks worker -P prefork -c 2`):
 *
 * - CPU-bound throughput: the same task in both languages (primes below PRIMES_BELOW counted by
 *   trial division), tasks/s as users see it and the time one task takes;
 * - no-op dispatch rate: a drain of no-op tasks, results stored;
 * - the idle worker's memory, its whole process tree (pool children included), after the drain.
 *
 * Every measurement gets a fresh worker: started, pinged, warmed up, measured, stopped. The
 * tasks of a measurement are sent beforehand to the same queue name in a staging db and moved
 * into the worker's db with one `MOVE` (which wakes a worker blocked on the queue, as a push
 * does): the worker finds them all waiting, and the clock runs from the move to the last result,
 * heard on Celery's result channels (`celery-task-meta-<id>`, published by both systems as they
 * store). celeriac's worker uses Redis db 2, Celery's db 3, the staging db is 10; each is flushed
 * before every measurement. Rounds take turns between the workers.
 *
 * Run: npm run bench -- pools (15-20 minutes: it waits for a quiet machine), or npx tsx bench/pools.ts after npm run build (the worker runs dist/).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Celeriac } from '../src/index.js';
import { codeState, redisVersion } from './canvas.js';
import { machine, percentile, perSecond, table, writeSection } from './lib.js';
import { CpuMeter, killOnExit, treeMemory, waitForQuiet, WorkerProcess, type CpuShares, type Quiet, type WorkerSpec } from './processes.js';
import { met, ratio, uniqueQueue } from './redis.js';

const REDIS = { host: '127.0.0.1', port: 6379 };
const DB = { celeriac: 2, celery: 3, staging: 10 };
const PYTHON = '/usr/bin/python3'; // Debian's python3-celery (npm run provision); never another interpreter
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));
const PYTHON_DIR = path('./python/');
const run = promisify(execFile);
const redisUrl = (db: number): string => `redis://${REDIS.host}:${REDIS.port}/${db}`;

/** The CPU-bound task counts the primes below this: about 75 ms in Node 20 on this machine, about 1.5 s in CPython 3.11. */
export const PRIMES_BELOW = 800_000;

/** How much each measurement sends. */
export interface Sizes {
  /** No-op tasks drained per measurement. */
  noop: number;
  /** No-op tasks run (and awaited) before the drain's clock starts. */
  noopWarmUp: number;
  /** CPU-bound tasks per measurement, per system (CPython takes far longer per task). */
  cpu: { celeriac: number; celery: number };
  /** CPU-bound tasks run before the clock starts, per slot. */
  cpuWarmUpPerSlot: number;
  /** Seconds the worker sits idle after the drain before its memory is read. */
  idleSeconds: number;
}

export const SIZES: Sizes = { noop: 10_000, noopWarmUp: 1_000, cpu: { celeriac: 60, celery: 12 }, cpuWarmUpPerSlot: 1, idleSeconds: 3 };

/**
 * Rounds, the workers taking turns. More than the other suites' 3: this machine is shared, and a
 * burst of someone else's load during one measurement moves a median of 3 too easily.
 */
export const ROUNDS = 5;

/** Before each measured batch, wait until the machine uses fewer than `threshold` cores for 2 s in a row, at most `maxSeconds`. */
const QUIET = { threshold: 0.25, maxSeconds: 60 };

/** A measurement during which other processes used fewer cores than this counts as undisturbed, for a second reading of the ratios. */
const UNDISTURBED_CORES = 0.15;

/** Seconds: a worker must answer its ping within READY, a batch finish within BATCH. */
const TIMEOUT = { ready: 60, batch: 300, stop: 10 };

type Scenario = 'cpu' | 'noop';
type Pool = 'processes' | 'threads' | 'event' | 'prefork';

/** A worker setting under test. */
interface Setup {
  system: 'celeriac' | 'celery';
  pool: Pool;
  concurrency: number | null;
  /** As the tables name it: `celeriac -P processes -c 2`. */
  label: string;
  db: number;
  queue: string;
  spec: WorkerSpec;
  scenarios: Scenario[];
}

// ---------------------------------------------------------------------------------------------
// The workers.

export function celeriacSetup(pool: Exclude<Pool, 'prefork'>, concurrency: number | null, queue: string, scenarios: Scenario[]): Setup {
  const db = DB.celeriac;
  const poolArgs = ['-P', pool, ...(concurrency === null ? [] : ['-c', String(concurrency)])];
  return {
    system: 'celeriac',
    pool,
    concurrency,
    label: `celeriac ${poolArgs.join(' ')}${concurrency === null ? ' (default -c 10)' : ''}`,
    db,
    queue,
    spec: {
      label: `celeriac ${poolArgs.join(' ')}`,
      command: process.execPath,
      args: [path('../bin/celeriac.js'), 'worker', '-A', path('./pool-tasks.js'), ...poolArgs, '--broker', redisUrl(db), '--backend', redisUrl(db), '-Q', queue, '-l', 'warning'],
      env: { ...process.env, BENCH_QUEUE: queue },
    },
    scenarios,
  };
}

function celerySetup(version: string, queue: string): Setup {
  const db = DB.celery;
  return {
    system: 'celery',
    pool: 'prefork',
    concurrency: 2,
    label: `Celery ${version} -P prefork -c 2`,
    db,
    queue,
    spec: {
      label: 'Celery -P prefork -c 2',
      command: PYTHON,
      args: ['-m', 'celery', '-A', 'pool_tasks', 'worker', '-P', 'prefork', '-c', '2', '-Q', queue, '-l', 'WARNING', '--without-mingle', '--without-gossip', '--without-heartbeat'],
      cwd: PYTHON_DIR,
      env: { ...process.env, BENCH_BROKER: redisUrl(db), BENCH_BACKEND: redisUrl(db), BENCH_QUEUE: queue, PYTHONDONTWRITEBYTECODE: '1' },
    },
    scenarios: ['cpu', 'noop'],
  };
}

async function flush(...dbs: number[]): Promise<void> {
  for (const db of dbs) {
    const redis = new Redis({ ...REDIS, db });
    try {
      await redis.flushdb();
    } finally {
      redis.disconnect();
    }
  }
}

/** Redis's pid, for its share of the CPU (null when it runs somewhere /proc does not show). */
let redisPid: number | null = null;

/**
 * Flushes the dbs, starts the worker and waits until it has run a no-op, runs `measure` (with a
 * meter of the worker's CPU), and stops the worker.
 */
export async function withWorker<T>(setup: Setup, measure: (worker: WorkerProcess, meter: CpuMeter) => Promise<T>): Promise<T> {
  await flush(setup.db, DB.staging);
  const worker = new WorkerProcess(setup.spec, TIMEOUT.stop);
  try {
    await worker.guard(ping(setup), 'before it was ready');
    return await worker.guard(measure(worker, new CpuMeter(worker.pid, redisPid)), 'during the measurement');
  } finally {
    await worker.stop();
  }
}

/** A no-op through the worker's queue (celeriac speaks Celery's protocol to both workers), awaited. */
async function ping(setup: Setup): Promise<void> {
  const app = new Celeriac({ broker: redisUrl(setup.db), backend: redisUrl(setup.db), defaultQueue: setup.queue });
  try {
    await app.sendTask('bench.noop').get({ timeout: TIMEOUT.ready });
  } finally {
    await app.close();
  }
}

// ---------------------------------------------------------------------------------------------
// One batch: staged, moved in at once, timed to its last result.

/** Celery's ready states: a task's last state. */
const READY_STATES = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

interface Batch {
  /** From the MOVE to the last result heard. */
  seconds: number;
  /** Each task's result, in the order they were stored. */
  results: unknown[];
  /** Where the CPU went meanwhile, when a meter was given. */
  cpu: CpuShares | null;
}

/**
 * Sends `n` calls of `name(...args)` to the worker's queue name in the staging db, then moves the
 * queue into the worker's db and waits until every result has been published. The producer
 * (this process) and the subscriber are connected before the clock starts.
 */
export async function runBatch(setup: Setup, name: string, args: unknown[], n: number, meter?: CpuMeter): Promise<Batch> {
  await flush(DB.staging);
  const producer = new Celeriac({ broker: redisUrl(DB.staging), backend: redisUrl(DB.staging), defaultQueue: setup.queue });
  const task = producer.task(name, (_ctx, ..._args: unknown[]) => {
    throw new Error(`${name} runs in the worker being measured, not here`);
  });
  const ids = new Set<string>();
  try {
    for (let i = 0; i < n; i += 1000) {
      const sent = task.delayMany(Array.from({ length: Math.min(1000, n - i) }, () => args));
      await sent[0]!.sent;
      for (const result of sent) ids.add(result.id);
    }
  } finally {
    await producer.close();
  }

  const subscriber = new Redis(REDIS);
  const staging = new Redis({ ...REDIS, db: DB.staging });
  const prefix = 'celery-task-meta-';
  const results: unknown[] = [];
  let last = 0;
  try {
    const done = new Promise<void>((resolve, reject) => {
      subscriber.on('pmessage', (_pattern: string, channel: string, payload: string) => {
        const id = channel.slice(prefix.length);
        if (!ids.has(id)) return; // another run's, or a result already heard
        const meta = JSON.parse(payload) as { status: string; result: unknown; traceback?: string };
        if (!READY_STATES.has(meta.status)) return; // STARTED, PROGRESS, RETRY: not done yet
        ids.delete(id);
        if (meta.status !== 'SUCCESS') {
          reject(new Error(`${setup.label}: ${name}[${id}] ended ${meta.status}: ${JSON.stringify(meta.result)}\n${meta.traceback ?? ''}`));
          return;
        }
        last = performance.now();
        results.push(meta.result);
        if (ids.size === 0) resolve();
      });
    });
    await subscriber.psubscribe(`${prefix}*`);
    if ((await staging.llen(setup.queue)) !== n) throw new Error(`the staging queue does not hold the ${n} messages sent`);
    const cpuAtStart = meter?.snapshot();
    const started = performance.now();
    if ((await staging.move(setup.queue, setup.db)) !== 1) throw new Error(`could not move ${setup.queue} into db ${setup.db}: the worker's db has that key`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${setup.label}: ${ids.size} of ${n} ${name} results missing after ${TIMEOUT.batch} s`)), TIMEOUT.batch * 1000);
    });
    try {
      await Promise.race([done, timedOut]);
    } finally {
      clearTimeout(timer);
    }
    const cpu = cpuAtStart ? meter!.since(cpuAtStart) : null;
    return { seconds: (last - started) / 1000, results, cpu };
  } finally {
    subscriber.disconnect();
    staging.disconnect();
  }
}

/** The number of primes below `below`, by a sieve (not the tasks' loop): what every task must return. */
function primesBelow(below: number): number {
  const composite = new Uint8Array(below);
  let count = 0;
  for (let n = 2; n < below; n++) {
    if (composite[n]) continue;
    count++;
    for (let m = n * n; m < below; m += n) composite[m] = 1;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Measuring.

interface CpuRound {
  rate: number;
  cpu: CpuShares;
  quiet: Quiet;
  /** Milliseconds each task's counting took, as the task measured it. */
  taskMs: number[];
}

interface NoopRound {
  rate: number;
  cpu: CpuShares;
  quiet: Quiet;
  memory: { processes: number; rss: number; pss: number };
}

interface Measured {
  cpu: Map<Setup, CpuRound[]>;
  noop: Map<Setup, NoopRound[]>;
}

async function measureCpu(setup: Setup, sizes: Sizes, expected: number): Promise<CpuRound> {
  return withWorker(setup, async (_worker, meter) => {
    const slots = setup.pool === 'event' ? 1 : setup.concurrency!;
    await runBatch(setup, 'bench.primes', [PRIMES_BELOW], sizes.cpuWarmUpPerSlot * slots);
    const n = sizes.cpu[setup.system];
    const quiet = await waitForQuiet(QUIET);
    const batch = await runBatch(setup, 'bench.primes', [PRIMES_BELOW], n, meter);
    const taskMs = batch.results.map((result) => {
      const [count, ms] = result as [number, number];
      if (count !== expected) throw new Error(`${setup.label}: bench.primes(${PRIMES_BELOW}) returned ${count}, not ${expected}`);
      return ms;
    });
    return { rate: n / batch.seconds, cpu: batch.cpu!, quiet, taskMs };
  });
}

async function measureNoop(setup: Setup, sizes: Sizes): Promise<NoopRound> {
  return withWorker(setup, async (worker, meter) => {
    await runBatch(setup, 'bench.noop', [], sizes.noopWarmUp);
    const quiet = await waitForQuiet(QUIET);
    const batch = await runBatch(setup, 'bench.noop', [], sizes.noop, meter);
    await sleep(sizes.idleSeconds * 1000);
    return { rate: sizes.noop / batch.seconds, cpu: batch.cpu!, quiet, memory: treeMemory(worker.pid) };
  });
}

const shareLine = (cpu: CpuShares): string => Object.entries(cpu).map(([key, value]) => `${key} ${(value as number).toFixed(2)}`).join(', ');
const quietLine = (quiet: Quiet): string => `${quiet.quiet ? 'quiet' : 'NOT quiet'} after ${quiet.waited.toFixed(0)} s`;

async function measureAll(setups: Setup[], sizes: Sizes, rounds: number): Promise<Measured> {
  const expected = primesBelow(PRIMES_BELOW);
  const measured: Measured = { cpu: new Map(), noop: new Map() };
  const push = <T>(map: Map<Setup, T[]>, setup: Setup, value: T): void => void map.set(setup, [...(map.get(setup) ?? []), value]);
  for (let round = 1; round <= rounds; round++) {
    for (const setup of setups.filter((s) => s.scenarios.includes('cpu'))) {
      const result = await measureCpu(setup, sizes, expected);
      push(measured.cpu, setup, result);
      console.log(`round ${round}: ${setup.label} cpu ${result.rate.toFixed(2)} tasks/s, per task p50 ${percentile(result.taskMs, 0.5).toFixed(1)} ms; cores ${shareLine(result.cpu)}; ${quietLine(result.quiet)}`);
    }
    for (const setup of setups.filter((s) => s.scenarios.includes('noop'))) {
      const result = await measureNoop(setup, sizes);
      push(measured.noop, setup, result);
      console.log(`round ${round}: ${setup.label} noop ${perSecond(result.rate)}, idle tree ${result.memory.processes} processes, RSS ${result.memory.rss.toFixed(1)} MB, PSS ${result.memory.pss.toFixed(1)} MB; cores ${shareLine(result.cpu)}; ${quietLine(result.quiet)}`);
    }
  }
  return measured;
}

// ---------------------------------------------------------------------------------------------
// The report.

const median = (samples: number[]): number => percentile(samples, 0.5);
const range = (samples: number[], format: (v: number) => string): string => `${format(Math.min(...samples))}–${format(Math.max(...samples))}`;
const tasksPerSecond = (value: number): string => `${value.toFixed(2)}/s`;
const mb = (value: number): string => `${value.toFixed(1)} MB`;
const msOf = (value: number): string => `${value.toFixed(1)} ms`;
const withRange = (samples: number[], format: (v: number) => string): string => `${format(median(samples))} (${range(samples, format)})`;

interface ReportContext {
  setups: Setup[];
  sizes: Sizes;
  rounds: number;
  celeryName: string;
  redis: string;
  code: string;
  load: { before: number[]; after: number[] };
}

function report(measured: Measured, context: ReportContext): string {
  const { setups, sizes, rounds, celeryName } = context;
  const find = (system: Setup['system'], pool: Pool, concurrency: number | null): Setup =>
    setups.find((s) => s.system === system && s.pool === pool && s.concurrency === concurrency)!;
  const processes = find('celeriac', 'processes', 2);
  const threads = find('celeriac', 'threads', 2);
  const event = find('celeriac', 'event', 2);
  const eventDefault = find('celeriac', 'event', null);
  const prefork = find('celery', 'prefork', 2);

  const cpuRates = (setup: Setup): number[] => measured.cpu.get(setup)!.map((r) => r.rate);
  const cpuRate = (setup: Setup): number => median(cpuRates(setup));
  const taskMs = (setup: Setup): number[] => measured.cpu.get(setup)!.flatMap((r) => r.taskMs);
  const cpuRows = setups
    .filter((s) => s.scenarios.includes('cpu'))
    .map((s) => {
      const perTask = taskMs(s);
      // Per round: the tasks' counting time over the round's wall time.
      const busy = median(measured.cpu.get(s)!.map((r) => (r.taskMs.reduce((a, b) => a + b, 0) / r.taskMs.length / 1000) * r.rate));
      return [s.label, withRange(cpuRates(s), tasksPerSecond), `${msOf(median(perTask))} (${range(perTask, msOf)})`, String(sizes.cpu[s.system]), busy.toFixed(2)];
    });

  const noopRates = (setup: Setup): number[] => measured.noop.get(setup)!.map((r) => r.rate);
  const noopRate = (setup: Setup): number => median(noopRates(setup));
  // CPU milliseconds per task, from each round's shares (cores) over its rate.
  const perTaskCpu = (setup: Setup, key: 'worker' | 'children'): string => `${median(measured.noop.get(setup)!.map((r) => (r.cpu[key] / r.rate) * 1000)).toFixed(3)} ms`;
  const noopRows = setups
    .filter((s) => s.scenarios.includes('noop'))
    .map((s) => [s.label, withRange(noopRates(s), perSecond), perTaskCpu(s, 'worker'), s.pool === 'processes' || s.pool === 'prefork' ? perTaskCpu(s, 'children') : '—']);

  const memory = (setup: Setup): NoopRound['memory'][] => measured.noop.get(setup)!.map((r) => r.memory);
  const memoryRows = setups
    .filter((s) => s.scenarios.includes('noop'))
    .map((s) => {
      const samples = memory(s);
      return [s.label, [...new Set(samples.map((m) => m.processes))].join(', '), withRange(samples.map((m) => m.rss), mb), withRange(samples.map((m) => m.pss), mb)];
    });

  const shareKeys = ['worker', 'children', 'redis', 'bench', 'others'] as const;
  const shareCells = (rounds: { cpu: CpuShares }[]): string[] => shareKeys.map((key) => median(rounds.map((r) => r.cpu[key])).toFixed(2));
  const cpuShareRows = [
    ...setups.filter((s) => s.scenarios.includes('cpu')).map((s) => [s.label, 'CPU-bound', ...shareCells(measured.cpu.get(s)!)]),
    ...setups.filter((s) => s.scenarios.includes('noop')).map((s) => [s.label, 'no-op drain', ...shareCells(measured.noop.get(s)!)]),
  ];

  const others = (round: { cpu: CpuShares; quiet: Quiet }): string => ` [${round.cpu.others.toFixed(2)}${round.quiet.quiet ? '' : ', not quiet'}]`;
  const roundRows = [
    ...setups.filter((s) => s.scenarios.includes('cpu')).map((s) => [s.label, 'CPU-bound, tasks/s', measured.cpu.get(s)!.map((r) => tasksPerSecond(r.rate) + others(r)).join(', ')]),
    ...setups.filter((s) => s.scenarios.includes('noop')).map((s) => [s.label, 'no-op drain', measured.noop.get(s)!.map((r) => perSecond(r.rate) + others(r)).join(', ')]),
    ...setups.filter((s) => s.scenarios.includes('noop')).map((s) => [s.label, 'idle tree RSS', memory(s).map((m) => mb(m.rss)).join(', ')]),
  ];
  const quiets = [...measured.cpu.values(), ...measured.noop.values()].flat().map((r) => r.quiet);

  const cpuVsCelery = cpuRate(processes) / cpuRate(prefork);
  const cpuVsEvent = cpuRate(processes) / cpuRate(event);
  const noopVsCelery = noopRate(processes) / noopRate(prefork);
  const threadsVsEvent = noopRate(threads) / noopRate(event);
  const load = (values: number[]): string => values.map((v) => v.toFixed(2)).join(', ');
  const n = (value: number): string => value.toLocaleString('en-US');

  // The same ratios from the undisturbed rounds only (other processes under UNDISTURBED_CORES).
  const calm = <T extends { rate: number; cpu: CpuShares }>(rounds: T[]): number[] => rounds.filter((r) => r.cpu.others < UNDISTURBED_CORES).map((r) => r.rate);
  const calmRatio = (map: Map<Setup, { rate: number; cpu: CpuShares }[]>, a: Setup, b: Setup): string => {
    const [ours, theirs] = [calm(map.get(a)!), calm(map.get(b)!)];
    return ours.length && theirs.length ? `${ratio(median(ours), median(theirs))} (${ours.length} and ${theirs.length} rounds)` : '— (no undisturbed rounds)';
  };

  return `## Pools: celeriac's event, threads and processes pools beside Python Celery's prefork, on one Redis

Machine: ${machine()}. Redis ${context.redis}. Date: ${new Date().toISOString().slice(0, 10)}. Code: ${context.code}.
Load average (1, 5, 15 min) when the run started: ${load(context.load.before)}; when it ended: ${load(context.load.after)}.
Reproduce: \`npm run bench -- pools\` (script: bench/pools.ts; tasks: bench/pool-tasks.js and bench/python/pool_tasks.py).

Workers, each a process of its own, as users start them:
- celeriac: \`node bin/celeriac.js worker -A bench/pool-tasks.js -P <pool> [-c N] --broker ${redisUrl(DB.celeriac)} --backend ${redisUrl(DB.celeriac)} -Q <queue> -l warning\`
  (prefetch: the default, 4 × the runs the pool holds: 4 × c on the event pool; on threads and processes, 4 × the runs their slots queue, up to 16 each while tasks are short);
- ${celeryName}: \`/usr/bin/python3 -m celery -A pool_tasks worker -P prefork -c 2 -Q <queue> -l WARNING --without-mingle --without-gossip --without-heartbeat\`
  (broker and backend \`${redisUrl(DB.celery)}\`; prefetch: the default, 4 × c).

Every measurement gets a fresh worker: started, pinged (a no-op and its result), warmed up, measured, stopped.
The measured tasks are sent first by this process (celeriac's \`delayMany\`, the same Celery protocol 2 messages for
both workers) to the worker's queue name in a staging db (\`${redisUrl(DB.staging)}\`), then moved into the worker's db with one
Redis \`MOVE\`, which wakes a worker blocked on the queue: the worker finds them all waiting, and the clock runs from
the \`MOVE\` to the last result, heard on the result channel both systems publish to as they store
(\`celery-task-meta-<id>\`, results stored in Redis). ${rounds} rounds, the workers taking turns; figures are the median
round with the (min–max) across rounds.

This machine is shared with other work. Before each measured batch (after the warm-up, the worker idle) the script
waits until the whole machine has used fewer than ${QUIET.threshold} cores for 2 s in a row, at most ${QUIET.maxSeconds} s: ${quiets.filter((q) => q.quiet).length} of ${quiets.length}
measurements started on a quiet machine (waits: median ${median(quiets.map((q) => q.waited)).toFixed(0)} s, longest ${Math.max(...quiets.map((q) => q.waited)).toFixed(0)} s). The CPU that other
processes took during each measurement is in the table of where the CPU went and, per round, in brackets under "Every round".

**CPU-bound**: \`bench.primes(${n(PRIMES_BELOW)})\` counts the primes below ${n(PRIMES_BELOW)} by trial division, the same loop in
JavaScript and in Python, and returns the count (checked: ${n(primesBelow(PRIMES_BELOW))}) and the milliseconds the counting
took, measured inside the task. Warm-up: ${sizes.cpuWarmUpPerSlot} task${sizes.cpuWarmUpPerSlot === 1 ? '' : 's'} per slot. Tasks per round: ${sizes.cpu.celeriac} on celeriac,
${sizes.cpu.celery} on Celery (CPython takes far longer per task). The figure is tasks/s as users see them; the time per task shows
how much of it is the language. "Cores busy" is the tasks' counting time over the wall time of the round (median round):
how many cores the pool kept counting (2 at most here; 1 at most on an event loop).

${table(['worker', 'tasks/s', 'time per task, median (min–max)', 'tasks per round', 'cores busy'], cpuRows)}

**No-op dispatch**: ${n(sizes.noop)} no-op tasks (\`bench.noop\`, returns null; every result stored), after a warm-up of
${n(sizes.noopWarmUp)}. \`-P event\` is shown at \`-c 2\` (the same slots as the other pools) and at its default, \`-c 10\`.
CPU per task: the CPU time the worker's own process (its threads included) and its pool children spent per task during
the drain (median round).

${table(['worker', 'drain, no-ops/s', 'CPU per task, worker process', 'CPU per task, pool children'], noopRows)}

**Idle memory**: each no-op worker's process tree (the worker and its pool children, from \`/proc/<pid>/task/*/children\`),
${sizes.idleSeconds} s after its drain (${n(sizes.noopWarmUp + sizes.noop + 1)} tasks run). RSS sums each process's \`VmRSS\`, counting pages shared
between processes once per process (a prefork child shares its parent's pages after \`fork\`; celeriac's children are
separate Node processes, sharing little more than the \`node\` binary); PSS sums \`Pss\` from \`smaps_rollup\`, each shared page
divided among the processes that share it.

${table(['worker', 'processes', 'RSS, sum', 'PSS, sum'], memoryRows)}

Ratios: CPU-bound, \`-P processes -c 2\` / Celery prefork \`-c 2\` ${ratio(cpuRate(processes), cpuRate(prefork))},
\`-P processes -c 2\` / \`-P event\` ${ratio(cpuRate(processes), cpuRate(event))}, \`-P threads -c 2\` / \`-P event\` ${ratio(cpuRate(threads), cpuRate(event))};
no-op drain, \`-P processes -c 2\` / Celery prefork \`-c 2\` ${ratio(noopRate(processes), noopRate(prefork))}, \`-P threads -c 2\` / \`-P event -c 2\` ${ratio(noopRate(threads), noopRate(event))}
(/ \`-P event\` at its default \`-c 10\`: ${ratio(noopRate(threads), noopRate(eventDefault))}), \`-P processes -c 2\` / \`-P event -c 2\` ${ratio(noopRate(processes), noopRate(event))};
idle RSS, \`-P processes -c 2\` / Celery prefork \`-c 2\` ${ratio(median(memory(processes).map((m) => m.rss)), median(memory(prefork).map((m) => m.rss)))},
\`-P threads -c 2\` / Celery prefork \`-c 2\` ${ratio(median(memory(threads).map((m) => m.rss)), median(memory(prefork).map((m) => m.rss)))}.

The same ratios from the undisturbed rounds only (other processes under ${UNDISTURBED_CORES} cores during the measurement), medians:
CPU-bound, \`-P processes -c 2\` / Celery prefork ${calmRatio(measured.cpu, processes, prefork)}, \`-P processes -c 2\` / \`-P event\` ${calmRatio(measured.cpu, processes, event)};
no-op drain, \`-P processes -c 2\` / Celery prefork ${calmRatio(measured.noop, processes, prefork)}, \`-P threads -c 2\` / \`-P event -c 2\` ${calmRatio(measured.noop, threads, event)}.

Where the CPU went during each measured batch, in cores (CPU seconds from \`/proc/<pid>/stat\` and \`/proc/stat\` per
second of the measurement; median of the rounds): the worker's own process, its pool children, the Redis server, this
script (producer and result subscriber), and every other process on the machine: other users' load, which takes cores
from the workers (2 cores in all).

${table(['worker', 'measurement', 'worker process', 'pool children', 'Redis', 'this script', 'other processes'], cpuShareRows)}

Every round (in brackets: the cores other processes used during that measurement):

${table(['worker', 'measurement', 'rounds'], roundRows)}

Targets (issue 9): CPU-bound \`-P processes\` ≥ 2× Celery prefork — ${met(cpuVsCelery >= 2)} (${cpuVsCelery.toFixed(2)}×);
\`-P processes\` ≥ 1.8× \`-P event\` — ${met(cpuVsEvent >= 1.8)} (${cpuVsEvent.toFixed(2)}×);
no-op drain \`-P processes\` ≥ 10× Celery prefork — ${met(noopVsCelery >= 10)} (${noopVsCelery.toFixed(2)}×);
\`-P threads\` ≥ 50% of \`-P event\` (both \`-c 2\`) — ${met(threadsVsEvent >= 0.5)} (${(threadsVsEvent * 100).toFixed(0)}%);
idle RSS of \`-P processes -c 2\`, \`-P threads -c 2\` and Celery prefork \`-c 2\` — reported above.`;
}

// ---------------------------------------------------------------------------------------------

/** The Redis server's pid, when it runs on this machine where /proc shows it. */
async function findRedisPid(): Promise<number | null> {
  const redis = new Redis(REDIS);
  try {
    const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    return Number.isInteger(pid) && readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('redis') ? pid : null;
  } catch {
    return null;
  } finally {
    redis.disconnect();
  }
}

export interface PoolsBenchOptions {
  rounds?: number;
  sizes?: Sizes;
  /** Write the section of RESULTS.md (default true); false prints it instead. */
  write?: boolean;
}

export async function runPoolsBench(options: PoolsBenchOptions = {}): Promise<void> {
  const rounds = options.rounds ?? ROUNDS;
  const sizes = options.sizes ?? SIZES;
  if (!existsSync(path('../dist/index.js'))) throw new Error('the celeriac worker runs the build: run `npm run build` first');
  const celery = await run(PYTHON, ['-c', 'import celery; print(celery.__version__)']).then(
    ({ stdout }) => stdout.trim(),
    () => {
      throw new Error(`${PYTHON} cannot import celery: run \`npm run provision\` first`);
    },
  );
  redisPid = await findRedisPid();
  const stopKilling = killOnExit();
  const before = loadavg();
  const code = await codeState(); // now: the build the workers run was made from this tree
  const celeriacQueue = uniqueQueue('pools-celeriac');
  const setups = [
    celeriacSetup('processes', 2, celeriacQueue, ['cpu', 'noop']),
    celeriacSetup('threads', 2, celeriacQueue, ['cpu', 'noop']),
    celeriacSetup('event', 2, celeriacQueue, ['cpu', 'noop']),
    celeriacSetup('event', null, celeriacQueue, ['noop']),
    celerySetup(celery, uniqueQueue('pools-celery')),
  ];
  try {
    const measured = await measureAll(setups, sizes, rounds);
    console.log(JSON.stringify(Object.fromEntries(setups.map((s) => [s.label, { cpu: measured.cpu.get(s), noop: measured.noop.get(s) }]))));
    const body = report(measured, { setups, sizes, rounds, celeryName: `Celery ${celery}`, redis: await redisVersion(), code, load: { before, after: loadavg() } });
    if (options.write === false) console.log(body);
    else writeSection('pools', body);
  } finally {
    stopKilling();
    // A failed cleanup must not hide the error that ended the run.
    await flush(DB.celeriac, DB.celery, DB.staging).catch((error: unknown) => console.error('could not flush the dbs:', error));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runPoolsBench();
