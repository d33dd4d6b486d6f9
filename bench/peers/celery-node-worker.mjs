// A celery-node worker: `bench.noop` (returns null) and `bench.probe(sentAt)` (returns the milliseconds
// from sentAt to the handler's start on CLOCK_MONOTONIC, process.hrtime, which every process on the machine
// shares), for the RSS figures of bench/redis.ts and bench/amqp.ts and for bench/separate.ts. celery-node has no concurrency setting (it takes the next
// message without awaiting the handler). On amqp:// its connection gets amqplib's `noDelay` socket
// option (TCP_NODELAY), the one latency setting it has: it passes CELERY_BROKER_OPTIONS to amqplib.
// Usage: node bench/peers/celery-node-worker.mjs BROKER_URL BACKEND_URL QUEUE
import celery from 'celery-node';

console.info = () => undefined; // celery-node logs every task with console.info
const [broker, backend, queue] = process.argv.slice(2);
const worker = celery.createWorker(broker, backend, queue);
if (broker.startsWith('amqp')) worker.conf.CELERY_BROKER_OPTIONS = { noDelay: true };
worker.register('bench.noop', () => null);
worker.register('bench.probe', (sentAt) => Number(process.hrtime.bigint()) / 1e6 - sentAt);
void worker.start();
