/**
 * AMQP benchmark: celeriac beside Python Celery and celery-node on the same RabbitMQ, results in
 * Redis db 12 for every system. Enqueue rate (single awaited, bulk with publisher confirms),
 * drain of no-op tasks at concurrency 1, 2 and 50, enqueue→start latency on an idle worker, and
 * the RSS of an idle worker process. The steps and helpers are bench/redis.ts's.
 *
 * Run: npx tsx -e "import('./bench/amqp.ts').then((m) => m.runAmqpBench())"   (after npm run build)
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { Celeriac } from '../src/index.js';
import { publishProperties } from '../src/transports/amqp/amqp-broker.js';
import { encodeTaskMessage } from '../src/protocol/encode.js';
import type { TransportMessage } from '../src/protocol/message.js';
import { machine, perSecond, rate, table, writeSection } from './lib.js';
import {
  celeriacSystem,
  celeryNodeSystem,
  celeryNodeVersion,
  childRss,
  delayInBatches,
  measure,
  met,
  ratio,
  ratioCells,
  REDIS_URL,
  resultCells,
  ROUNDS,
  spread,
  uniqueQueue,
  withChild,
  type Row,
  type Sizes,
  type System,
} from './redis.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672//';
const PYTHON = '/usr/bin/python3'; // Debian's python3-celery; never another interpreter
const PYTHON_DIR = fileURLToPath(new URL('./python/', import.meta.url));
/** The Celery pool for each concurrency: solo runs one task at a time; prefork one process per core. */
const POOLS: Record<number, string> = { 1: 'solo', 2: 'prefork', 50: 'threads' };
const run = promisify(execFile);
const PYTHON_ENV = { ...process.env, BENCH_BROKER: AMQP_URL, BENCH_BACKEND: REDIS_URL, PYTHONDONTWRITEBYTECODE: '1' };
/** Smaller runs where a system is slow, to keep the suite near 5 minutes. */
const PYTHON_SIZES = { drain: 3000 };
const NODE_SIZES = { single: 100, bulk: 300 };

/** Python Celery 5.2: producer bench/python/produce.py, worker `celery -A bench_tasks worker`. */
function pythonSystem(label: string, results: Redis): System {
  const queue = uniqueQueue('celery-py');
  const options = { cwd: PYTHON_DIR, env: PYTHON_ENV };
  const produce = async (mode: string, n: number): Promise<{ rate: number; ms: number[] }> =>
    JSON.parse((await run(PYTHON, ['produce.py', mode, String(n), queue], options)).stdout);
  const worker = (concurrency: number): string[] => {
    const pool = POOLS[concurrency] ?? 'prefork';
    return ['-m', 'celery', '-A', 'bench_tasks', 'worker', `--pool=${pool}`, '-c', String(concurrency), '-Q', queue, '-l', 'WARNING', '--without-mingle', '--without-gossip'];
  };
  return {
    label,
    queue,
    /** apply_async one call after another, timed inside Python (interpreter start excluded). */
    enqueue: async (n) => (await produce('enqueue', n)).rate,
    /** The clock starts at the first stored result, so the worker's boot is left out. */
    async drain(n, concurrency) {
      await produce('fill', n);
      return withChild(PYTHON, worker(concurrency), options, async () => {
        let first: { at: number; count: number } | undefined;
        for (let count = 0; count < n; await sleep(5)) {
          count = await results.dbsize();
          if (count > 0) first ??= { at: performance.now(), count };
        }
        return (n - first!.count) / ((performance.now() - first!.at) / 1000);
      });
    },
    latency: (n) => withChild(PYTHON, worker(2), options, async () => (await produce('latency', n)).ms),
    async rss() {
      const before = await results.dbsize();
      return childRss(
        PYTHON,
        worker(2),
        async () => {
          await produce('fill', 1000);
          while ((await results.dbsize()) < before + 1000) await sleep(5);
        },
        options,
      );
    },
  };
}

/** Sends `n` no-op tasks to `queue` with celeriac: Celery protocol v2, which celery-node reads. */
async function celeriacFill(queue: string, n: number): Promise<void> {
  const app = new Celeriac({ broker: AMQP_URL, backend: REDIS_URL, defaultQueue: queue });
  await delayInBatches(app.task('bench.noop', () => null), n);
  await app.close();
}

/**
 * What RabbitMQ takes here with confirms, without celeriac: raw amqplib publishing persistent
 * messages in confirmed batches of 1,000 — bare 400-byte bodies, or `message` exactly as
 * celeriac sends it (Celery's header table and properties). Also returns this process's CPU
 * share, to show which side is the limit.
 */
async function rawConfirmRate(connection: amqp.ChannelModel, n: number, message?: TransportMessage): Promise<{ rate: number; nodeCpu: number }> {
  const channel = await connection.createConfirmChannel();
  const queue = uniqueQueue('raw-amqplib');
  await channel.assertQueue(queue, { durable: true });
  const body = message?.body ?? Buffer.alloc(400, 'x');
  const options = message ? publishProperties(message, undefined) : { persistent: true };
  const cpu = process.cpuUsage();
  const started = performance.now();
  const perSecond = await rate(n, async () => {
    for (let i = 0; i < n; i += 1000) {
      for (let j = 0; j < 1000; j++) channel.publish('', queue, body, options);
      await channel.waitForConfirms();
    }
  });
  const used = process.cpuUsage(cpu);
  const nodeCpu = (used.user + used.system) / 1000 / (performance.now() - started);
  await channel.deleteQueue(queue);
  await channel.close();
  return { rate: perSecond, nodeCpu };
}

/** One no-op task message as celeriac puts it on the wire. */
async function celeriacWireMessage(): Promise<TransportMessage> {
  const app = new Celeriac({ broker: 'memory://', backend: 'memory://' });
  const message = encodeTaskMessage(app.buildMessage('bench.noop', [], {}, {}));
  await app.close();
  return message;
}

export async function runAmqpBench(): Promise<void> {
  const results = new Redis(REDIS_URL);
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  /** Empties the system's queue (declared as all three declare it: durable, no arguments) and the results. */
  const reset = async (system?: System): Promise<void> => {
    await results.flushdb();
    if (system) await channel.assertQueue(system.queue, { durable: true }).then(() => channel.purgeQueue(system.queue));
  };
  const sizes: Sizes = { single: 2000, bulk: 20_000, drain: 10_000, probes: 300, concurrencies: [1, 2, 50] };
  try {
    const python = `Python Celery ${(await run(PYTHON, ['-c', 'import celery; print(celery.__version__)'])).stdout.trim()}`;
    const celeryNode = celeryNodeSystem({
      label: `celery-node ${celeryNodeVersion()}`,
      broker: AMQP_URL,
      backend: REDIS_URL,
      results,
      queued: async (queue) => (await channel.assertQueue(queue, { durable: true })).messageCount,
      prefill: celeriacFill,
    });
    const [celeriac, py, node] = (await measure(
      [
        [celeriacSystem('celeriac', AMQP_URL, REDIS_URL), sizes],
        [pythonSystem(python, results), { ...sizes, ...PYTHON_SIZES }],
        [celeryNode, { ...sizes, ...NODE_SIZES, concurrencies: [50] }], // no concurrency setting: see the notes
      ],
      ROUNDS,
      reset,
    )) as [Row, Row, Row];
    const raw = await rawConfirmRate(connection, 20_000);
    const rawCelery = await rawConfirmRate(connection, 20_000, await celeriacWireMessage());
    node.drains = [NaN, NaN, node.drains[0]!];
    node.drainRounds = [[], [], node.drainRounds[0]!];
    await reset();
    const pythonConfirmed = JSON.parse(
      (await run(PYTHON, ['produce.py', 'enqueue', '2000', uniqueQueue('celery-py-confirm')], { cwd: PYTHON_DIR, env: { ...PYTHON_ENV, BENCH_CONFIRM: '1' } }))
        .stdout,
    ).rate as number;
    const best = (row: Row): number => Math.max(...row.drains.filter(Number.isFinite));
    const bestSpread = (row: Row): string => {
      const i = row.drains.indexOf(best(row));
      return `${row.label} c=${sizes.concurrencies[i]} ${spread(row.drainRounds[i])}`;
    };
    const rows = [celeriac, py, node].map(resultCells);
    const ratios = (peer: Row): string[] => ratioCells(celeriac, peer);
    const rabbit = (await run('rabbitmqctl', ['version'])).stdout.trim();
    writeSection(
      'amqp',
      `## AMQP: celeriac, Python Celery and celery-node on one RabbitMQ

Machine: ${machine()}. RabbitMQ ${rabbit}. Date: ${new Date().toISOString().slice(0, 10)}.
Reproduce: \`npm run bench -- amqp\` (script: bench/amqp.ts,
bench/python/). Broker \`${AMQP_URL}\`, one new queue per system (purged before each measurement, deleted
afterwards); result backend \`${REDIS_URL}\` for every system (flushed before each measurement). Enqueue:
${sizes.single.toLocaleString('en-US')} sends one after another; bulk: ${sizes.bulk.toLocaleString('en-US')} (celeriac \`delayMany\` in batches of 1,000, each awaited until RabbitMQ confirms
it). Drain: ${sizes.drain.toLocaleString('en-US')} no-op tasks pre-filled, timed until every result is stored. Latency: ${sizes.probes} probes one at a
time to an idle worker, send → handler start. RSS: a worker process idle 3 s after running 1,000 tasks. Rates are
the median of ${ROUNDS} rounds, the systems taking turns; latency and RSS come from one run each.

${table(['system', 'enqueue (single, awaited)', 'enqueue (bulk)', 'drain c=1', 'drain c=2', 'drain c=50', 'enqueue→start p50', 'p99', 'idle worker RSS'], [...rows, ratios(py), ratios(node)])}

Ratios are celeriac's figure over the peer's: above 1 is better for rates, below 1 is better for latency and RSS.
For scale, raw amqplib on a confirm channel (persistent messages, confirmed batches of 1,000) publishes
${perSecond(raw.rate)} bare 400-byte messages to this RabbitMQ, and ${perSecond(rawCelery.rate)} of the message celeriac sends
(Celery's header table and properties) with this process at ${(rawCelery.nodeCpu * 100).toFixed(0)}% of a core: RabbitMQ, not the
client, sets that ceiling. celeriac's \`delayMany\` reaches ${((celeriac.bulk / rawCelery.rate) * 100).toFixed(0)}% of it.

- **celeriac**: producer and worker in one process (workers at prefetch max(4 × c, 100)); every publish waits for
  RabbitMQ's confirm. Drain clocks start at \`worker.start()\`. RSS: \`celeriac worker -A bench/noop-tasks.js\`.
- **${python}** (Debian's, run with /usr/bin/python3): producer bench/python/produce.py, \`apply_async\` with Celery's
  defaults, which publish without confirms (with \`confirm_publish\` on: ${perSecond(pythonConfirmed)}); no bulk send. Worker
  \`celery -A bench_tasks worker --without-mingle --without-gossip -l WARNING\`: c=1 \`--pool=solo\`, c=2 \`--pool=prefork -c 2\`
  (one process per core), c=50 \`--pool=threads -c 50\` (solo runs one task at a time; 50 prefork processes on 2 cores
  is not a useful setting). Drains of ${PYTHON_SIZES.drain.toLocaleString('en-US')} tasks, pre-filled by produce.py; their clocks start at the first
  stored result, leaving out the worker's boot. Latency and RSS with prefork -c 2, the default pool (RSS sums the
  main process and its 2 children); latency is timed in Python, \`time.time()\` before \`apply_async\` to \`time.time()\`
  inside the task.
- **celery-node**: no concurrency or prefetch setting: its consumer acks each message on arrival (before running it) and runs the
  handler without awaiting it, so its one drain figure is shown under c=50. It declares the queue before every
  publish and has no confirms; its sends are slow here, so it sends ${NODE_SIZES.single} (single, awaiting the publish \`sendTask\` fires and
  drops) and ${NODE_SIZES.bulk} (\`applyAsync\` in a loop without awaiting, timed until the queue holds them all), and its drain and RSS
  queues are pre-filled by celeriac (Celery protocol v2, which it reads). RSS: bench/peers/celery-node-worker.mjs.
- celery-node leaves amqplib's \`noDelay\` at its default (false, so Nagle's algorithm is on): its enqueue→start
  latency near 40 ms and its sends of about 40 ms each match that delay meeting the peer's delayed ACK. celeriac
  sets \`noDelay\`.

Best drain of each system across the rounds (min–max): ${[celeriac, py, node].map(bestSpread).join('; ')}.

Targets (issue): drain ≥ 3× Python Celery's best pool — ${met(best(celeriac) >= 3 * best(py))} (celeriac best ${perSecond(best(celeriac))} vs ${perSecond(best(py))}: ${ratio(best(celeriac), best(py))});
drain ≥ the best Node peer's — ${met(best(celeriac) >= best(node))} (vs celery-node ${perSecond(best(node))}: ${ratio(best(celeriac), best(node))}); publish with confirms
≥ 20,000 messages/s — ${met(celeriac.bulk >= 20_000)} (${perSecond(celeriac.bulk)} with \`delayMany\`; ${perSecond(celeriac.single)} awaiting each \`delay\`;
raw amqplib with the same messages: ${perSecond(rawCelery.rate)}).`,
    );
  } finally {
    // A failed cleanup must not hide the error that ended the run.
    await results.flushdb().catch((error: unknown) => console.error('could not flush the results db:', error));
    await deleteBenchQueues().catch((error: unknown) => console.error('could not delete the bench queues:', error));
    await connection.close().catch(() => undefined);
    results.disconnect();
  }
}

/** Deletes the queues and exchanges this run declared (their names carry this process's pid), on a connection of its own. */
async function deleteBenchQueues(): Promise<void> {
  const ours = (name: string): boolean => name.startsWith('bench.') && name.includes(`.${process.pid}.`);
  const list = async (what: string): Promise<string[]> => (await run('rabbitmqctl', ['-q', what, 'name'])).stdout.split('\n').map((l) => l.trim()).filter(ours);
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    for (const queue of await list('list_queues')) await channel.deleteQueue(queue);
    for (const exchange of await list('list_exchanges')) await channel.deleteExchange(exchange);
  } finally {
    await connection.close();
  }
}
