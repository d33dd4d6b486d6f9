// A producer process that waits on a result nobody will store (a task sent to a queue no worker
// consumes), for bench/separate.ts's CPU figure of an idle producer. Prints "waiting" once the task
// is sent, then waits until it is killed.
// Usage: node bench/peers/celeriac-waiter.mjs BROKER_URL QUEUE
import { Celeriac } from 'celeriac';

const [broker, queue] = process.argv.slice(2);
const app = new Celeriac({ broker, backend: broker });
const result = app.sendTask('bench.noop', [], {}, { queue });
await result.sent;
console.log('waiting');
await result.get({ timeout: 3600 });
