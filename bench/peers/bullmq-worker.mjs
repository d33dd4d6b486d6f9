// A BullMQ worker: no-op jobs (return null) and probes (`bench.probe` with data `{ sentAt }`,
// returning the milliseconds from sentAt to the handler's start on CLOCK_MONOTONIC, process.hrtime, which
// every process on the machine shares), for bench/redis.ts's RSS figure and bench/separate.ts. Return values are kept (removeOnComplete is off by default).
// Usage: node bench/peers/bullmq-worker.mjs QUEUE REDIS_DB [CONCURRENCY, default 10]
import { Worker } from 'bullmq';

const [queue, db, concurrency = '10'] = process.argv.slice(2);
const since = (sentAt) => Number(process.hrtime.bigint()) / 1e6 - sentAt;
new Worker(queue, async (job) => (job.name === 'bench.probe' ? since(job.data.sentAt) : null), {
  connection: { host: '127.0.0.1', port: 6379, db: Number(db) },
  concurrency: Number(concurrency),
});
