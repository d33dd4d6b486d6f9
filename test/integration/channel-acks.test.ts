/**
 * The AMQP ack window on a real RabbitMQ channel: acks of one turn go out together, a `multiple`
 * ack covers only the settled front of the window, and nothing still unsettled is acked (closing
 * the channel gives exactly the unacked messages back).
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelAcks, type Tracked } from '../../src/transports/amqp/channel-acks.js';
import { until } from '../helpers/wait.js';

const URL = 'amqp://guest:guest@127.0.0.1:5672/';

/** A queue holding `count` messages, consumed by a fresh channel whose acks are recorded. */
async function consuming(connection: amqp.ChannelModel, count: number) {
  const queue = `acks-${randomUUID()}`;
  const setup = await connection.createChannel();
  await setup.assertQueue(queue, { autoDelete: false, durable: false });
  for (let i = 0; i < count; i++) setup.sendToQueue(queue, Buffer.from(String(i)));
  const channel = await connection.createChannel();
  await channel.prefetch(count);
  const acks = new ChannelAcks(channel);
  const ackFrames: Array<{ multiple: boolean; tag: number }> = [];
  const realAck = channel.ack.bind(channel);
  channel.ack = (message, allUpTo) => {
    ackFrames.push({ multiple: allUpTo === true, tag: message.fields.deliveryTag });
    realAck(message, allUpTo);
  };
  const tracked: Tracked[] = [];
  await channel.consume(queue, (message) => message && tracked.push(acks.track(message)));
  await until(() => tracked.length === count, 10_000, `all ${count} deliveries`);
  const tag = (i: number): number => tracked[i]!.message.fields.deliveryTag;
  /** Closes the consuming channel; resolves with how many messages the queue then holds. */
  const closeAndCount = async (): Promise<number> => {
    await channel.close();
    const { messageCount } = await setup.checkQueue(queue);
    await setup.deleteQueue(queue);
    return messageCount;
  };
  return { acks, ackFrames, tracked, tag, closeAndCount };
}

/** The next turn of the event loop, when the acks of this one have gone out. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ChannelAcks', () => {
  let connection: amqp.ChannelModel;
  beforeAll(async () => {
    connection = await amqp.connect(URL);
  });
  afterAll(() => connection.close());

  it('acks what was acked, front first with one multiple ack, and leaves the rest unsettled', async () => {
    const { acks, ackFrames, tracked, tag, closeAndCount } = await consuming(connection, 8);
    // Acked: 0, 1, 2 (the front), 4 and 6; 3, 5 and 7 stay unsettled; 5 is rejected to requeue.
    for (const i of [0, 1, 2, 4, 6]) acks.ack(tracked[i]!);
    acks.nack(tracked[5]!, true);
    await nextTurn();
    expect(ackFrames).toEqual([
      { multiple: true, tag: tag(2) },
      { multiple: false, tag: tag(4) },
      { multiple: false, tag: tag(6) },
    ]);
    // Closing gives back the unsettled 3 and 7, plus 5, requeued by the nack.
    expect(await closeAndCount()).toBe(3);
  });

  it('lets the multiple ack pass over rejected deliveries, and settles each delivery once', async () => {
    const { acks, ackFrames, tracked, tag, closeAndCount } = await consuming(connection, 5);
    acks.ack(tracked[0]!);
    acks.nack(tracked[1]!, false); // dropped: settled, so the front moves past it
    acks.ack(tracked[2]!);
    acks.ack(tracked[2]!); // a second ack of one delivery: nothing more (RabbitMQ would close the channel)
    acks.nack(tracked[2]!, true); // and no reject after its ack
    acks.ack(tracked[1]!); // nor an ack after its reject
    acks.ack(tracked[4]!);
    await nextTurn();
    expect(ackFrames).toEqual([
      { multiple: true, tag: tag(2) },
      { multiple: false, tag: tag(4) },
    ]);
    // The acks of a later turn go out then; 3 is now the front.
    acks.ack(tracked[3]!);
    expect(ackFrames).toHaveLength(2);
    await nextTurn();
    expect(ackFrames.slice(2)).toEqual([{ multiple: true, tag: tag(3) }]);
    expect(await closeAndCount()).toBe(0);
  });

  it('keeps its place when it drops the settled front of a long window', async () => {
    const { acks, ackFrames, tracked, tag, closeAndCount } = await consuming(connection, 2_100);
    // 1,500 settled at the front: the window drops them and keeps the last 600 in order.
    for (let i = 0; i < 1_500; i++) acks.ack(tracked[i]!);
    await nextTurn();
    expect(ackFrames).toEqual([{ multiple: true, tag: tag(1_499) }]);
    acks.ack(tracked[1_500]!); // the new front
    await nextTurn();
    expect(ackFrames.slice(1)).toEqual([{ multiple: true, tag: tag(1_500) }]);
    acks.ack(tracked[1_502]!); // behind the open 1,501
    await nextTurn();
    expect(ackFrames.slice(2)).toEqual([{ multiple: false, tag: tag(1_502) }]);
    acks.ack(tracked[1_501]!);
    await nextTurn();
    expect(ackFrames.slice(3)).toEqual([{ multiple: true, tag: tag(1_501) }]);
    for (let i = 1_503; i < 2_000; i++) acks.ack(tracked[i]!);
    await nextTurn();
    expect(ackFrames.slice(4)).toEqual([{ multiple: true, tag: tag(1_999) }]);
    // The last 100 were never acked: closing gives back exactly them.
    expect(await closeAndCount()).toBe(100);
  });
});
