/**
 * Runs once before the suite: removes the RabbitMQ queues earlier test runs left behind (every
 * test names its queues with a UUID, and the server outlives the runs), so listings stay small
 * and no stale message reaches a new test. Skipped quietly when RabbitMQ is not there: the
 * requirement check has already said so. Set CELERIAC_KEEP_QUEUES=1 to keep them, when another
 * test run is going on against the same server at the same time.
 */
import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';

const TEST_QUEUE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

export default async function removeLeftoverQueues(): Promise<void> {
  if (process.env['CELERIAC_KEEP_QUEUES'] === '1') return;
  let names: string[];
  try {
    names = execFileSync('rabbitmqctl', ['-q', 'list_queues', 'name'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 60_000 })
      .split('\n')
      .map((line) => line.trim())
      .filter((name) => TEST_QUEUE.test(name));
  } catch {
    return;
  }
  if (names.length === 0) return;
  const connection = await amqp.connect('amqp://guest:guest@127.0.0.1:5672/');
  try {
    const channel = await connection.createChannel();
    for (const name of names) await channel.deleteQueue(name);
    await channel.close();
  } finally {
    await connection.close();
  }
}
