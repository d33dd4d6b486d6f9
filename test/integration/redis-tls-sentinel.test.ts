/**
 * `rediss://` against a TLS-only Redis started by the test (a self-signed certificate made
 * with openssl), Sentinel discovery of a master through `?master_name=`, and a password: a
 * worker runs a task, and the lease keeper thread (its own minimal client, not ioredis)
 * connects the same way and renews a consumer's lease.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, ConnectionError, createBroker, createLogger } from '../../src/index.js';
import { LeaseKeeper } from '../../src/transports/lease-keeper.js';
import { aliveKeyOf } from '../../src/transports/redis/consumer-lease.js';
import type { RedisKeeperSettings } from '../../src/transports/redis/lease-keeper-thread.js';
import type { RedisBroker } from '../../src/transports/redis/redis-broker.js';
import { startTestRedis, startTestSentinel, type TestRedis } from '../helpers/redis-server.js';
import { selfSignedCertificate } from '../helpers/tls.js';
import { until } from '../helpers/wait.js';

const servers: TestRedis[] = [];
const apps: Celeriac[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const server of servers.reverse()) await server.destroy();
});

/** Sends a task through a worker on `url` and returns its result. */
async function roundTrip(url: string): Promise<number> {
  const app = new Celeriac({ broker: url, backend: url });
  apps.push(app);
  const add = app.task('t.add', (_ctx, a: number, b: number) => a + b);
  const worker = app.worker({ logger: createLogger('critical'), queues: ['tls-sentinel'] });
  await worker.start();
  try {
    return await add.applyAsync([2, 3], { queue: 'tls-sentinel' }).get({ timeout: 10 });
  } finally {
    await worker.stop(1);
  }
}

/**
 * Starts a lease keeper thread on `url` holding one consumer with a 1 s lease renewed every
 * 100 ms, and checks the lease is set and still there after three times its length, with no
 * warning. The main thread's renewals are left out: only the thread's connection renews.
 */
async function keeperRenews(url: string): Promise<void> {
  const broker = (await createBroker(url)) as RedisBroker;
  await broker.connect();
  const warnings: string[] = [];
  const settings: RedisKeeperSettings = { url, leaseMs: 1_000, intervalMs: 100 };
  const keeper = new LeaseKeeper('transports/redis/lease-keeper-thread.js', settings, {
    renewHere: () => Promise.resolve(),
    holdsWork: () => true,
    warn: (message) => warnings.push(message),
  });
  const id = `keeper-${randomUUID()}`;
  try {
    keeper.hold(id);
    keeper.busy();
    expect(keeper.threadRunning).toBe(true);
    await until(async () => (await broker.client.pttl(aliveKeyOf(id))) > 0, 10_000, 'the keeper to set the lease');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await broker.client.pttl(aliveKeyOf(id))).toBeGreaterThan(500);
    expect(warnings).toEqual([]);
  } finally {
    await keeper.close();
    await broker.client.del(aliveKeyOf(id));
    await broker.close();
  }
}

describe('rediss:// (TLS)', () => {
  const { cert, key, remove } = selfSignedCertificate();
  const port = 6395;
  beforeAll(async () => {
    servers.push(await startTestRedis(port, ['--port', '0', '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-auth-clients', 'no']));
  });
  afterAll(remove);

  it('runs a task over TLS when the server certificate is trusted', async () => {
    expect(await roundTrip(`rediss://127.0.0.1:${port}/0?ssl_ca_certs=${cert}`)).toBe(5);
    await keeperRenews(`rediss://127.0.0.1:${port}/0?ssl_ca_certs=${cert}`);
  });

  it('refuses an untrusted certificate unless told not to check it', async () => {
    const broker = await createBroker(`rediss://127.0.0.1:${port}/0`);
    const error = await broker.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toMatch(/cannot reach Redis at 127\.0\.0\.1:6395 .*SELF_SIGNED|self.signed/i);
    expect(await roundTrip(`rediss://127.0.0.1:${port}/0?ssl_cert_reqs=none`)).toBe(5);
  });
});

describe('Redis Sentinel', () => {
  it('finds the master through a Sentinel named in the URL', async () => {
    servers.push(await startTestRedis(6396));
    servers.push(await startTestSentinel(26396, 'celeriac-master', 6396));
    expect(await roundTrip('redis://127.0.0.1:26396/0?master_name=celeriac-master')).toBe(5);
    await keeperRenews('redis://127.0.0.1:26396/2?master_name=celeriac-master');
  });

  it('names the Sentinels when none answers', async () => {
    const broker = await createBroker('redis://127.0.0.1:1/0?master_name=nowhere&sentinels=127.0.0.1:2');
    await expect(broker.connect()).rejects.toThrow(/cannot reach Redis at master nowhere via Sentinel 127\.0\.0\.1:1,127\.0\.0\.1:2/);
  });
});

describe('Redis with a password', () => {
  it('runs a task, and the keeper authenticates and selects the database', async () => {
    servers.push(await startTestRedis(6397, ['--requirepass', 'pa:ss']));
    const url = `redis://:${encodeURIComponent('pa:ss')}@127.0.0.1:6397/3`;
    expect(await roundTrip(url)).toBe(5);
    await keeperRenews(url);
    await keeperRenews(`redis://default:${encodeURIComponent('pa:ss')}@127.0.0.1:6397/3`);
  });
});
