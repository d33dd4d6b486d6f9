import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

const URL = 'redis://127.0.0.1:6379/5';
const inspector = new Redis(URL, { lazyConnect: true });
afterAll(() => inspector.quit());

describeBrokerConformance('redis://', () => openBroker(URL));
describeBackendConformance('redis://', () => openBackend(URL), () => openBackend(`${URL}?expires=1`), {
  repeatsWithOtherResultCountTwice: "redis://: Celery's join is a ZSET of whole [1, id, state, result] members, so only identical repeats are one member",
  expiresOnItsOwn: true,
  joinLeftovers: (groupId) => inspector.exists(...['.j', '.s', '.t'].map((suffix) => `celery-taskset-meta-${groupId}${suffix}`)),
});
