/**
 * The SQLite broker and backend with the producer and the worker in separate processes, as users
 * run them: a drain of 20,000 no-ops at c=50 with results stored, enqueue→start latency on an
 * idle worker, and the CPU an idle worker and an idle result waiter use (utime+stime from /proc
 * over 5 s). Run after building dist (`npx tsc -p tsconfig.build.json`):
 *
 *   npx tsx bench/sqlite-processes.ts [rounds=3]
 *
 * Prints its figures; writes nothing to RESULTS.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import { killOnExit, processCpuSeconds, WorkerProcess } from './processes.js';
import { percentile, perSecond } from './lib.js';

const DRAIN = 20_000;
const PROBES = 300;
const IDLE_SECONDS = 5;
const cli = fileURLToPath(new URL('../bin/celeriac.js', import.meta.url));
const tasks = fileURLToPath(new URL('./sqlite-processes-tasks.js', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
if (!existsSync(built)) throw new Error('build dist first: npx tsc -p tsconfig.build.json');
// The producer runs the build too, as the worker does: the figures are those of one version.
const { Celeriac } = (await import(built)) as typeof import('../src/index.js');

const rounds = Number(process.argv[2] ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'celeriac-sqlite-bench-'));
const url = `sqlite://${join(dir, 'bench.db')}`;
const stopAll = killOnExit();

function startWorker(concurrency: number): WorkerProcess {
  const args = [cli, 'worker', '-A', tasks, '--broker', url, '--backend', url, '-c', String(concurrency), '-l', 'warning', '--without-mingle'];
  return new WorkerProcess({ label: `-c ${concurrency}`, command: process.execPath, args, env: process.env });
}

/** The share of one core `pid` used over `seconds`, in %. */
async function idleCpu(pid: number, seconds: number): Promise<number> {
  const before = processCpuSeconds(pid);
  await sleep(seconds * 1000);
  return ((processCpuSeconds(pid) - before) / seconds) * 100;
}

const app = new Celeriac({ broker: url, backend: url });
const noop = app.task('bench.noop', () => null);
const startedAt = app.task('bench.startedAt', () => 0);
let counter: Sqlite.Database | undefined; // opened once the worker made the file
const storedResults = (): number => {
  counter ??= new Sqlite(join(dir, 'bench.db'), { readonly: true });
  return (counter.prepare('SELECT COUNT(*) AS n FROM celeriac_results').get() as { n: number }).n;
};

/**
 * Sends `count` no-ops in one batch; resolves once all results are stored with the drain rate
 * and the CPU time the worker `pid` spent per task (µs; unlike the rate, barely moved by other
 * load on the machine).
 */
async function drain(count: number, pid: number): Promise<{ rate: number; cpuPerTask: number }> {
  const target = storedResults() + count;
  const results = noop.delayMany(Array.from({ length: count }, () => []));
  await results[0]!.sent;
  const started = performance.now();
  const cpuBefore = processCpuSeconds(pid);
  while (storedResults() < target) await sleep(5);
  return { rate: count / ((performance.now() - started) / 1000), cpuPerTask: ((processCpuSeconds(pid) - cpuBefore) / count) * 1e6 };
}

try {
  const busy = startWorker(50);
  await busy.guard(noop.delay().get({ timeout: 30_000 }), 'starting');
  await busy.guard(drain(2_000, busy.pid), 'warming up');
  const drains: Array<{ rate: number; cpuPerTask: number }> = [];
  for (let i = 0; i < rounds; i++) drains.push(await busy.guard(drain(DRAIN, busy.pid), 'draining'));
  await busy.stop();

  const idle = startWorker(1);
  await idle.guard(startedAt.delay().get({ timeout: 30_000 }), 'starting');
  const latencies: number[] = [];
  for (let i = 0; i < PROBES; i++) {
    const sentAt = performance.timeOrigin + performance.now();
    const started = await idle.guard(startedAt.delay().get({ timeout: 10_000 }), 'probing');
    latencies.push(started - sentAt);
    await sleep(2);
  }
  await sleep(1000);
  const workerCpu = await idleCpu(idle.pid, IDLE_SECONDS);

  // A producer in its own process awaiting a result no worker will produce (nobody consumes its queue).
  const waiterScript = `
    const { Celeriac } = await import(${JSON.stringify(built)});
    const app = new Celeriac({ broker: ${JSON.stringify(url)}, backend: ${JSON.stringify(url)} });
    await app.task('bench.unserved', () => null, { queue: 'bench.nobody' }).delay().get();`;
  const waiter = spawn(process.execPath, ['--input-type=module', '-e', waiterScript], { stdio: 'inherit' });
  await sleep(1500);
  const waiterCpu = await idleCpu(waiter.pid!, IDLE_SECONDS);
  waiter.kill();
  await idle.stop();

  const rates = drains.map((d) => d.rate);
  const cpu = drains.map((d) => d.cpuPerTask);
  console.log(`drain c=50 of ${DRAIN} (results stored): ${rates.map(perSecond).join(', ')} (median ${perSecond(percentile(rates, 0.5))})`);
  console.log(`worker CPU per task in the drain: ${cpu.map((us) => `${us.toFixed(0)} µs`).join(', ')} (median ${percentile(cpu, 0.5).toFixed(0)} µs)`);
  console.log(`enqueue→start, idle worker -c 1 (${PROBES} probes): p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms`);
  console.log(`idle CPU over ${IDLE_SECONDS} s: worker ${workerCpu.toFixed(2)}%, result waiter ${waiterCpu.toFixed(2)}%`);
} finally {
  stopAll();
  counter?.close();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
}
