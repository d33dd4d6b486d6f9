// A Bee-Queue worker for bench/separate.ts: no-op jobs (return null) and probes (data `{ sentAt }`,
// returning the milliseconds from sentAt to the handler's start on CLOCK_MONOTONIC, process.hrtime, which
// every process on the machine shares). Settings are
// the defaults (jobs kept in Redis, succeeded ids in the `succeeded` set, events sent) except
// `getEvents: false`, which Bee-Queue's README advises for a queue that only processes.
// Usage: node bench/peers/bee-queue-worker.mjs QUEUE REDIS_DB CONCURRENCY
import Queue from 'bee-queue';

const [name, db, concurrency] = process.argv.slice(2);
const queue = new Queue(name, { redis: { host: '127.0.0.1', port: 6379, db: Number(db) }, getEvents: false });
queue.process(Number(concurrency), async (job) => (job.data.sentAt === undefined ? null : Number(process.hrtime.bigint()) / 1e6 - job.data.sentAt));
