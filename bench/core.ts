/**
 * Core benchmark: the memory and embedded SQLite brokers. Enqueue rate (single awaited, bulk),
 * drain rate of no-op tasks with results stored at concurrency 1 and 50, enqueue→start latency
 * on an idle worker, and idle worker RSS.
 *
 * Run: npm run bench -- core
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Celeriac, createLogger } from '../src/index.js';
import { machine, percentile, perSecond, rate, rssMb, table, writeSection } from './lib.js';

const quiet = createLogger('critical');

interface Sizes {
  single: number;
  bulk: number;
  drain: number;
}

interface Row {
  broker: string;
  single: number;
  bulk: number;
  drain1: number;
  drain50: number;
  p50: number;
  p99: number;
}

async function measure(label: string, url: () => string, sizes: Sizes): Promise<Row> {
  const app = (): Celeriac => {
    const u = url();
    return new Celeriac({ broker: u, backend: u });
  };
  // Enqueue, single awaited calls.
  let a = app();
  let noop = a.task('bench.noop', () => null);
  const single = await rate(sizes.single, async () => {
    for (let i = 0; i < sizes.single; i++) await noop.delay().sent;
  });
  await a.close();
  // Enqueue, bulk.
  a = app();
  noop = a.task('bench.noop', () => null);
  const bulk = await rate(sizes.bulk, async () => {
    for (let i = 0; i < sizes.bulk; i += 1000) await noop.delayMany(Array.from({ length: 1000 }, () => []))[0]!.sent;
  });
  await a.close();
  const drain = async (concurrency: number): Promise<number> => {
    const d = app();
    const task = d.task('bench.noop', () => null);
    for (let i = 0; i < sizes.drain; i += 1000) await task.delayMany(Array.from({ length: Math.min(1000, sizes.drain - i) }, () => []))[0]!.sent;
    const worker = d.worker({ concurrency, prefetch: Math.max(concurrency * 4, 100), logger: quiet });
    let done = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => (finished = resolve));
    worker.on('task-succeeded', () => {
      if (++done === sizes.drain) finished();
    });
    const perSec = await rate(sizes.drain, async () => {
      await worker.start();
      await all;
    });
    await worker.stop();
    await d.close();
    return perSec;
  };
  const drain1 = await drain(1);
  const drain50 = await drain(50);
  // Latency on an idle worker.
  const l = app();
  const started = new Map<string, number>();
  const probe = l.task('bench.probe', (ctx) => {
    started.set(ctx.id, performance.now());
    return null;
  });
  const worker = l.worker({ concurrency: 10, logger: quiet });
  await worker.start();
  const latencies: number[] = [];
  for (let i = 0; i < 300; i++) {
    const sentAt = performance.now();
    const result = probe.delay();
    await result;
    latencies.push(started.get(result.id)! - sentAt);
    await sleep(2);
  }
  await worker.stop();
  await l.close();
  return { broker: label, single, bulk, drain1, drain50, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

async function idleWorkerRss(url: string, tasksFile: string): Promise<number> {
  const cli = fileURLToPath(new URL('../bin/celeriac.js', import.meta.url));
  const tasks = fileURLToPath(new URL(tasksFile, import.meta.url));
  const child = spawn(process.execPath, [cli, 'worker', '-A', tasks, '--broker', url, '-l', 'warning'], { stdio: 'ignore' });
  await sleep(4000);
  const rss = rssMb(child.pid!);
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  return rss;
}

export async function runCoreBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'celeriac-bench-'));
  let n = 0;
  try {
    const memory = await measure('memory://', () => `memory://bench-${n++}`, { single: 20_000, bulk: 200_000, drain: 200_000 });
    console.log(memory);
    const sqlite = await measure('sqlite:// (WAL, synchronous=NORMAL)', () => `sqlite://${join(dir, `bench-${n++}.db`)}`, { single: 5_000, bulk: 100_000, drain: 50_000 });
    console.log(sqlite);
    const rss = await idleWorkerRss(`sqlite://${join(dir, 'rss.db')}`, './noop-tasks.js');
    const rssTs = await idleWorkerRss(`sqlite://${join(dir, 'rss.db')}`, './noop-tasks.ts');
    console.log({ rss, rssTs });
    const rows = [memory, sqlite].map((r) => [
      r.broker,
      perSecond(r.single),
      perSecond(r.bulk),
      perSecond(r.drain1),
      perSecond(r.drain50),
      `${r.p50.toFixed(2)} ms`,
      `${r.p99.toFixed(2)} ms`,
    ]);
    writeSection(
      'core',
      `## Core: memory and embedded SQLite

Machine: ${machine()}. Date: ${new Date().toISOString().slice(0, 10)}.
Reproduce: \`npm run bench -- core\` (script: bench/core.ts). Producer and worker share one process;
drain counts no-op tasks from a full queue until every result is stored.

${table(['broker', 'enqueue (single, awaited)', 'enqueue (bulk, delayMany)', 'drain c=1', 'drain c=50', 'enqueue→start p50', 'p99'], rows)}

Idle worker RSS (\`celeriac worker\` process on SQLite, after 4 s idle): **${rss.toFixed(1)} MB** with a
JavaScript task module, **${rssTs.toFixed(1)} MB** with a TypeScript one (Node 20 runs the TypeScript
loader's hooks on a thread of their own, about 30 MB; compile task modules to JavaScript where
memory is tight).

Targets (issue 2): memory drain ≥ 50,000/s — ${memory.drain50 >= 50_000 ? 'met' : 'NOT met'}; SQLite drain ≥ 10,000/s — ${sqlite.drain50 >= 10_000 ? 'met' : 'NOT met'}; idle RSS ≤ 80 MB — ${rss <= 80 ? 'met' : 'NOT met'} (JavaScript module), ${rssTs <= 80 ? 'met' : 'NOT met'} (TypeScript module).`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
