import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { PIDBOX_REPLY_EXCHANGE } from '../../src/brokers/pidbox-message.js';
import { queueKeys, SEP } from '../../src/transports/redis/kombu-layout.js';
import { describeMonitorConformance } from './monitor-suite.js';
import { openBroker } from './open.js';

const URL = 'redis://127.0.0.1:6379/5';
const other = new Redis(URL, { lazyConnect: true });
afterAll(() => other.quit());

describeMonitorConformance('redis://', () => openBroker(URL), {
  sendMalformedEvent: async (routingKey) => {
    await other.publish(`/5.celeryev/${routingKey}`, '{"body": "not an envelope');
  },
  // kombu's binding of the inbox's queue to the reply exchange, and the queue's lists.
  inboxLeftovers: async ({ routingKey }) => {
    const queue = `${routingKey}.${PIDBOX_REPLY_EXCHANGE}`;
    const bound = await other.sismember(`_kombu.binding.${PIDBOX_REPLY_EXCHANGE}`, `${routingKey}${SEP}${SEP}${queue}`);
    return bound === 1 || (await other.exists(...queueKeys(queue))) > 0;
  },
  replaysCommands: "redis:// keeps no commands, as in Celery (fanout on pub/sub reaches only those listening); only the ids of celeriac's revokes are kept",
});
