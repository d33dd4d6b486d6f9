/**
 * What beat sends is an ordinary Celery task message: a real Python Celery worker runs it, on
 * Redis (the lock in the broker) and on RabbitMQ with rpc:// results (the lock in Redis, named
 * with `lock`, as `--lock` does).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { createLogger } from '../../src/index.js';
import { interopHarness } from './harness.js';
import { expectPythonCelery } from './celery-interop-suite.js';

const REDIS = 'redis://127.0.0.1:6379/6';
const RABBITMQ = 'amqp://guest:guest@127.0.0.1:5672//';
const inspector = new Redis(REDIS, { lazyConnect: true });
const namespaces: string[] = [];
afterAll(async () => {
  for (const namespace of namespaces) {
    const keys = await inspector.keys(`celeriac.beat.${namespace}.*`);
    if (keys.length > 0) await inspector.del(...keys);
  }
  await inspector.quit();
});

const cases = [
  { name: 'Redis (the lock in the broker)', broker: REDIS, backend: REDIS, pythonBackend: REDIS, pythonBroker: REDIS, lock: undefined },
  { name: 'RabbitMQ with rpc:// results (the lock in Redis)', broker: RABBITMQ, backend: 'rpc://', pythonBackend: 'rpc://', pythonBroker: RABBITMQ, lock: REDIS },
];

describe.each(cases)('$name', ({ broker, backend, pythonBroker, pythonBackend, lock }) => {
  const harness = interopHarness({ broker, backend, module: 'celery_app', env: { CELERIAC_TEST_BROKER: pythonBroker, CELERIAC_TEST_BACKEND: pythonBackend } });
  afterEach(async () => {
    await harness.closeApps();
    await harness.killPythonWorkers();
  });

  test('a Python Celery worker runs each run beat sends, and its result comes back under the run id', async () => {
    const queue = `beat-py-${randomUUID()}`;
    await harness.pythonWorker(queue);
    const app = harness.app();
    app.schedule('answer', { task: 'py.mul', args: [6, 7], every: 1, options: { queue } });
    const namespace = randomUUID();
    namespaces.push(namespace);
    const results: Array<Promise<unknown>> = [];
    const service = await app.beat.start({ logger: createLogger('critical'), namespace, ...(lock ? { lock } : {}) });
    try {
      service.on('sent', ({ id }) => results.push(app.asyncResult(id).get({ timeout: 20 })));
      const deadline = Date.now() + 15_000;
      while (results.length < 3 && Date.now() < deadline) await sleep(100);
      expect(await Promise.all(results.slice(0, 3))).toEqual([42, 42, 42]);
    } finally {
      await app.beat.stop();
    }
  }, 60_000);
});

expectPythonCelery();
