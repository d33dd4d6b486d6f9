/**
 * A worker that starts after a revoke still honours it, on Redis and RabbitMQ, whose control
 * messages are not kept: through the revokes celeriac keeps in the broker (a sorted set; a
 * stream), and through mingle (the other workers' revoked ids) when the revoke was only heard
 * by a worker that was running.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, createLogger, type Worker } from '../../src/index.js';
import { Redis } from 'ioredis';

const BROKER = 'redis://127.0.0.1:6379/14';
const silent = createLogger('critical', () => undefined);
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function newApp(broker = BROKER): Celeriac {
  const app = new Celeriac({ broker, backend: BROKER });
  app.task('late.add', (_ctx, a: number, b: number) => a + b);
  cleanups.push(() => app.close());
  return app;
}

async function startWorker(app: Celeriac, queue: string, options: Parameters<Celeriac['worker']>[0] = {}): Promise<Worker> {
  const worker = app.worker({ queues: [queue], logger: silent, hostname: `late-${randomUUID().slice(0, 8)}@test`, ...options });
  await worker.start();
  cleanups.push(() => worker.stop(1));
  return worker;
}

/** A revoke only `node` hears, not kept in the broker: as a Python client's revoke is. */
async function revokeUnkept(app: Celeriac, id: string, node: string): Promise<void> {
  await (await app.broker()).control!.broadcast({ method: 'revoke', arguments: { task_id: [id] }, destination: [node] });
  const redis = new Redis(BROKER);
  await redis.del('celeriac.revoked');
  redis.disconnect();
}

describe.each([
  { name: 'Redis', broker: BROKER },
  { name: 'RabbitMQ', broker: 'amqp://guest:guest@127.0.0.1:5672//' },
])('a revoke sent while no worker ran, on $name', ({ broker }) => {
  it('is honoured by the next worker that starts (kept in the broker)', async () => {
    const app = newApp(broker);
    const queue = `late-${randomUUID()}`;
    const result = app.sendTask('late.add', [1, 2], {}, { queue });
    await result.sent;
    await app.control.revoke([result.id]);
    await startWorker(app, queue, { mingle: false });
    await expect(result.get({ timeout: 10 })).rejects.toThrow(/revoked/);
  });
});

describe('a revoke only running workers heard, on Redis', () => {
  it('is learnt from them by mingle', async () => {
    const app = newApp();
    const first = await startWorker(app, `late-a-${randomUUID()}`);
    const queue = `late-b-${randomUUID()}`;
    const result = app.sendTask('late.add', [1, 2], {}, { queue });
    await result.sent;
    await revokeUnkept(app, result.id, first.options.hostname);
    await startWorker(app, queue);
    await expect(result.get({ timeout: 10 })).rejects.toThrow(/revoked/);
  });

  it('is not learnt without mingle (what the test above depends on)', async () => {
    const app = newApp();
    const first = await startWorker(app, `late-a-${randomUUID()}`);
    const queue = `late-b-${randomUUID()}`;
    const result = app.sendTask('late.add', [1, 2], {}, { queue });
    await result.sent;
    await revokeUnkept(app, result.id, first.options.hostname);
    await startWorker(app, queue, { mingle: false });
    expect(await result.get({ timeout: 10 })).toBe(3);
  });
});
