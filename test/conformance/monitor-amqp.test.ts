import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/brokers/broker.js';
import { startFaultProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/wait.js';
import { describeMonitorConformance } from './monitor-suite.js';
import { openBroker } from './open.js';

const AMQP = 'amqp://guest:guest@127.0.0.1:5672//';
let other: amqp.ChannelModel | undefined;
const connection = async (): Promise<amqp.ChannelModel> => (other ??= await amqp.connect(AMQP));
afterAll(() => other?.close());

describeMonitorConformance('amqp://', () => openBroker(AMQP), {
  sendMalformedEvent: async (routingKey) => {
    const channel = await (await connection()).createConfirmChannel();
    channel.publish('celeryev', routingKey, Buffer.from('{"type": not json'), { contentType: 'application/json', deliveryMode: 1 });
    await channel.waitForConfirms();
    await channel.close();
  },
  // kombu's reply queue `<oid>.reply.celery.pidbox`: checking a missing queue closes the channel.
  inboxLeftovers: async ({ routingKey }) => {
    const channel = await (await connection()).createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.checkQueue(`${routingKey}.reply.celery.pidbox`);
      await channel.close();
      return true;
    } catch {
      return false;
    }
  },
  replaysCommands: 'amqp:// keeps no commands, as in Celery: each node queue hears what is sent while it is bound',
});

/** What `rabbitmqctl list_<what>` says, as JSON rows. */
function rabbitmqctl<T>(what: string, columns: string[]): T[] {
  return JSON.parse(execFileSync('rabbitmqctl', ['-q', `list_${what}`, ...columns, '--formatter', 'json'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })) as T[];
}
type QueueRow = { name: string; durable: boolean; auto_delete: boolean; exclusive: boolean; arguments: Array<[string, string, unknown]> };
const queueRow = (name: string): QueueRow | undefined => rabbitmqctl<QueueRow>('queues', ['name', 'durable', 'auto_delete', 'exclusive', 'arguments']).find((q) => q.name === name);
const argumentsOf = (row: QueueRow): Record<string, unknown> => Object.fromEntries(row.arguments.map(([key, , value]) => [key, value]));

/** A queue of the test's own bound to `exchange`, and what arrives on it. */
async function tap(exchange: string, routingKey: string) {
  const channel = await (await connection()).createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, exchange, routingKey);
  const got: amqp.ConsumeMessage[] = [];
  await channel.consume(queue, (message) => message && got.push(message), { noAck: true });
  return { got, close: () => channel.close() };
}

// The entities and message properties a Celery 5.2.6 worker (`-E`), `celery events --dump` and
// `celery inspect ping` showed on this server (rabbitmqctl list_exchanges/list_queues/list_bindings,
// and their messages read off queues bound beside theirs).
describe("amqp:// monitoring layout, as Celery's", () => {
  let broker: Broker;
  afterAll(() => broker?.close());

  it('declares celeryev, celery.pidbox and reply.celery.pidbox as Celery does', async () => {
    broker = await openBroker(AMQP);
    const inbox = await broker.control!.openInbox!();
    const subscription = await broker.events!.subscribe(() => undefined, '#');
    await broker.events!.publish('worker.heartbeat', { type: 'worker-heartbeat' }, 'layout@host');
    await broker.control!.broadcast({ method: 'ping', arguments: {}, destination: ['nobody@nowhere'] });
    const exchanges = rabbitmqctl<{ name: string; type: string; durable: boolean; auto_delete: boolean }>('exchanges', ['name', 'type', 'durable', 'auto_delete']);
    const exchange = (name: string) => exchanges.find((e) => e.name === name);
    expect(exchange('celeryev')).toEqual({ name: 'celeryev', type: 'topic', durable: true, auto_delete: false });
    expect(exchange('celery.pidbox')).toEqual({ name: 'celery.pidbox', type: 'fanout', durable: false, auto_delete: false });
    expect(exchange('reply.celery.pidbox')).toEqual({ name: 'reply.celery.pidbox', type: 'direct', durable: false, auto_delete: false });

    const oid = inbox.address.routingKey;
    expect(inbox.address.exchange).toBe('reply.celery.pidbox');
    const reply = queueRow(`${oid}.reply.celery.pidbox`)!;
    expect(reply).toMatchObject({ durable: false, auto_delete: true, exclusive: false });
    expect(argumentsOf(reply)).toEqual({ 'x-expires': 10_000, 'x-message-ttl': 300_000 });
    const bindings = rabbitmqctl<{ source_name: string; destination_name: string; routing_key: string }>('bindings', ['source_name', 'destination_name', 'routing_key']);
    expect(bindings).toContainEqual({ source_name: 'reply.celery.pidbox', destination_name: `${oid}.reply.celery.pidbox`, routing_key: oid });
    await subscription.cancel();
    await inbox.close();
  });

  it("binds an event subscriber's celeryev.<uuid> queue with its pattern, with Celery's TTL and expiry, and removes it when cancelled", async () => {
    broker ??= await openBroker(AMQP);
    const pattern = `worker.${randomUUID().replaceAll('-', '')}.#`; // a pattern no other run binds
    const subscription = await broker.events!.subscribe(() => undefined, pattern);
    const binding = rabbitmqctl<{ source_name: string; destination_name: string; routing_key: string }>('bindings', ['source_name', 'destination_name', 'routing_key']).find(
      (b) => b.source_name === 'celeryev' && b.routing_key === pattern,
    )!;
    expect(binding.destination_name).toMatch(/^celeryev\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const queue = queueRow(binding.destination_name)!;
    expect(queue).toMatchObject({ durable: false, auto_delete: true, exclusive: false });
    expect(argumentsOf(queue)).toEqual({ 'x-message-ttl': 5_000, 'x-expires': 60_000 });
    await subscription.cancel();
    expect(queueRow(binding.destination_name)).toBeUndefined();
  });

  it('sends events, commands and replies with the properties and headers Celery sends', async () => {
    broker ??= await openBroker(AMQP);
    const marker = randomUUID();
    const events = await tap('celeryev', 'task.#');
    const commands = await tap('celery.pidbox', '');
    const replies = await tap('reply.celery.pidbox', marker);
    await broker.events!.publish('task.multi', [{ type: 'task-started', uuid: marker }], 'layout@host');
    const expiresAt = Date.now() + 5_000;
    await broker.control!.broadcast({ method: 'ping', arguments: { marker }, destination: null, replyTo: { exchange: 'reply.celery.pidbox', routingKey: marker }, ticket: 't-1', expiresAt });
    await broker.control!.reply!({ exchange: 'reply.celery.pidbox', routingKey: marker }, 't-1', { 'w@h': { ok: 'pong' } });
    const mine = (m: amqp.ConsumeMessage) => m.content.toString().includes(marker);
    await until(() => events.got.some(mine) && commands.got.some(mine) && replies.got.length === 1, 10_000, 'the three messages');

    const event = events.got.find(mine)!;
    expect(event.fields).toMatchObject({ exchange: 'celeryev', routingKey: 'task.multi' });
    expect(event.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 1, headers: { hostname: 'layout@host' } });
    expect(JSON.parse(event.content.toString())).toEqual([{ type: 'task-started', uuid: marker }]);

    const command = commands.got.find(mine)!;
    expect(command.fields).toMatchObject({ exchange: 'celery.pidbox', routingKey: '' });
    expect(command.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2 });
    expect(command.properties.headers).toEqual({ clock: expect.any(Number), expires: expiresAt / 1000 });
    expect(JSON.parse(command.content.toString())).toEqual({
      method: 'ping',
      arguments: { marker },
      destination: null,
      pattern: null,
      matcher: null,
      ticket: 't-1',
      reply_to: { exchange: 'reply.celery.pidbox', routing_key: marker },
    });

    const answer = replies.got[0]!;
    expect(answer.fields).toMatchObject({ exchange: 'reply.celery.pidbox', routingKey: marker });
    expect(answer.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 1, headers: { ticket: 't-1', clock: expect.any(Number) } });
    expect(JSON.parse(answer.content.toString())).toEqual({ 'w@h': { ok: 'pong' } });
    await Promise.all([events.close(), commands.close(), replies.close()]);
  });
});

describe('amqp:// monitoring across a lost connection', () => {
  it('hears events, commands and replies again once the connections come back (the subscriptions on the relay-kept consumer connection)', async () => {
    const proxy = await startFaultProxy(5672);
    const publisher = await openBroker(AMQP);
    const listener = await openBroker(`amqp://guest:guest@127.0.0.1:${proxy.port}//?heartbeat=1`);
    try {
      const events: string[] = [];
      const commands: string[] = [];
      const replies: string[] = [];
      const subscription = await listener.events!.subscribe((e) => events.push(String(e['marker'])), '#');
      const control = await listener.control!.subscribe((c) => commands.push(String(c.arguments['marker'])));
      const inbox = await listener.control!.openInbox!();
      inbox.listen((ticket) => replies.push(ticket));
      /** Sends marked messages until one of them is heard: each connection comes back in its own time. */
      const heardAgain = async (what: string, heard: string[], send: (marker: string) => Promise<void>) => {
        let marker = '';
        await until(async () => {
          if (heard.includes(marker)) return true;
          marker = randomUUID();
          await send(marker);
          await new Promise((resolve) => setTimeout(resolve, 200)); // the pace of the resends
          return heard.includes(marker);
        }, 30_000, what);
      };
      const sendEvent = (marker: string) => publisher.events!.publish('worker.heartbeat', { type: 'worker-heartbeat', marker }, 'w@h');
      const sendCommand = async (marker: string) => void (await publisher.control!.broadcast({ method: 'revoke', arguments: { marker }, destination: null }));
      const sendReply = (marker: string) => publisher.control!.reply!(inbox.address, marker, { 'w@h': 'pong' });
      await heardAgain('an event before', events, sendEvent);
      proxy.freeze();
      await heardAgain('an event after the connection came back', events, sendEvent);
      await heardAgain('a command after the connection came back', commands, sendCommand);
      await heardAgain('a reply after the connection came back', replies, sendReply);
      await subscription.cancel();
      await control.cancel();
      await inbox.close();
    } finally {
      await listener.close();
      await publisher.close();
      await proxy.close();
    }
  });
});
