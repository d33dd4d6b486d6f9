/**
 * `rediss://` against a TLS-only Redis started by the test (a self-signed certificate made
 * with openssl), and Sentinel discovery of a master through `?master_name=`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celeriac, ConnectionError, createBroker, createLogger } from '../../src/index.js';
import { startTestRedis, startTestSentinel, type TestRedis } from '../helpers/redis-server.js';
import { selfSignedCertificate } from '../helpers/tls.js';

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

describe('rediss:// (TLS)', () => {
  const { cert, key, remove } = selfSignedCertificate();
  const port = 6395;
  beforeAll(async () => {
    servers.push(await startTestRedis(port, ['--port', '0', '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-auth-clients', 'no']));
  });
  afterAll(remove);

  it('runs a task over TLS when the server certificate is trusted', async () => {
    expect(await roundTrip(`rediss://127.0.0.1:${port}/0?ssl_ca_certs=${cert}`)).toBe(5);
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
  });

  it('names the Sentinels when none answers', async () => {
    const broker = await createBroker('redis://127.0.0.1:1/0?master_name=nowhere&sentinels=127.0.0.1:2');
    await expect(broker.connect()).rejects.toThrow(/cannot reach Redis at master nowhere via Sentinel 127\.0\.0\.1:1,127\.0\.0\.1:2/);
  });
});
