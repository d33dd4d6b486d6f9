/** Bad broker and backend URL options fail at once, with a line that says what to write instead. */
import { describe, expect, it } from 'vitest';
import { ConfigurationError, createBackend, createBroker } from '../../src/index.js';
import { requireBrokerVersion } from '../../src/transports/redis/client.js';

async function refusal(open: () => Promise<{ connect(): Promise<void> }>): Promise<string> {
  const error = await open()
    .then((transport) => transport.connect())
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(error).toBeInstanceOf(ConfigurationError);
  return (error as Error).message;
}

describe('transport URL options', () => {
  it('refuses an unknown RabbitMQ queue type', async () => {
    expect(await refusal(() => createBroker('amqp://127.0.0.1:5672//?queue_type=stream'))).toBe(
      'URL option queue_type=stream in amqp://127.0.0.1:5672//?queue_type=stream: use classic or quorum',
    );
  });

  it('refuses a Redis database that is not a number', async () => {
    expect(await refusal(() => createBroker('redis://127.0.0.1:6379/cache'))).toMatch(/^bad database number "cache" in redis:\/\/127\.0\.0\.1:6379\/cache/);
  });

  it('refuses TLS options it cannot use', async () => {
    expect(await refusal(() => createBroker('rediss://127.0.0.1:6379/0?ssl_cert_reqs=maybe'))).toMatch(/ssl_cert_reqs=maybe .*use required, optional or none/);
    expect(await refusal(() => createBroker('rediss://127.0.0.1:6379/0?ssl_ca_certs=/no/such/ca.pem'))).toMatch(/cannot read ssl_ca_certs=\/no\/such\/ca\.pem .*ENOENT/);
    expect(await refusal(() => createBroker('amqps://127.0.0.1:5671//?ssl_certfile=/no/such/cert.pem'))).toMatch(/cannot read ssl_certfile=\/no\/such\/cert\.pem .*ENOENT/);
  });

  it('refuses rpc:// results without a RabbitMQ broker', async () => {
    await expect(createBackend('rpc://', { brokerUrl: 'redis://127.0.0.1:6379/0' })).rejects.toThrow(
      /the result backend rpc:\/\/ sends results over the broker's RabbitMQ, but the broker is redis:\/\/127\.0\.0\.1:6379\/0/,
    );
  });

  it('refuses a Redis older than the broker needs, naming both versions', () => {
    const info = (version: string): string => `# Server\r\nredis_version:${version}\r\nredis_mode:standalone\r\n`;
    expect(() => requireBrokerVersion(info('5.0.7'), 'redis://old:6379/0')).toThrow(
      new ConfigurationError('redis://old:6379/0 runs Redis 5.0.7; the celeriac broker needs Redis 6.2 or later (BLMOVE, RPOP with a count)'),
    );
    expect(() => requireBrokerVersion(info('6.0.16'), 'redis://old:6379/0')).toThrow(/runs Redis 6\.0\.16/);
    for (const fine of ['6.2.0', '7.0.15', '10.0.1']) expect(() => requireBrokerVersion(info(fine), 'redis://new:6379/0')).not.toThrow();
  });
});
