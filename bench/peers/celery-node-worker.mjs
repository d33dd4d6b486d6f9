// An idle celery-node worker with a no-op task, for the RSS figures of bench/redis.ts and bench/amqp.ts.
// Usage: node bench/peers/celery-node-worker.mjs BROKER_URL BACKEND_URL QUEUE
import celery from 'celery-node';

console.info = () => undefined; // celery-node logs every task with console.info
const [broker, backend, queue] = process.argv.slice(2);
const worker = celery.createWorker(broker, backend, queue);
worker.register('bench.noop', () => null);
void worker.start();
