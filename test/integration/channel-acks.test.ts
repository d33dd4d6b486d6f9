/**
 * The AMQP ack window on a real RabbitMQ channel: acks of one turn go out together, a `multiple`
 * ack covers only the settled front of the window, and nothing still unsettled is acked (closing
 * the channel gives exactly the unacked messages back).
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { ChannelAcks, type Tracked } from '../../src/transports/amqp/channel-acks.js';
import { until } from '../helpers/wait.js';

const URL = 'amqp://guest:guest@127.0.0.1:5672/';

describe('ChannelAcks', () => {
  it('acks what was acked, front first with one multiple ack, and leaves the rest unsettled', async () => {
    const connection = await amqp.connect(URL);
    const queue = `acks-${randomUUID()}`;
    try {
      const setup = await connection.createChannel();
      await setup.assertQueue(queue, { autoDelete: false, durable: false });
      for (let i = 0; i < 8; i++) setup.sendToQueue(queue, Buffer.from(String(i)));
      const channel = await connection.createChannel();
      await channel.prefetch(8);
      const acks = new ChannelAcks(channel);
      const ackFrames: Array<{ multiple: boolean; tag: number }> = [];
      const realAck = channel.ack.bind(channel);
      channel.ack = (message, allUpTo) => {
        ackFrames.push({ multiple: allUpTo === true, tag: message.fields.deliveryTag });
        realAck(message, allUpTo);
      };
      const tracked: Tracked[] = [];
      await channel.consume(queue, (message) => message && tracked.push(acks.track(message)));
      await until(() => tracked.length === 8, 5_000, 'all eight deliveries');
      // Acked: 0, 1, 2 (the front), 4 and 6; 3, 5 and 7 stay unsettled; 5 is rejected to requeue.
      for (const i of [0, 1, 2, 4, 6]) acks.ack(tracked[i]!);
      acks.nack(tracked[5]!, true);
      await new Promise((resolve) => setImmediate(resolve));
      expect(ackFrames).toEqual([
        { multiple: true, tag: tracked[2]!.message.fields.deliveryTag },
        { multiple: false, tag: tracked[4]!.message.fields.deliveryTag },
        { multiple: false, tag: tracked[6]!.message.fields.deliveryTag },
      ]);
      await channel.close();
      // Closing gives back the unsettled 3 and 7, plus 5, requeued by the nack.
      const check = await setup.checkQueue(queue);
      expect(check.messageCount).toBe(3);
      await setup.deleteQueue(queue);
    } finally {
      await connection.close();
    }
  });
});
