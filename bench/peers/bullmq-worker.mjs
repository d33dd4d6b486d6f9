// An idle BullMQ worker with a no-op processor, for the RSS figure of bench/redis.ts.
// Usage: node bench/peers/bullmq-worker.mjs QUEUE REDIS_DB
import { Worker } from 'bullmq';

const [queue, db] = process.argv.slice(2);
new Worker(queue, async () => null, { connection: { host: '127.0.0.1', port: 6379, db: Number(db) }, concurrency: 10 });
