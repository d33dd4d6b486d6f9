/**
 * What the AMQP heartbeat relay costs: celeriac with the relay on (the default) and off
 * (`?heartbeat_relay=off`), taking turns round after round in one run, results in Redis db 12.
 *
 * - The steps of bench/amqp.ts (single and bulk enqueue, drain of no-op tasks at concurrency 1
 *   and 50, enqueue→start latency, idle worker RSS). Their drain clock starts at `worker.start()`,
 *   so it includes opening the consumers' connection (and with the relay, starting its thread).
 * - Warm drains: the same drains with the consumers' connection opened before the clock starts,
 *   for the relay's cost per task alone.
 * - The time to open the consumers' connection.
 *
 * Run: npm run build && npx tsx bench/amqp-heartbeat-relay.ts [rounds]
 */
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { Celeriac, createLogger } from '../src/index.js';
import type { AmqpBroker } from '../src/transports/amqp/amqp-broker.js';
import { machine, percentile, perSecond, rate, table } from './lib.js';
import { celeriacSystem, counter, delayInBatches, measure, ms, ratio, REDIS_URL, uniqueQueue, type Row, type Sizes, type System } from './redis.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672//';
const OFF_URL = `${AMQP_URL}?heartbeat_relay=off`;
const rounds = Number(process.argv[2] ?? 5);
const sizes: Sizes = { single: 2000, bulk: 20_000, drain: 10_000, probes: 300, concurrencies: [1, 50] };
const WARM_DRAIN = 20_000;
const quiet = createLogger('critical');

const results = new Redis(REDIS_URL);
const connection = await amqp.connect(AMQP_URL);
const channel = await connection.createChannel();
const reset = async (system: System): Promise<void> => {
  await results.flushdb();
  await channel.assertQueue(system.queue, { durable: true });
  await channel.purgeQueue(system.queue);
};

/** Deletes a task queue as celeriac declares it: the queue, its dead-letter queue, its exchange. */
async function deleteQueue(queue: string): Promise<void> {
  await channel.deleteQueue(queue);
  await channel.deleteQueue(`${queue}.celeriac.dead`);
  await channel.deleteExchange(queue);
}

/** Tasks/s draining `n` pre-filled no-op tasks, the consumers' connection open before the clock. */
async function warmDrain(broker: string, queue: string, n: number, concurrency: number): Promise<number> {
  await results.flushdb();
  await channel.assertQueue(queue, { durable: true });
  await channel.purgeQueue(queue);
  const app = new Celeriac({ broker, backend: REDIS_URL, defaultQueue: queue });
  const noop = app.task('bench.noop', () => null);
  await delayInBatches(noop, n);
  await ((await app.broker()) as AmqpBroker).consumerSession();
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
}

/** Milliseconds to open the consumers' connection of a connected broker. */
async function openTime(broker: string): Promise<number> {
  const app = new Celeriac({ broker, backend: REDIS_URL });
  const connected = (await app.broker()) as AmqpBroker;
  const started = performance.now();
  await connected.consumerSession();
  const elapsed = performance.now() - started;
  await app.close();
  return elapsed;
}

const systems = [celeriacSystem('relay on', AMQP_URL, REDIS_URL), celeriacSystem('relay off', OFF_URL, REDIS_URL)];
try {
  const [on, off] = (await measure(
    systems.map((system) => [system, sizes] as [System, Sizes]),
    rounds,
    reset,
  )) as [Row, Row];

  const warm = { on: [[], []] as number[][], off: [[], []] as number[][] };
  const opens = { on: [] as number[], off: [] as number[] };
  const warmQueue = uniqueQueue('relay-warm');
  for (let round = 0; round < rounds; round++) {
    for (const [k, concurrency] of sizes.concurrencies.entries()) {
      warm.on[k]!.push(await warmDrain(AMQP_URL, warmQueue, WARM_DRAIN, concurrency));
      warm.off[k]!.push(await warmDrain(OFF_URL, warmQueue, WARM_DRAIN, concurrency));
    }
    opens.on.push(await openTime(AMQP_URL));
    opens.off.push(await openTime(OFF_URL));
    console.log(`warm round ${round + 1}`, { on: warm.on.map((d) => d.at(-1)), off: warm.off.map((d) => d.at(-1)), opens: [opens.on.at(-1), opens.off.at(-1)] });
  }
  await deleteQueue(warmQueue);
  const median = (samples: number[]): number => percentile(samples, 0.5);
  const warmOn = warm.on.map(median);
  const warmOff = warm.off.map(median);

  const cells = (row: Row, warmRates: number[], open: number): string[] => [
    row.label,
    perSecond(row.single),
    perSecond(row.bulk),
    ...row.drains.map(perSecond),
    ...warmRates.map(perSecond),
    ms(open),
    ms(row.p50),
    ms(row.p99),
    `${row.rss.toFixed(1)} MB`,
  ];
  console.log(`\n${machine()}; medians of ${rounds} rounds, relay on and off taking turns\n`);
  console.log(
    table(
      ['', 'enqueue (single)', 'enqueue (bulk)', 'drain c=1', 'drain c=50', `warm drain c=1 (${WARM_DRAIN / 1000}k)`, 'warm drain c=50', 'consumer connection open', 'enqueue→start p50', 'p99', 'idle worker RSS'],
      [
        cells(on, warmOn, median(opens.on)),
        cells(off, warmOff, median(opens.off)),
        [
          'on / off',
          ratio(on.single, off.single),
          ratio(on.bulk, off.bulk),
          ...on.drains.map((d, k) => ratio(d, off.drains[k]!)),
          ...warmOn.map((d, k) => ratio(d, warmOff[k]!)),
          ratio(median(opens.on), median(opens.off)),
          ratio(on.p50, off.p50),
          ratio(on.p99, off.p99),
          ratio(on.rss, off.rss),
        ],
      ],
    ),
  );
  const rounded = (samples: number[]): string => samples.map((value) => Math.round(value)).join(', ');
  for (const [label, row, warmRounds] of [['on', on, warm.on], ['off', off, warm.off]] as const) {
    console.log(`relay ${label}: drain c=1 ${rounded(row.drainRounds[0]!)}; c=50 ${rounded(row.drainRounds[1]!)}; warm c=1 ${rounded(warmRounds[0]!)}; warm c=50 ${rounded(warmRounds[1]!)}`);
  }
  for (const system of systems) await deleteQueue(system.queue);
} finally {
  await connection.close();
  results.disconnect();
}
