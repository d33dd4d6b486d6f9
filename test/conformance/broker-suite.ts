/**
 * The broker port's conformance suite. Every broker runs it through a one-line test file; a case
 * that needs a capability is skipped, by name, where the broker lacks it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, Delivery } from '../../src/brokers/broker.js';
import type { ManualClock } from '../../src/clock.js';
import type { TransportMessage } from '../../src/protocol/message.js';
import { until } from '../helpers/wait.js';

function message(label: string, extra: Partial<TransportMessage> = {}): TransportMessage {
  return {
    // Non-ASCII text: transports that frame messages by byte length must not count characters.
    headers: { task: 'conformance.task', id: label, nested: { list: [1, 'two', null] }, note: 'héllo ✓ 漢字 🙂' },
    properties: { correlation_id: label, reply_to: 'reply', delivery_mode: 2 },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: Buffer.from(JSON.stringify([[label], {}, null])),
    ...extra,
  };
}

const label = (d: Delivery): string => d.message.headers['id'] as string;

/** Collects deliveries from a consumer. */
async function collect(broker: Broker, queue: string, prefetch = 100) {
  const got: Delivery[] = [];
  const consumer = await broker.consume([queue], (d) => got.push(d), { prefetch });
  return { got, consumer };
}

/** What the suite may use of a broker beyond the port. */
export interface BrokerConformanceOptions {
  /**
   * The clock a broker that keeps time in this process (memory://) reads: the delayed-delivery
   * case moves it instead of waiting. Brokers that keep time on their server wait in real time.
   */
  clock?: ManualClock;
}

/** Lets the broker act on what the clock just released. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs the conformance suite against the broker `open` returns (connected). */
export function describeBrokerConformance(name: string, open: () => Promise<Broker>, options: BrokerConformanceOptions = {}): void {
  describe(`broker conformance: ${name}`, () => {
    let broker: Broker;
    let queue: string;
    beforeAll(async () => {
      broker = await open();
    });
    afterAll(async () => {
      await broker.close();
    });
    const fresh = (): string => (queue = `conformance-${randomUUID()}`);

    it('delivers a message with its headers, properties and body bytes intact', async () => {
      fresh();
      const sent = message('a', { body: Buffer.from([0x5b, 0x5d, 0xff, 0x00]) });
      await broker.publish(queue, sent);
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 1);
      const d = got[0]!;
      expect(d.message.headers).toEqual(sent.headers);
      expect(d.message.properties).toMatchObject(sent.properties);
      expect(Buffer.compare(d.message.body, sent.body)).toBe(0);
      expect(d.message.contentType).toBe('application/json');
      expect(d.queue).toBe(queue);
      expect(d.redelivered).toBe(false);
      await d.ack();
      await consumer.cancel();
      expect(await broker.queueLength(queue)).toBe(0);
    });

    it('delivers a message whose headers hold undefined values, without them', async () => {
      fresh();
      const sent = message('u');
      await broker.publish(queue, { ...sent, headers: { ...sent.headers, unset: undefined } });
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 1);
      expect(got[0]!.message.headers['unset']).toBeUndefined();
      expect(got[0]!.message.headers['id']).toBe('u');
      await got[0]!.ack();
      await consumer.cancel();
    });

    it('keeps FIFO order within a priority, and publishMany keeps order too', async () => {
      fresh();
      await broker.publishMany(['1', '2', '3'].map((l) => ({ queue, message: message(l) })));
      await broker.publish(queue, message('4'));
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 4);
      expect(got.map(label)).toEqual(['1', '2', '3', '4']);
      await Promise.all(got.map((d) => d.ack()));
      await consumer.cancel();
    });

    it('delivers more urgent priorities first', async (context) => {
      if (!broker.capabilities.priorities) context.skip(`${name} has no priorities`);
      fresh();
      await broker.publish(queue, message('low'), { priority: 0 });
      await broker.publish(queue, message('high'), { priority: 9 });
      await broker.publish(queue, message('mid'), { priority: 5 });
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 3);
      expect(got.map(label)).toEqual(['high', 'mid', 'low']);
      await Promise.all(got.map((d) => d.ack()));
      await consumer.cancel();
    });

    it('never has more than prefetch deliveries unsettled', async () => {
      fresh();
      await broker.publishMany(Array.from({ length: 10 }, (_, i) => ({ queue, message: message(`m${i}`) })));
      const { got, consumer } = await collect(broker, queue, 3);
      await until(() => got.length === 3);
      await new Promise((resolve) => setTimeout(resolve, 50)); // fixed: a window in which a 4th delivery must NOT come
      expect(got).toHaveLength(3);
      await got[0]!.ack();
      await until(() => got.length === 4);
      await new Promise((resolve) => setTimeout(resolve, 50)); // fixed: a window in which a 5th delivery must NOT come
      expect(got).toHaveLength(4);
      await consumer.cancel();
      await Promise.all(got.slice(1).map((d) => d.ack()));
    });

    it('stops counting deliveries whose task ran against the prefetch, up to a prefetch of them (where deliveries report ran)', async ({ skip }) => {
      fresh();
      await broker.publishMany(Array.from({ length: 12 }, (_, i) => ({ queue, message: message(`r${i}`) })));
      const { got, consumer } = await collect(broker, queue, 3);
      await until(() => got.length === 3);
      if (!got[0]!.ran) {
        await consumer.cancel();
        await Promise.all(got.map((d) => d.ack()));
        skip();
      }
      for (const delivery of got.slice(0, 3)) delivery.ran!();
      await until(() => got.length === 6, 5_000, 'three more while the first three are recorded');
      // Six ran: three of them count again. One acked frees one slot.
      for (const delivery of got.slice(3, 6)) delivery.ran!();
      await got[0]!.ack();
      await until(() => got.length === 7, 5_000, 'one more once one was acked');
      await new Promise((resolve) => setTimeout(resolve, 50)); // fixed: a window in which an 8th delivery must NOT come
      expect(got).toHaveLength(7);
      await consumer.cancel();
      await Promise.all(got.slice(1).map((d) => d.ack()));
    });

    it('redelivers a message rejected with requeue, and drops one rejected without', async () => {
      fresh();
      await broker.publish(queue, message('again'));
      await broker.publish(queue, message('gone'));
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 2);
      const [again, gone] = got;
      await gone!.reject(false);
      await again!.reject(true);
      await until(() => got.length === 3);
      expect(label(got[2]!)).toBe('again');
      expect(got[2]!.redelivered).toBe(true);
      await got[2]!.ack();
      await consumer.cancel();
      expect(await broker.queueLength(queue)).toBe(0);
    });

    it('moves a dead-lettered message aside with its reason', async (context) => {
      if (!broker.listDeadLetters) context.skip(`${name} cannot list its dead letters`);
      fresh();
      await broker.publish(queue, message('poison'));
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 1);
      await got[0]!.deadLetter('malformed: body is not JSON');
      await consumer.cancel();
      const dead = await broker.listDeadLetters!(1000);
      const entry = dead.find((d) => d.queue === queue);
      expect(entry?.reason).toBe('malformed: body is not JSON');
      expect(entry?.message.headers['id']).toBe('poison');
      expect(await broker.queueLength(queue)).toBe(0);
    });

    it('removes one dead letter it listed, and only that one', async (context) => {
      if (!broker.listDeadLetters) context.skip(`${name} cannot list its dead letters`);
      if (!broker.removeDeadLetter) context.skip(`${name} cannot remove a dead letter`);
      fresh();
      await broker.publish(queue, message('dead-1'));
      await broker.publish(queue, message('dead-2'));
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 2);
      for (const delivery of got) await delivery.deadLetter(`bad ${label(delivery)}`);
      await consumer.cancel();
      const mine = async (): Promise<string[]> => (await broker.listDeadLetters!(1000)).filter((d) => d.queue === queue).map((d) => d.message.headers['id'] as string).sort();
      expect(await mine()).toEqual(['dead-1', 'dead-2']);
      const first = (await broker.listDeadLetters!(1000)).find((d) => d.queue === queue && d.message.headers['id'] === 'dead-1')!;
      expect(await broker.removeDeadLetter!(first)).toBe(true);
      expect(await mine()).toEqual(['dead-2']);
      expect(await broker.removeDeadLetter!(first)).toBe(false);
      expect(await mine()).toEqual(['dead-2']);
    });

    it('holds a message published with notBefore until its time', async (context) => {
      if (!broker.capabilities.delayedDelivery) context.skip(`${name} has no delayed delivery`);
      fresh();
      const { clock } = options;
      // On a clock the test moves, an hour: no real time would bring it.
      const holdMs = clock ? 3_600_000 : 300;
      const publishedAt = clock ? clock.now() : Date.now();
      await broker.publish(queue, message('later'), { notBefore: publishedAt + holdMs });
      await broker.publish(queue, message('now'));
      const { got, consumer } = await collect(broker, queue);
      await until(() => got.length === 1);
      expect(label(got[0]!)).toBe('now');
      if (clock) {
        clock.advance(holdMs - 1);
        await settle();
        expect(got).toHaveLength(1);
        clock.advance(1);
        await until(() => got.length === 2, 5000);
      } else {
        await until(() => got.length === 2, 5000);
        expect(Date.now() - publishedAt).toBeGreaterThanOrEqual(290);
      }
      expect(label(got[1]!)).toBe('later');
      await Promise.all(got.map((d) => d.ack()));
      await consumer.cancel();
    });

    it('purges and counts waiting messages', async () => {
      fresh();
      await broker.publishMany(Array.from({ length: 5 }, (_, i) => ({ queue, message: message(`p${i}`) })));
      expect(await broker.queueLength(queue)).toBe(5);
      expect(await broker.purge(queue)).toBe(5);
      expect(await broker.queueLength(queue)).toBe(0);
    });

    it('gives back unsettled deliveries when the broker closes', async () => {
      fresh();
      const other = await open();
      await other.publish(queue, message('held'));
      const { got } = await collect(other, queue);
      await until(() => got.length === 1);
      await other.close();
      const { got: again, consumer } = await collect(broker, queue);
      await until(() => again.length === 1);
      expect(label(again[0]!)).toBe('held');
      expect(again[0]!.redelivered).toBe(true);
      await again[0]!.ack();
      await consumer.cancel();
    });

    it('broadcasts control commands to subscribers', async (context) => {
      if (!broker.control) context.skip(`${name} has no control channel`);
      const heard: string[] = [];
      const subscription = await broker.control!.subscribe((command) => heard.push(String(command.arguments['marker'])));
      const marker = randomUUID();
      await broker.control!.broadcast({ method: 'revoke', arguments: { marker }, destination: null });
      await until(() => heard.includes(marker), 5000);
      await subscription.cancel();
    });
  });
}
