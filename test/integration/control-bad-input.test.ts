/**
 * Bad input on the control channel and the event stream: a malformed, oversized or expired
 * control message is dropped with one log line and counted, and the worker goes on answering;
 * a receiver counts malformed events and goes on; a reply nobody waits for leaves nothing.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { Celeriac, createLogger } from '../../src/index.js';
import { until } from '../helpers/wait.js';

const BROKER = 'redis://127.0.0.1:6379/15';
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('bad input on the control channel and the event stream (Redis)', () => {
  it('drops malformed, oversized and expired commands with a log line and a count, and still answers', async () => {
    const lines: string[] = [];
    const app = new Celeriac({ broker: BROKER, backend: BROKER });
    const node = `bad-${randomUUID().slice(0, 8)}@test`;
    const worker = app.worker({ hostname: node, logger: createLogger('warning', (line) => lines.push(line)), mingle: false });
    await worker.start();
    cleanups.push(() => app.close(), () => worker.stop(1));
    const redis = new Redis(BROKER);
    cleanups.push(async () => redis.disconnect());
    await redis.publish('/15.celery.pidbox', 'not json at all');
    await redis.publish('/15.celery.pidbox', JSON.stringify({ body: Buffer.from('{"no":"method"}').toString('base64'), headers: {}, properties: { body_encoding: 'base64' }, 'content-type': 'application/json', 'content-encoding': 'utf-8' }));
    const huge = Buffer.from(JSON.stringify({ method: 'ping', arguments: { pad: 'x'.repeat(1_100_000) } })).toString('base64');
    await redis.publish('/15.celery.pidbox', JSON.stringify({ body: huge, headers: {}, properties: { body_encoding: 'base64' }, 'content-type': 'application/json', 'content-encoding': 'utf-8' }));
    const broker = await app.broker();
    await broker.control!.broadcast({ method: 'ping', arguments: {}, destination: null, expiresAt: Date.now() - 5_000 });
    await until(() => lines.filter((line) => line.includes('dropped')).length >= 4, 5_000, 'four drops logged');
    expect(lines.filter((line) => /dropped a message on \/15\.celery\.pidbox that is not a control command/.test(line))).toHaveLength(3);
    expect(lines.some((line) => /dropped an expired ping command/.test(line))).toBe(true);
    expect(await app.control.ping({ timeout: 2, destination: [node] })).toEqual({ [node]: { ok: 'pong' } });
    const stats = (await app.control.inspect({ timeout: 2, destination: [node] }).stats())[node] as { celeriac: { controlDropped: number } };
    expect(stats.celeriac.controlDropped).toBe(4);
  });

  it('counts malformed event messages in the receiver and goes on', async () => {
    const app = new Celeriac({ broker: BROKER, backend: BROKER });
    cleanups.push(() => app.close());
    const stream = await app.events.receive();
    cleanups.push(() => stream.close());
    const redis = new Redis(BROKER);
    cleanups.push(async () => redis.disconnect());
    await redis.publish('/15.celeryev/task.multi', '{"body": "!!!"');
    await (await app.broker()).events!.publish('worker.heartbeat', { type: 'worker-heartbeat', hostname: 'x@y', timestamp: Date.now() / 1000 }, 'x@y');
    const { value } = await stream.next();
    expect(value).toMatchObject({ type: 'worker-heartbeat', hostname: 'x@y' });
    expect(stream.dropped).toBe(1);
  });

  it('leaves nothing behind for a reply nobody waits for', async () => {
    const app = new Celeriac({ broker: BROKER, backend: BROKER });
    cleanups.push(() => app.close());
    const control = (await app.broker()).control!;
    const inbox = await control.openInbox!();
    const address = inbox.address;
    await inbox.close();
    await control.reply!(address, 'late-ticket', { 'someone@host': { ok: 'pong' } });
    const redis = new Redis(BROKER);
    cleanups.push(async () => redis.disconnect());
    expect(await redis.keys(`${address.routingKey}*`)).toEqual([]);
  });
});
