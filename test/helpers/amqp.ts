/** Tidying RabbitMQ after a test: the server outlives test runs, so what a test declares stays. */
import amqp from 'amqplib';

/**
 * Deletes task queues as celeriac declares them: each queue, its direct exchange of the same
 * name, and its dead-letter queue. Missing ones are fine.
 */
export async function deleteAmqpQueues(url: string, queues: readonly string[]): Promise<void> {
  const connection = await amqp.connect(url);
  try {
    for (const queue of queues) {
      // A failed delete closes the channel, so each gets its own.
      for (const remove of [(c: amqp.Channel) => c.deleteQueue(queue), (c: amqp.Channel) => c.deleteQueue(`${queue}.celeriac.dead`), (c: amqp.Channel) => c.deleteExchange(queue)]) {
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await remove(channel).catch(() => undefined);
        await channel.close().catch(() => undefined);
      }
    }
  } finally {
    await connection.close();
  }
}
