/**
 * `celeriac demo`: the seed workloads through real worker processes on the embedded broker.
 * Primes and squares run concurrently and are gathered; page titles are fetched concurrently
 * and printed as they complete; then one CPU-bound job runs on the event-loop worker and on a
 * process-pool worker, with both wall times and the speed-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Celeriac } from '../app.js';
import { asCompleted, gather, type AsyncResult } from '../result.js';
import { loadApp } from './load-app.js';
import { ProgressBar } from './progress.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SEED_TASKS = join(ROOT, 'examples', 'seed', 'tasks.ts');
const CLI = join(ROOT, 'bin', 'celeriac.js');

/** Runs the demo; `urls` are pages to fetch titles of (default: a local server's pages). */
export async function runDemo(urls: string[], options: { broker: string }): Promise<void> {
  const app = await loadApp({ app: SEED_TASKS, broker: options.broker });
  const worker = startWorker(options.broker, ['-c', '20']);
  const processPool = startWorker(options.broker, ['-P', 'processes', '-c', String(POOL_SIZE), '-Q', CPU_QUEUE]);
  const server = urls.length === 0 ? await startPageServer() : undefined;
  try {
    process.stdout.write(`celeriac demo: event-loop worker pid ${worker.pid}, process-pool worker pid ${processPool.pid}, on ${options.broker}\n\n`);
    await primesAndSquares(app);
    await pageTitles(app, urls.length > 0 ? urls : pagesOf(server!));
    await eventLoopAgainstProcesses(app);
  } finally {
    server?.close();
    await Promise.all([stopWorker(worker), stopWorker(processPool)]);
    await app.close();
  }
}

async function primesAndSquares(app: Celeriac): Promise<void> {
  process.stdout.write('1. a prime filter over 2..100 and a square mapper over 1..100, concurrently\n');
  const primes = app.sendTask<number[]>('seed.filter_primes', [2, 100]);
  const squares = app.sendTask<number[]>('seed.map_squares', [1, 100]);
  const printWhenDone = (label: string) => (result: AsyncResult<number[]>) =>
    void result.then((values) => process.stdout.write(`   done-callback: ${label} finished (${values.length} values)\n`));
  primes.onDone(printWhenDone('primes'));
  squares.onDone(printWhenDone('squares'));
  const [primeValues, squareValues] = await gather([primes, squares] as const, { timeout: 60 });
  process.stdout.write(`   primes:  ${primeValues.join(' ')}\n`);
  process.stdout.write(`   squares: ${squareValues.slice(0, 10).join(' ')} ... ${squareValues.at(-1)} (${squareValues.length} in all)\n\n`);
}

async function pageTitles(app: Celeriac, urls: string[]): Promise<void> {
  process.stdout.write(`2. page titles of ${urls.length} URLs, fetched concurrently, printed as they complete\n`);
  const results = urls.map((url) => app.sendTask<{ url: string; title: string }>('seed.fetch_title', [url]));
  const bar = new ProgressBar(urls.length, '   titles');
  for await (const completed of asCompleted(results, { timeout: 120 })) {
    if (completed.ok) bar.log(`   ${completed.value.title.padEnd(36)} ${completed.value.url}`);
    else bar.log(`   (failed: ${completed.error.message})`);
    bar.tick();
  }
  bar.finish();
}

/** The process-pool worker's queue, and its children: one per core. */
const CPU_QUEUE = 'demo-cpu';
const POOL_SIZE = availableParallelism();
/** Primes are counted below this, in {@link CHUNKS} tasks. */
const PRIME_LIMIT = 10_000_000;
const CHUNKS = 16;

async function eventLoopAgainstProcesses(app: Celeriac): Promise<void> {
  process.stdout.write(`\n3. counting the primes below ${PRIME_LIMIT.toLocaleString('en')} in ${CHUNKS} chunks: CPU-bound, so where it runs matters\n`);
  const onLoop = await countPrimes(app, 'the event loop (one core)', undefined);
  const inProcesses = await countPrimes(app, `a process pool of ${POOL_SIZE}`, CPU_QUEUE);
  if (onLoop.count !== inProcesses.count) throw new Error(`the two runs disagree: ${onLoop.count} and ${inProcesses.count} primes`);
  process.stdout.write(`   ${inProcesses.count.toLocaleString('en')} primes either way; the process pool was ${(onLoop.seconds / inProcesses.seconds).toFixed(2)}x faster\n`);
}

async function countPrimes(app: Celeriac, where: string, queue: string | undefined): Promise<{ count: number; seconds: number }> {
  const started = performance.now();
  const size = PRIME_LIMIT / CHUNKS;
  const chunks = Array.from({ length: CHUNKS }, (_, i) => app.sendTask<number>('seed.count_primes', [i * size, (i + 1) * size], {}, queue ? { queue } : {}));
  const bar = new ProgressBar(CHUNKS, `   ${where.padEnd(26)}`);
  let count = 0;
  for await (const completed of asCompleted(chunks, { timeout: 300 })) {
    if (!completed.ok) throw completed.error;
    count += completed.value;
    bar.tick();
  }
  bar.finish();
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`   ${where}: ${seconds.toFixed(2)} s\n`);
  return { count, seconds };
}

function startWorker(broker: string, options: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, 'worker', '-A', SEED_TASKS, '--broker', broker, ...options, '-l', 'error'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

async function stopWorker(worker: ChildProcess): Promise<void> {
  if (worker.exitCode !== null) return;
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.kill('SIGTERM');
  await exited;
}

const PAGE_TOPICS = ['Brokers', 'Workers', 'Results', 'Retries', 'Time limits', 'Revocation', 'Priorities', 'Canvas', 'Beat', 'Events', 'Interop', 'Shutdown'];

/** A local server with a dozen pages, each answering after a short, varying delay. */
function startPageServer(): Promise<Server> {
  const server = createServer((request, response) => {
    const index = Number(request.url?.split('/').pop() ?? 0);
    const topic = PAGE_TOPICS[index % PAGE_TOPICS.length] ?? 'Page';
    setTimeout(() => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(`<html><head><title>celeriac: ${topic}</title></head><body>${topic}</body></html>`);
    }, 50 + ((index * 137) % 400));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function pagesOf(server: Server): string[] {
  const { port } = server.address() as AddressInfo;
  return PAGE_TOPICS.map((_, i) => `http://127.0.0.1:${port}/page/${i}`);
}
