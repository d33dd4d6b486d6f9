/**
 * A/B of celeriac builds, from outside: each build a snapshot directory (its dist/, bin/ and
 * package.json), its worker a `celeriac worker` process of its own on Redis db 13 (with
 * `AB_BROKER=sqlite`: a SQLite file in /tmp, broker and results), this script the producer. The builds take turns, round after round, so the machine's drift hits them alike;
 * the medians of each build's rounds are printed.
 *
 *   npx tsx bench/ab.ts snapshot <dir>                        the current dist/ (run `npm run build` first)
 *   npx tsx bench/ab.ts drain <rounds> <c> <dir>[|<worker option>...] ...
 *       20,000 no-ops shown at once to a warmed-up worker at concurrency c: tasks/s, the worker's
 *       CPU per task (utime + stime) and its peak RSS (VmHWM)
 *   npx tsx bench/ab.ts latency <rounds> <dir>[|<worker option>...] ...
 *       enqueue→start p50 and p99 of 300 probes 2 ms apart to an idle -c 1 worker
 *   npx tsx bench/ab.ts bulk <rounds> <dir> ...
 *       20,000 `delayMany` sends in batches of 1,000, no worker
 *
 * Options after `|` go to that build's worker (`"/tmp/a|--no-track-children"`), so one build can
 * be compared with itself under another setting; those written `node:<option>` go to its `node`
 * (`"/tmp/a|node:--cpu-prof|node:--cpu-prof-dir=/tmp/prof"` profiles it).
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import type { Celeriac as CeleriacClass } from '../src/index.js';
import { percentile } from './lib.js';
import { killOnExit, processCpuSeconds, WorkerProcess } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SQLITE_FILE = `/tmp/celeriac-ab-${process.pid}.db`;
const TASKS = 20_000;
const BATCH = 1_000;
const PROBES = 300;
const QUEUE = 'ab';

interface Build {
  dir: string;
  /** Options for the worker's `node` (given as `node:<option>`), then for `celeriac worker`. */
  nodeOptions: string[];
  workerOptions: string[];
  label: string;
}

/** Where the builds' workers and this script meet: the broker and result store, emptied before each round. */
interface Target {
  url: string;
  reset(): Promise<void>;
  /** Moves every message of `from` to `to` in one step a blocked or watching worker wakes on. */
  rename(from: string, to: string): Promise<void>;
  /** How many of `ids` (the renamed messages) have their results stored since the rename. */
  stored(ids: string[]): Promise<number>;
  close(): void;
}

function redisTarget(): Target {
  const url = 'redis://127.0.0.1:6379/13';
  const redis = new Redis(url, { lazyConnect: true }); // `snapshot` never connects
  let before = 0;
  return {
    url,
    reset: async () => {
      await redis.flushdb();
      before = 0;
    },
    rename: async (from, to) => {
      before = await redis.dbsize();
      await redis.rename(from, to);
    },
    // Keys grown since the rename, then, near the end, exactly: other keys come and go meanwhile.
    stored: async (ids) => {
      const grown = (await redis.dbsize()) - before;
      return grown < ids.length - 50 ? grown : redis.exists(...ids.map((id) => `celery-task-meta-${id}`));
    },
    close: () => redis.disconnect(),
  };
}

function sqliteTarget(): Target {
  let db: Database.Database | undefined;
  let before = 0;
  const open = (): Database.Database => {
    db ??= new Database(SQLITE_FILE);
    db.pragma('busy_timeout = 5000');
    return db;
  };
  const results = (): number => (open().prepare('SELECT COUNT(*) AS n FROM celeriac_results').get() as { n: number }).n;
  const close = (): void => {
    db?.close();
    db = undefined;
  };
  return {
    url: `sqlite://${SQLITE_FILE}`,
    reset: async () => {
      close();
      for (const name of readdirSync(dirname(SQLITE_FILE))) {
        if (name.startsWith(basename(SQLITE_FILE))) rmSync(join(dirname(SQLITE_FILE), name), { recursive: true, force: true });
      }
    },
    rename: async (from, to) => {
      before = results();
      open().prepare('UPDATE celeriac_messages SET queue = ? WHERE queue = ?').run(to, from);
    },
    stored: async () => results() - before,
    close,
  };
}

const parseBuild = (spec: string): Build => {
  const [dir = '', ...options] = spec.split('|');
  const nodeOptions = options.filter((option) => option.startsWith('node:')).map((option) => option.slice('node:'.length));
  return { dir: resolve(dir), nodeOptions, workerOptions: options.filter((option) => !option.startsWith('node:')), label: spec };
};

/** Copies the current build where a later build cannot overwrite it. */
function snapshot(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const part of ['dist', 'bin', 'package.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'tasks.js'), readFileSync(join(ROOT, 'bench/peers/celeriac-tasks.js')));
}

/** A client app of the build, closed after `use`. */
async function withApp<T>(build: Build, use: (app: CeleriacClass) => Promise<T>): Promise<T> {
  const { Celeriac } = (await import(join(build.dir, 'dist/index.js'))) as { Celeriac: typeof CeleriacClass };
  const app = new Celeriac({ broker: target.url, backend: target.url, defaultQueue: QUEUE });
  try {
    return await use(app);
  } finally {
    await app.close();
  }
}

/** The build's worker on {@link QUEUE} at concurrency `c`, started, warmed by one task, stopped after `use`. */
async function withWorker<T>(build: Build, app: CeleriacClass, c: number, use: (worker: WorkerProcess) => Promise<T>): Promise<T> {
  const worker = new WorkerProcess({
    label: build.label,
    command: process.execPath,
    args: [...build.nodeOptions, join(build.dir, 'bin/celeriac.js'), 'worker', '-A', join(build.dir, 'tasks.js'), '--broker', target.url, '--backend', target.url, '-Q', QUEUE, '-c', String(c), '-l', 'warning', ...build.workerOptions],
    env: process.env,
  });
  try {
    await worker.guard(app.sendTask('bench.noop').get({ timeout: 60 }), 'starting');
    return await use(worker);
  } finally {
    await worker.stop();
  }
}

/** {@link TASKS} no-ops sent with `delayMany` in batches of {@link BATCH}, each awaited; their ids. */
async function sendNoops(app: CeleriacClass, queue = QUEUE): Promise<string[]> {
  const noop = app.task('bench.noop', () => null);
  const ids: string[] = [];
  for (let i = 0; i < TASKS; i += BATCH) {
    const sent = noop.delayMany(Array.from({ length: BATCH }, () => []), { queue });
    await sent[0]!.sent;
    ids.push(...sent.map((result) => result.id));
  }
  return ids;
}

const peakRssMb = (pid: number): number => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

type Measure = (build: Build) => Promise<Record<string, number>>;

const drain =
  (c: number): Measure =>
  (build) =>
    withApp(build, async (app) => {
      const ids = await sendNoops(app, `${QUEUE}.staged`);
      return withWorker(build, app, c, async (worker) => {
        await sleep(1_500);
        const cpu = processCpuSeconds(worker.pid);
        const started = performance.now();
        await target.rename(`${QUEUE}.staged`, QUEUE);
        while ((await target.stored(ids)) < TASKS) await worker.guard(sleep(5), 'draining');
        const seconds = (performance.now() - started) / 1000;
        return { 'tasks/s': TASKS / seconds, 'CPU µs/task': ((processCpuSeconds(worker.pid) - cpu) * 1e6) / TASKS, 'peak RSS MB': peakRssMb(worker.pid) };
      });
    });

const latency: Measure = (build) =>
  withApp(build, (app) =>
    withWorker(build, app, 1, async (worker) => {
      const now = (): number => Number(process.hrtime.bigint()) / 1e6;
      const probe = (): Promise<number> => worker.guard(app.sendTask<number>('bench.probe', [now()]).get({ timeout: 30 }), 'probing');
      for (let i = 0; i < 50; i++) await probe(); // warm-up
      await sleep(1_000);
      const samples: number[] = [];
      for (let i = 0; i < PROBES; i++) {
        samples.push(await probe());
        await sleep(2);
      }
      return { 'p50 ms': percentile(samples, 0.5), 'p99 ms': percentile(samples, 0.99) };
    }),
  );

const bulk: Measure = (build) =>
  withApp(build, async (app) => {
    await app.broker();
    const started = performance.now();
    await sendNoops(app);
    return { 'sends/s': TASKS / ((performance.now() - started) / 1000) };
  });

async function compare(rounds: number, builds: Build[], measure: Measure): Promise<void> {
  const results = new Map<Build, Array<Record<string, number>>>(builds.map((build) => [build, []]));
  const stopAll = killOnExit();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const build of builds) {
        await target.reset();
        const figures = await measure(build);
        results.get(build)!.push(figures);
        console.log(`round ${round} ${build.label}: ${format(figures)}`);
      }
    }
  } finally {
    stopAll();
    await target.reset();
    target.close();
  }
  console.log(`\nmedians of ${rounds} rounds:`);
  for (const [build, rows] of results) {
    const medians = Object.fromEntries(Object.keys(rows[0] ?? {}).map((key) => [key, percentile(rows.map((row) => row[key]!), 0.5)]));
    console.log(`${build.label}: ${format(medians)}`);
  }
}

const format = (figures: Record<string, number>): string =>
  Object.entries(figures)
    .map(([key, value]) => `${key} ${value >= 100 ? Math.round(value) : value.toFixed(2)}`)
    .join(', ');

const [command, ...rest] = process.argv.slice(2);
const target = process.env.AB_BROKER === 'sqlite' ? sqliteTarget() : redisTarget();
const usage = 'usage: npx tsx bench/ab.ts snapshot <dir> | drain <rounds> <c> <dir>... | latency <rounds> <dir>... | bulk <rounds> <dir>...';
if (command === 'snapshot' && rest[0]) {
  snapshot(resolve(rest[0]));
} else if (command === 'drain' && rest.length >= 3) {
  const [rounds, c, ...dirs] = rest;
  await compare(Number(rounds), dirs.map(parseBuild), drain(Number(c)));
} else if (command === 'latency' && rest.length >= 2) {
  await compare(Number(rest[0]), rest.slice(1).map(parseBuild), latency);
} else if (command === 'bulk' && rest.length >= 2) {
  await compare(Number(rest[0]), rest.slice(1).map(parseBuild), bulk);
} else {
  console.error(usage);
  process.exit(2);
}
