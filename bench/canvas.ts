/**
 * Canvas benchmark: celeriac beside Python Celery 5.2 on one Redis, each worker in a process of its
 * own as users run it (`celeriac worker -A bench/canvas-tasks.js`, `celery -A canvas_tasks worker`),
 * the producer in another (this process for celeriac, bench/python/canvas_produce.py for Celery):
 *
 * - a group of 10,000 no-op tasks, send → every result;
 * - a chord of 1,000 no-op members, send → the body's result, and how many Redis calls the join
 *   makes per member (counted with MONITOR on the system's db);
 * - a chain of 100 steps end to end, per step, against celeriac's enqueue→start latency measured on
 *   the same worker (idle, concurrency 1).
 *
 * celeriac uses Redis db 14 and Celery db 15 (broker and results), each flushed before every
 * measurement, which gets a fresh worker. Rounds take turns between the systems.
 *
 * Run: npm run bench -- canvas (about 9 minutes), or npx tsx bench/canvas.ts after npm run build (the worker runs dist/).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Celeriac, chain, chord, group } from '../src/index.js';
import { machine, percentile, table, writeSection } from './lib.js';
import { killOnExit, track, WorkerProcess, type WorkerSpec } from './processes.js';
import { met, ms, ratio, ROUNDS, uniqueQueue } from './redis.js';

const REDIS = { host: '127.0.0.1', port: 6379 };
const PYTHON = '/usr/bin/python3'; // Debian's python3-celery; never another interpreter
const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));
const PYTHON_DIR = path('./python/');
const run = promisify(execFile);

const SIZES = { group: 10_000, chord: 1_000, chain: 100, probes: 200 };
/** Chains run back to back per round; a round's per-step figure is their mean. */
const CHAINS_PER_ROUND = 5;
/**
 * Before the clock starts, each worker runs about this many tasks of the same workflow (a group
 * of 1,000, a chord of 1,000, 10 chains of 100): both systems are measured warm, as a long-running
 * worker is. V8 compiles hot code as it runs: a cold celeriac worker's first 10,000-task group
 * takes nearly twice as long as its third.
 */
const WARM_UP_TASKS = 1_000;
/** Chord sizes whose Redis calls are counted: the same calls per member at both means O(1). */
const COUNTED_CHORDS = [100, 1_000];
/** Seconds: a worker must answer a ping within READY, a workflow finish within WORKFLOW. */
const TIMEOUT = { ready: 60, workflow: 180, stop: 10 };

type Scenario = 'group' | 'chord' | 'chain';
const SCENARIOS: Scenario[] = ['group', 'chord', 'chain'];

/** One system's producer: each call measures on a worker that is up and idle. */
interface Producer {
  /** Seconds from building the workflow to having its result(s), summed over `times` runs one after another. */
  workflow(scenario: Scenario, size: number, times?: number): Promise<number>;
  /** Enqueue→start latencies (ms) of `n` probes sent one at a time. */
  latency(n: number): Promise<number[]>;
}

/** A system under test: its db, queue, producer and worker command lines. */
interface System {
  name: string;
  db: number;
  queue: string;
  producer: Producer;
  /** Worker settings tried for group and chord (parallel) and for the latency and chain (serial). */
  workers: { parallel: WorkerSpec[]; serial: WorkerSpec[] };
}

const redisUrl = (db: number): string => `redis://${REDIS.host}:${REDIS.port}/${db}`;

// ---------------------------------------------------------------------------------------------
// Worker processes.

/**
 * Flushes the system's db, starts a worker and waits until it has run a ping task, runs
 * `measure`, and stops the worker whatever happened.
 */
async function withWorker<T>(system: System, spec: WorkerSpec, measure: () => Promise<T>): Promise<T> {
  await flush(system.db);
  const worker = new WorkerProcess(spec, TIMEOUT.stop);
  try {
    await worker.guard(ping(system), 'before it was ready');
    return await worker.guard(measure(), 'during the measurement');
  } finally {
    await worker.stop();
  }
}

async function flush(db: number): Promise<void> {
  const redis = new Redis({ ...REDIS, db });
  try {
    await redis.flushdb();
  } finally {
    redis.disconnect();
  }
}

/** Sends a no-op to the system's queue (celeriac speaks Celery's protocol to both) and waits for its result. */
async function ping(system: System): Promise<void> {
  await withApp(system, (app) => app.sendTask('bench.noop').get({ timeout: TIMEOUT.ready }));
}

/** A celeriac app on the system's db and queue, connected, closed after `fn`. */
async function withApp<T>(system: Pick<System, 'db' | 'queue'>, fn: (app: Celeriac) => Promise<T>): Promise<T> {
  const app = new Celeriac({ broker: redisUrl(system.db), backend: redisUrl(system.db), defaultQueue: system.queue });
  try {
    await Promise.all([app.broker(), app.backend()]); // connected before any clock starts
    return await fn(app);
  } finally {
    await app.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The systems.

function celeriacSystem(): System {
  const db = 14;
  const queue = uniqueQueue('canvas-celeriac');
  const worker = (concurrency: number): WorkerSpec => ({
    label: `-c ${concurrency}`,
    command: process.execPath,
    args: [path('../bin/celeriac.js'), 'worker', '-A', path('./canvas-tasks.js'), '--broker', redisUrl(db), '--backend', redisUrl(db), '-Q', queue, '-c', String(concurrency), '-l', 'warning'],
    env: { ...process.env, BENCH_QUEUE: queue },
  });
  // The tasks are defined in the worker's module (bench/canvas-tasks.js): the producer names
  // them, and `app.signature(name)` builds the same signature `task.s()` does.
  const producer: Producer = {
    workflow: (scenario, size, times = 1) =>
      withApp({ db, queue }, async (app) => {
        let seconds = 0;
        for (let i = 0; i < times; i++) seconds += await timeWorkflow(app, scenario, size);
        return seconds;
      }),
    latency: (n) =>
      withApp({ db, queue }, async (app) => {
        const samples: number[] = [];
        for (let i = 0; i < n; i++) {
          const sentAt = (performance.timeOrigin + performance.now()) / 1000;
          const startedAt = await app.sendTask<number>('bench.probe').get({ timeout: TIMEOUT.ready });
          samples.push((startedAt - sentAt) * 1000);
          await sleep(2);
        }
        return samples;
      }),
  };
  return { name: 'celeriac', db, queue, producer, workers: { parallel: [worker(50)], serial: [worker(1)] } };
}

/** Seconds from building a workflow of `size` tasks to having its checked result. */
async function timeWorkflow(app: Celeriac, scenario: Scenario, size: number): Promise<number> {
  const noop = (): ReturnType<typeof app.signature<null>> => app.signature<null>('bench.noop');
  const started = performance.now();
  let value: unknown;
  if (scenario === 'group') {
    const results = await group(Array.from({ length: size }, noop)).applyAsync().get({ timeout: TIMEOUT.workflow });
    value = results.length;
  } else if (scenario === 'chord') {
    value = await chord(Array.from({ length: size }, noop), app.signature<number>('bench.count')).applyAsync().get({ timeout: TIMEOUT.workflow });
  } else {
    const steps = Array.from({ length: size - 1 }, () => app.signature<number>('bench.inc'));
    value = await chain(app.signature<number>('bench.inc', [0]), ...steps).applyAsync().get({ timeout: TIMEOUT.workflow });
  }
  const seconds = (performance.now() - started) / 1000;
  if (value !== size) throw new Error(`celeriac's ${scenario} of ${size} returned ${String(value)}, not ${size}`);
  return seconds;
}

async function celerySystem(): Promise<System> {
  const db = 15;
  const queue = uniqueQueue('canvas-celery');
  const env = { ...process.env, BENCH_BROKER: redisUrl(db), BENCH_BACKEND: redisUrl(db), BENCH_QUEUE: queue, PYTHONDONTWRITEBYTECODE: '1' };
  const worker = (pool: string, concurrency: number): WorkerSpec => ({
    label: `${pool} -c ${concurrency}`,
    command: PYTHON,
    args: ['-m', 'celery', '-A', 'canvas_tasks', 'worker', `--pool=${pool}`, '-c', String(concurrency), '-Q', queue, '-l', 'WARNING', '--without-mingle', '--without-gossip', '--without-heartbeat'],
    cwd: PYTHON_DIR,
    env,
  });
  const produce = async <T>(mode: string, n: number, times = 1): Promise<T> => {
    try {
      const args = ['canvas_produce.py', mode, String(n), String(TIMEOUT.workflow), String(times)];
      const producing = run(PYTHON, args, { cwd: PYTHON_DIR, env, timeout: (TIMEOUT.workflow * times + 30) * 1000 });
      track(producing.child, () => producing.child.kill('SIGKILL'));
      const { stdout } = await producing;
      return JSON.parse(stdout) as T;
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new Error(`canvas_produce.py ${mode} ${n} failed: ${(error as Error).message}\n${stderr.slice(-4000)}`);
    }
  };
  const gevent = await run(PYTHON, ['-c', 'import gevent']).then(() => true, () => false);
  const version = (await run(PYTHON, ['-c', 'import celery; print(celery.__version__)'])).stdout.trim();
  return {
    name: `Celery ${version}`,
    db,
    queue,
    producer: {
      workflow: async (scenario, size, times) => (await produce<{ seconds: number }>(scenario, size, times)).seconds,
      latency: async (n) => (await produce<{ ms: number[] }>('latency', n)).ms,
    },
    workers: {
      // prefork with one process per core (its default here) and with two per core; threads;
      // gevent where it is installed (Debian's python3-gevent).
      parallel: [worker('prefork', 2), worker('prefork', 4), worker('threads', 50), ...(gevent ? [worker('gevent', 100)] : [])],
      serial: [worker('solo', 1), worker('prefork', 1), worker('threads', 1)],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/** Seconds per round for one worker setting and scenario (for chain: mean seconds per step). */
interface Series {
  system: System;
  spec: WorkerSpec;
  scenario: Scenario;
  rounds: number[];
}

interface Measured {
  series: Series[];
  /** Enqueue→start latencies (ms), every round's probes, per system and serial worker label. */
  latencies: Map<System, Map<string, number[]>>;
}

async function measureAll(systems: System[]): Promise<Measured> {
  const series: Series[] = [];
  const latencies = new Map<System, Map<string, number[]>>(systems.map((system) => [system, new Map()]));
  const seriesOf = (system: System, spec: WorkerSpec, scenario: Scenario): Series => {
    let found = series.find((s) => s.system === system && s.spec.label === spec.label && s.scenario === scenario);
    if (!found) series.push((found = { system, spec, scenario, rounds: [] }));
    return found;
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of SCENARIOS) {
      for (const system of systems) {
        const specs = scenario === 'chain' ? system.workers.serial : system.workers.parallel;
        for (const spec of specs) {
          const seconds = await withWorker(system, spec, async () => {
            const warmUpSize = Math.min(SIZES[scenario], WARM_UP_TASKS);
            await system.producer.workflow(scenario, warmUpSize, Math.ceil(WARM_UP_TASKS / warmUpSize));
            if (scenario !== 'chain') return system.producer.workflow(scenario, SIZES[scenario]);
            const probes = await system.producer.latency(SIZES.probes);
            const all = latencies.get(system)!;
            all.set(spec.label, [...(all.get(spec.label) ?? []), ...probes]);
            console.log(`round ${round}: ${system.name} ${spec.label} enqueue→start p50 ${ms(percentile(probes, 0.5))}`);
            return (await system.producer.workflow('chain', SIZES.chain, CHAINS_PER_ROUND)) / (CHAINS_PER_ROUND * SIZES.chain);
          });
          seriesOf(system, spec, scenario).rounds.push(seconds);
          console.log(`round ${round}: ${system.name} ${spec.label} ${scenario}: ${scenario === 'chain' ? ms(seconds * 1000) + '/step' : seconds.toFixed(3) + ' s'}`);
        }
      }
    }
  }
  return { series, latencies };
}

/** Redis calls made on a system's db while a chord of `size` runs, from MONITOR. */
interface CallCount {
  size: number;
  /** Round trips that touch the join's keys: one script call, or one MULTI…EXEC sent as a pipeline. */
  joinRoundTrips: number;
  /** Redis commands on the join's keys, those run inside scripts and transactions included. */
  joinCommands: number;
  /** Every command clients sent on the db (script internals not counted): publish, take, store, ack, join. */
  clientCommands: number;
}

/**
 * Runs a chord of `size` with MONITOR on the system's db and counts the calls, until the worker
 * has acked every message (kombu's `unacked` hash is empty).
 */
async function countChordCalls(system: System, size: number): Promise<CallCount> {
  return withWorker(system, system.workers.parallel[0]!, async () => {
    const counts: CallCount = { size, joinRoundTrips: 0, joinCommands: 0, clientCommands: 0 };
    const inTransaction = new Map<string, boolean>(); // per client: inside MULTI, and whether it touched the join
    const stopMonitor = await monitor(system.db, (source, command, args) => {
      const joins = args.includes('celery-taskset-meta-');
      if (source === 'lua') {
        if (joins) counts.joinCommands++;
        return;
      }
      counts.clientCommands++;
      if (command === 'MULTI') {
        inTransaction.set(source, false);
      } else if (command === 'EXEC') {
        if (inTransaction.get(source)) counts.joinRoundTrips++;
        inTransaction.delete(source);
      } else if (joins) {
        counts.joinCommands++;
        if (inTransaction.has(source)) inTransaction.set(source, true);
        else counts.joinRoundTrips++;
      }
    });
    const redis = new Redis({ ...REDIS, db: system.db });
    try {
      await system.producer.workflow('chord', size);
      const deadline = Date.now() + TIMEOUT.ready * 1000;
      while ((await redis.hlen('unacked')) > 0) {
        if (Date.now() > deadline) throw new Error(`${system.name}: messages still unacked ${TIMEOUT.ready} s after the chord finished`);
        await sleep(20);
      }
    } finally {
      redis.disconnect();
      await stopMonitor();
    }
    return counts;
  });
}

/**
 * Runs `redis-cli monitor` and calls `onCommand` for every command run on `db`: the client
 * (`host:port`, or `lua` inside a script), the command's name in capitals, and its arguments as
 * redis-cli prints them. Resolves once MONITOR is on, with a function that stops it. (redis-cli
 * rather than ioredis's monitor mode, which reports lines arriving around its switch as errors.)
 */
async function monitor(db: number, onCommand: (source: string, command: string, args: string) => void): Promise<() => Promise<void>> {
  const child = spawn('redis-cli', ['-h', REDIS.host, '-p', String(REDIS.port), 'monitor'], { stdio: ['ignore', 'pipe', 'inherit'] });
  track(child, () => child.kill('SIGKILL'));
  const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(false)));
  let started!: (on: boolean) => void;
  const on = new Promise<boolean>((resolve) => (started = resolve));
  let first = true;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (first) {
      first = false; // redis-cli prints OK once the server monitors
      if (line === 'OK') started(true);
      else child.kill();
      return;
    }
    const match = /^[\d.]+ \[(\d+) ([^\]]+)\] "([^"]+)"(.*)$/.exec(line);
    if (match && Number(match[1]) === db) onCommand(match[2]!, match[3]!.toUpperCase(), match[4]!);
  });
  const timer = setTimeout(() => child.kill(), TIMEOUT.ready * 1000);
  const monitoring = await Promise.race([on, exited]);
  clearTimeout(timer);
  if (!monitoring) throw new Error(`redis-cli monitor did not start within ${TIMEOUT.ready} s`);
  return async () => {
    child.kill();
    await exited;
  };
}

// ---------------------------------------------------------------------------------------------
// The report.

const median = (samples: number[]): number => percentile(samples, 0.5);
const secs = (value: number): string => `${value.toFixed(3)} s`;
const range = (samples: number[], format: (v: number) => string): string => `${format(Math.min(...samples))}–${format(Math.max(...samples))}`;
const perStep = (seconds: number): string => ms(seconds * 1000);
const rateOf = (size: number, seconds: number): string => `${Math.round(size / seconds).toLocaleString('en-US')}/s`;

/** The series with the lowest median, among a system's worker settings for a scenario. */
function best(measured: Measured, system: System, scenario: Scenario): Series {
  const candidates = measured.series.filter((s) => s.system === system && s.scenario === scenario);
  return candidates.reduce((a, b) => (median(b.rounds) < median(a.rounds) ? b : a));
}

function report(measured: Measured, celeriac: System, celery: System, counts: Map<System, CallCount[]>, redis: string, code: string): string {
  const cells = (s: Series): string => {
    const m = median(s.rounds);
    if (s.scenario === 'chain') return `${perStep(m)}/step (${range(s.rounds, perStep)})`;
    return `${secs(m)} = ${rateOf(SIZES[s.scenario], m)} (${range(s.rounds, secs)})`;
  };
  const winners = Object.fromEntries(SCENARIOS.map((scenario) => [scenario, { ours: best(measured, celeriac, scenario), theirs: best(measured, celery, scenario) }])) as Record<
    Scenario,
    { ours: Series; theirs: Series }
  >;
  const speedup = (scenario: Scenario): number => median(winners[scenario].theirs.rounds) / median(winners[scenario].ours.rounds);
  const titles: Record<Scenario, string> = {
    group: `group of ${SIZES.group.toLocaleString('en-US')} no-ops: send → every result`,
    chord: `chord of ${SIZES.chord.toLocaleString('en-US')} no-ops: send → body result`,
    chain: `chain of ${SIZES.chain} steps: send → last result, per step`,
  };
  const mainRows = SCENARIOS.map((scenario) => {
    const { ours, theirs } = winners[scenario];
    return [titles[scenario], `${cells(ours)} [${ours.spec.label}]`, `${cells(theirs)} [${theirs.spec.label}]`, `${speedup(scenario).toFixed(2)}×`];
  });
  const allRows = measured.series.map((s) => [s.system.name, s.spec.label, s.scenario, cells(s), s.rounds.map((r) => (s.scenario === 'chain' ? perStep(r) : secs(r))).join(', ')]);

  const latency = (system: System, label: string): number[] => measured.latencies.get(system)!.get(label) ?? [];
  const ourLatency = latency(celeriac, winners.chain.ours.spec.label);
  const ourP50 = percentile(ourLatency, 0.5);
  const ourStep = median(winners.chain.ours.rounds) * 1000;
  const latencyRows = [celeriac, celery].flatMap((system) =>
    system.workers.serial.map((spec) => {
      const samples = latency(system, spec.label);
      const step = median(measured.series.find((s) => s.system === system && s.spec === spec && s.scenario === 'chain')!.rounds) * 1000;
      const p50 = percentile(samples, 0.5);
      return [system.name, spec.label, ms(p50), ms(percentile(samples, 0.99)), ms(step), `${(step / p50).toFixed(2)}×`];
    }),
  );

  const countRows = [celeriac, celery].flatMap((system) =>
    counts.get(system)!.map((c) => [
      system.name,
      c.size.toLocaleString('en-US'),
      (c.joinRoundTrips / c.size).toFixed(2),
      (c.joinCommands / c.size).toFixed(2),
      (c.clientCommands / c.size).toFixed(2),
    ]),
  );
  const ourCounts = counts.get(celeriac)!;
  const constant = ourCounts.every((c) => Math.abs(c.joinRoundTrips / c.size - ourCounts[0]!.joinRoundTrips / ourCounts[0]!.size) < 0.05);

  const labels = (specs: WorkerSpec[]): string => specs.map((w) => `\`${w.label}\``).join(', ');
  return `## Canvas: celeriac and Python Celery on one Redis, workers in their own processes

Machine: ${machine()}. Redis ${redis}. Date: ${new Date().toISOString().slice(0, 10)}. Code: ${code}.
Reproduce: \`npm run bench -- canvas\` (script: bench/canvas.ts; tasks: bench/canvas-tasks.js and
bench/python/canvas_tasks.py; Celery's producer: bench/python/canvas_produce.py).

Each system has its own Redis db as broker and result store (celeriac \`${redisUrl(celeriac.db)}\`, Celery \`${redisUrl(celery.db)}\`),
flushed before every measurement. Every measurement gets a fresh worker process: started, pinged (a no-op task and
its result), warmed up with ${WARM_UP_TASKS.toLocaleString('en-US')} tasks of the same workflow, measured, stopped. The producer is another
process: this script for celeriac (\`group(...).applyAsync().get()\`, \`chord(header, body)\`, \`chain(...)\`, the tasks named
with \`app.signature\`), and \`/usr/bin/python3 bench/python/canvas_produce.py\` for Celery (\`group(...).apply_async()\` then
\`join_native\`, as \`GroupResult.get\` does, polling every 100 ms, the clock stopped when the last result is read;
\`chord(...)(body)\` and \`chain(...)\` then \`.get()\`). Clocks start before the workflow is built, and every workflow's
result is checked. ${ROUNDS} rounds, the systems taking turns; each figure is the median round, with the (min–max) across
rounds. A round's chain figure is ${CHAINS_PER_ROUND} chains of ${SIZES.chain} steps run back to back, divided by ${CHAINS_PER_ROUND * SIZES.chain}.

Workers:
- celeriac: \`node bin/celeriac.js worker -A bench/canvas-tasks.js --broker … --backend … -Q <queue> -c N -l warning\`
  (prefetch: the default, 4 × N): ${labels(celeriac.workers.parallel)} for group and chord, ${labels(celeriac.workers.serial)} for the latency and chain.
- ${celery.name}: \`/usr/bin/python3 -m celery -A canvas_tasks worker --pool=P -c N -Q <queue> -l WARNING --without-mingle --without-gossip --without-heartbeat\`;
  group and chord with ${labels(celery.workers.parallel)}, latency and chain with ${labels(celery.workers.serial)}; each
  workflow is compared with its best setting (lowest median).${celery.workers.parallel.some((w) => w.label.startsWith('gevent')) ? '' : ' gevent is not installed here (Debian: python3-gevent), so it was not tried.'}

${table(['workflow', 'celeriac [worker]', `${celery.name}, best pool [worker]`, 'celeriac speed-up'], mainRows)}

Enqueue→start latency on an idle worker (${SIZES.probes} probes per round, one at a time, ${ROUNDS} rounds pooled; the probe returns its
start time, read against the send time in the producer process) and the chain's cost per step on the same worker:

${table(['system', 'worker', 'latency p50', 'p99', 'chain, per step', 'per step / latency p50'], latencyRows)}

Redis calls of the chord join, per header member, counted with MONITOR (\`redis-cli monitor\`) on the system's db while
one chord runs on a ${celeriac.name} \`${celeriac.workers.parallel[0]!.label}\` or ${celery.name} \`${celery.workers.parallel[0]!.label}\` worker, from
sending it until the worker has acked every message. Round trips: calls that touch the join's keys
(\`celery-taskset-meta-<group>.j/.s/.t\`), a script call or a MULTI…EXEC pipeline counting one; commands: those on the
join's keys, including the ones run inside the script or transaction. Last column: every command clients sent on
the db (publishing, taking, storing, acking, joining; not the commands inside scripts), per member.

${table(['system', 'chord size', 'join round trips / member', 'join commands / member', 'all client commands / member'], countRows)}

Every setting, each round:

${table(['system', 'worker', 'workflow', 'median (min–max)', 'rounds'], allRows)}

Targets (issue): group ≥ 5× Celery — ${met(speedup('group') >= 5)} (${speedup('group').toFixed(2)}×); chord ≥ 5× Celery — ${met(speedup('chord') >= 5)} (${speedup('chord').toFixed(2)}×);
join calls per member O(1) — ${met(constant)} (${ourCounts.map((c) => `${(c.joinRoundTrips / c.size).toFixed(2)} at ${c.size.toLocaleString('en-US')}`).join(', ')});
chain per step ≤ 2× celeriac's enqueue→start latency — ${met(ourStep <= 2 * ourP50)} (${ms(ourStep)} vs p50 ${ms(ourP50)}: ${ratio(ourStep, ourP50)}).`;
}

/** The commit measured, and which files under src/ differ from it. */
export async function codeState(): Promise<string> {
  const git = async (...args: string[]): Promise<string> => (await run('git', args, { cwd: path('..') })).stdout;
  try {
    const commit = (await git('rev-parse', '--short', 'HEAD')).trim();
    const changed = (await git('status', '--porcelain', '--', 'src')).split('\n').filter(Boolean).map((line) => line.slice(3));
    return changed.length ? `commit ${commit}, with uncommitted changes to ${changed.join(', ')}` : `commit ${commit}`;
  } catch {
    return 'not a git checkout';
  }
}

export async function redisVersion(): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(REDIS.port), 'info', 'server']);
  return /redis_version:(\S+)/.exec(stdout)?.[1] ?? '?';
}

export async function runCanvasBench(): Promise<void> {
  if (!existsSync(path('../dist/index.js'))) throw new Error('the celeriac worker runs the build: run `npm run build` first');
  const stopKilling = killOnExit();
  const code = await codeState(); // now: the build the workers run was made from this tree
  const celeriac = celeriacSystem();
  const celery = await celerySystem();
  try {
    // The short count first: a failure shows before the long rounds, not after.
    const counts = new Map<System, CallCount[]>();
    for (const system of [celeriac, celery]) {
      const list: CallCount[] = [];
      for (const size of COUNTED_CHORDS) list.push(await countChordCalls(system, size));
      counts.set(system, list);
      console.log(system.name, 'chord calls', list);
    }
    const measured = await measureAll([celeriac, celery]);
    writeSection('canvas', report(measured, celeriac, celery, counts, await redisVersion(), code));
  } finally {
    stopKilling();
    // A failed cleanup must not hide the error that ended the run.
    for (const system of [celeriac, celery]) await flush(system.db).catch((error: unknown) => console.error(`could not flush db ${system.db}:`, error));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runCanvasBench();
